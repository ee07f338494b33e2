"""Turning parsed options into engine objects: the model, the backend, the session."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tokentui.cli.options import SharedOptions
from tokentui.engine.errors import ParameterError
from tokentui.engine.prompts import PromptSpec
from tokentui.engine.sampling import PRESETS, SamplingParams, apply_preset

SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty",
                   "presence_penalty", "frequency_penalty", "seed", "max_new_tokens")


def sampling_params(opts: SharedOptions) -> SamplingParams:
    """Defaults, then the preset, then every flag given explicitly."""
    params = SamplingParams()
    if opts.preset:
        if opts.preset not in PRESETS:
            raise ParameterError(f"unknown preset {opts.preset!r}; choose one of {', '.join(PRESETS)}")
        params = apply_preset(params, opts.preset)
    changes: dict[str, Any] = {f: getattr(opts, f) for f in SAMPLING_FIELDS
                               if getattr(opts, f) is not None}
    if opts.greedy:
        changes["greedy"] = True
    if opts.stop:
        changes["stop"] = tuple(opts.stop)
    if opts.ignore_eos:
        changes["ignore_eos"] = True
    return params.with_changes(**changes)


def prompt_spec(text: str, opts: SharedOptions) -> PromptSpec:
    return PromptSpec(text=text, system=opts.system, chat_template=not opts.no_chat_template)


@contextlib.contextmanager
def loading_progress(quiet: bool = False) -> Iterator[Any]:
    """A rich progress line on stderr while the model loads; yields the callback."""
    if quiet or not sys.stderr.isatty():
        yield lambda stage, fraction: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("loading", total=1.0)

        def update(stage: str, fraction: float | None) -> None:
            bar.update(task, description=stage, completed=fraction or 0.0)

        yield update


def load_backend(opts: SharedOptions, *, quiet: bool = False,
                 progress: Callable[[str, float | None], None] | None = None) -> Any:
    """The backend the options name: local transformers, or a remote server.

    ``progress`` (the app's status line) replaces the stderr progress bar when given.
    """
    if opts.backend == "openai":
        from tokentui.engine.backends import remote

        return remote.from_options(base_url=opts.base_url, served_model=opts.served_model,
                                   api_key_env=opts.api_key_env, tokenizer=opts.tokenizer)
    if opts.backend != "local":
        raise ParameterError(f"unknown backend {opts.backend!r}: use local or openai")
    from tokentui.engine import models
    from tokentui.engine.backends.local import LocalBackend

    with loading_progress(quiet or progress is not None) as bar:
        loaded = models.load(opts.model, device=opts.device, dtype=opts.dtype,
                             trust_remote_code=opts.trust_remote_code,
                             device_map=opts.device_map, progress=progress or bar)
    return LocalBackend(loaded)


def constraint_source(opts: SharedOptions) -> tuple[str, str] | None:
    """The constraint flags as ``(kind, source)``: one option a line for choices; files read here.

    Raises ``ParameterError`` for two constraints or a missing file; whether the source is a
    valid regex, grammar or schema is for ``constraints.build`` to say.
    """
    kinds = {"choice": opts.choice, "choices_file": opts.choices_file, "regex": opts.regex,
             "grammar": opts.grammar, "json_schema": opts.json_schema}
    given = {k: v for k, v in kinds.items() if v is not None}
    if not given:
        return None
    if len(given) > 1:
        raise ParameterError(f"give one constraint, not {len(given)}: {', '.join(given)}")
    kind, value = next(iter(given.items()))
    if isinstance(value, Path):
        if not value.is_file():
            raise ParameterError(f"no such file: {value}")
        value = value.read_text()
    if kind == "choice":
        return "choice", "\n".join(part.strip() for part in str(value).split("|"))
    if kind == "choices_file":
        return "choice", str(value)
    return kind, str(value)


def build_constraint(opts: SharedOptions, backend: Any) -> Any:
    """The constraint the options ask for, or None."""
    source = constraint_source(opts)
    if source is None:
        return None
    from tokentui.engine import constraints

    kind, text = source
    return constraints.build(kind, text, backend.tokenizer, backend.vocab_size,
                             eos_ids=backend.eos_token_ids)


def open_session(text: str, opts: SharedOptions, *, quiet: bool = False,
                 completion_ids: list[int] | None = None) -> Any:
    """Load the backend and build a session over the prompt (forcing ``completion_ids``)."""
    from tokentui.engine.session import Session

    params = sampling_params(opts)
    backend = load_backend(opts, quiet=quiet)
    session = Session(backend, prompt_spec(text, opts), params=params)
    constraint = build_constraint(opts, backend)
    if constraint is not None:
        session.set_constraint(constraint)
    for token_id in completion_ids or []:
        session.force_token(token_id)
    return session


def parse_ids(text: str | None) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]``."""
    if not text:
        return []
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ParameterError(f"--completion-ids takes comma-separated integers, got {text!r}") from None
