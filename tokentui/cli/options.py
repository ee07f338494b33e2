"""Options shared by the subcommands, declared once and injected by ``@shared_options``.

A command asks for groups (``model``, ``prompt``, ``sampling``, ``constraint``) and
receives them already parsed as one :class:`SharedOptions` argument named ``opts``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from tokentui.engine.errors import TokentuiError
from tokentui.visible import one_line

MODEL_PANEL = "Model"
PROMPT_PANEL = "Prompt"
SAMPLING_PANEL = "Sampling"
CONSTRAINT_PANEL = "Constraint"

# name -> (annotation, default)
GROUPS: dict[str, dict[str, tuple[Any, Any]]] = {
    "model": {
        "model": (Annotated[str | None, typer.Option(
            "--model", "-m", envvar="TOKENTUI_MODEL", rich_help_panel=MODEL_PANEL,
            help="Hugging Face repo id, local folder or .gguf file [default: the bundled "
                 "SmolLM2-135M-Instruct].")], None),
        "device": (Annotated[str, typer.Option(
            help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps.",
            rich_help_panel=MODEL_PANEL)], "auto"),
        "dtype": (Annotated[str, typer.Option(
            help="auto (float32 on CPU, bfloat16 on CUDA), float32, bfloat16 or float16.",
            rich_help_panel=MODEL_PANEL)], "auto"),
        "trust_remote_code": (Annotated[bool, typer.Option(
            "--trust-remote-code", help="Allow a hub model's own Python code to run.",
            rich_help_panel=MODEL_PANEL)], False),
        "allow_pickle": (Annotated[bool, typer.Option(
            "--allow-pickle", help="Load a checkpoint that has only pickle weights (*.bin); "
            "they can run code.", rich_help_panel=MODEL_PANEL)], False),
        "device_map": (Annotated[str | None, typer.Option(
            "--device-map", help="accelerate device map, e.g. 'auto' to spread over GPUs.",
            rich_help_panel=MODEL_PANEL)], None),
        "backend": (Annotated[str, typer.Option(
            help="local (transformers here) or openai (an OpenAI-compatible server).",
            rich_help_panel=MODEL_PANEL)], "local"),
        "base_url": (Annotated[str | None, typer.Option(
            "--base-url", help="Server URL for --backend openai, e.g. http://127.0.0.1:8080.",
            rich_help_panel=MODEL_PANEL)], None),
        "served_model": (Annotated[str | None, typer.Option(
            "--served-model", help="Model name the server expects (--backend openai).",
            rich_help_panel=MODEL_PANEL)], None),
        "api_key_env": (Annotated[str | None, typer.Option(
            "--api-key-env", help="Name of the environment variable holding the API key.",
            rich_help_panel=MODEL_PANEL)], None),
        "tokenizer": (Annotated[str | None, typer.Option(
            "--tokenizer", help="Local tokenizer (repo id or folder) for a remote backend.",
            rich_help_panel=MODEL_PANEL)], None),
    },
    "prompt": {
        "system": (Annotated[str | None, typer.Option(
            help="System message (with a chat template).", rich_help_panel=PROMPT_PANEL)], None),
        "no_chat_template": (Annotated[bool, typer.Option(
            "--no-chat-template", help="Feed the raw text, not a chat-formatted user message.",
            rich_help_panel=PROMPT_PANEL)], False),
    },
    "sampling": {
        "preset": (Annotated[str | None, typer.Option(
            help="greedy, balanced, reliable or creative (explicit flags override it).",
            rich_help_panel=SAMPLING_PANEL)], None),
        "temperature": (Annotated[float | None, typer.Option(
            help="Softmax temperature; 0 means greedy (default 0.7).",
            rich_help_panel=SAMPLING_PANEL)], None),
        "top_k": (Annotated[int | None, typer.Option(
            "--top-k", help="Keep the k most likely tokens; 0 = off (default 0).",
            rich_help_panel=SAMPLING_PANEL)], None),
        "top_p": (Annotated[float | None, typer.Option(
            "--top-p", help="Nucleus: smallest set with this much mass; 1 = off (default 0.8).",
            rich_help_panel=SAMPLING_PANEL)], None),
        "min_p": (Annotated[float | None, typer.Option(
            "--min-p", help="Drop tokens below min_p x the top probability; 0 = off.",
            rich_help_panel=SAMPLING_PANEL)], None),
        "repetition_penalty": (Annotated[float | None, typer.Option(
            "--repetition-penalty", help="transformers' penalty over prompt+completion; "
            "1 = off (default 1.05).", rich_help_panel=SAMPLING_PANEL)], None),
        "presence_penalty": (Annotated[float | None, typer.Option(
            "--presence-penalty", help="OpenAI presence penalty over the completion.",
            rich_help_panel=SAMPLING_PANEL)], None),
        "frequency_penalty": (Annotated[float | None, typer.Option(
            "--frequency-penalty", help="OpenAI frequency penalty over the completion.",
            rich_help_panel=SAMPLING_PANEL)], None),
        "seed": (Annotated[int | None, typer.Option(
            help="Seed of sampled draws (same seed, same tokens).",
            rich_help_panel=SAMPLING_PANEL)], None),
        "greedy": (Annotated[bool, typer.Option(
            "--greedy", help="Always take the most likely token.",
            rich_help_panel=SAMPLING_PANEL)], False),
        "stop": (Annotated[list[str] | None, typer.Option(
            help="Stop sequence (repeatable).", rich_help_panel=SAMPLING_PANEL)], None),
        "max_new_tokens": (Annotated[int | None, typer.Option(
            "--max-new-tokens", "-n", help="Most tokens to generate (default 128).",
            rich_help_panel=SAMPLING_PANEL)], None),
        "ignore_eos": (Annotated[bool, typer.Option(
            "--ignore-eos", help="Keep going past the end-of-sequence token.",
            rich_help_panel=SAMPLING_PANEL)], False),
    },
    "constraint": {
        "choice": (Annotated[str | None, typer.Option(
            help='Constrain to one of these options, separated by "|".',
            rich_help_panel=CONSTRAINT_PANEL)], None),
        "choices_file": (Annotated[Path | None, typer.Option(
            "--choices-file", help="Constrain to one of the lines of this file.",
            rich_help_panel=CONSTRAINT_PANEL)], None),
        "regex": (Annotated[str | None, typer.Option(
            help="Constrain the completion to match this regular expression.",
            rich_help_panel=CONSTRAINT_PANEL)], None),
        "grammar": (Annotated[Path | None, typer.Option(
            help="Constrain to a Lark grammar (as llguidance accepts it).",
            rich_help_panel=CONSTRAINT_PANEL)], None),
        "json_schema": (Annotated[Path | None, typer.Option(
            "--json-schema", help="Constrain to JSON matching this JSON schema file.",
            rich_help_panel=CONSTRAINT_PANEL)], None),
    },
}


@dataclass
class SharedOptions:
    """The parsed values of every shared option group a command asked for."""

    values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            # Options of a group the command did not ask for read as their defaults.
            for group in GROUPS.values():
                if name in group:
                    return group[name][1]
            raise AttributeError(name) from None


def fail(message: object, code: int = 2) -> typer.Exit:
    """Print one clear line to stderr and return the Exit to raise.

    The message often quotes outside text (a path, a server's words, a file's field): it is
    made terminal-safe and kept on one line here, so no caller can forget it.
    """
    typer.echo(f"error: {one_line(message)}", err=True)
    return typer.Exit(code)


def warn(message: object) -> None:
    """One ``warning:`` line on stderr, terminal-safe."""
    typer.echo(f"warning: {one_line(message)}", err=True)


def shared_options(*groups: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the options of ``groups`` to a command; pass them as ``opts``.

    It also turns every :class:`TokentuiError` into one line on stderr and exit code 2.
    """
    names = [n for g in groups for n in GROUPS[g]]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(func, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "opts"]
        extra = [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default)
            for g in groups for n, (ann, default) in GROUPS[g].items()
        ]

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            opts = SharedOptions({n: kwargs.pop(n) for n in names})
            try:
                return func(opts=opts, **kwargs)
            except TokentuiError as exc:
                raise fail(str(exc)) from None

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + extra
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        wrapper.__wrapped__ = None  # type: ignore[attr-defined]
        del wrapper.__wrapped__
        return wrapper

    return decorate
