"""tokenize, next and generate: the one-shot view of what the model sees and does."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tokentui.cli import render
from tokentui.cli.options import SharedOptions, shared_options
from tokentui.cli.runtime import open_session, parse_ids, prompt_spec, run_config
from tokentui.visible import one_line, terminal_safe

Prompt = Annotated[str, typer.Argument(help="The prompt text.", show_default=False)]
CompletionIds = Annotated[str | None, typer.Option(
    "--completion-ids", help="Completion token ids already taken, comma-separated (e.g. 1,2,3).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    app.command("tokenize")(tokenize)
    app.command("next")(next_token)
    app.command("generate")(generate)


@shared_options("model", "prompt")
def tokenize(
    text: Prompt,
    chat: Annotated[bool, typer.Option(
        "--chat", help="Show the chat-formatted prompt the other commands feed the model.")] = False,
    as_json: AsJson = False,
    *,
    opts: SharedOptions,
) -> None:
    """Split TEXT into tokens: ids, pieces (whitespace shown) and special tokens."""
    from tokentui.engine import models
    from tokentui.engine.prompts import PromptSpec, TokenTable, encode_prompt

    tokenizer = models.load_tokenizer(opts.model, trust_remote_code=opts.trust_remote_code)
    spec = prompt_spec(text, opts) if chat else PromptSpec(text=text, chat_template=False)
    ids = encode_prompt(tokenizer, spec)
    tokens = TokenTable(tokenizer).tokens(ids)
    if as_json:
        render.print_json({"tokens": [t.to_json() for t in tokens], "count": len(tokens)})
        return
    render.console().print(render.tokens_table(tokens, f"{len(tokens)} tokens"))


@shared_options("model", "prompt", "sampling", "constraint")
def next_token(
    prompt: Prompt,
    completion_ids: CompletionIds = None,
    show: Annotated[int, typer.Option(help="How many candidates to list.", min=1)] = 10,
    as_json: AsJson = False,
    *,
    opts: SharedOptions,
) -> None:
    """The next-token distribution after PROMPT: p_base, p_final, kept and valid."""
    config = run_config(opts, prompt, need_prompt=True)
    session = open_session(config, completion_ids=parse_ids(completion_ids))
    session.top_n = show
    dist = session.peek()
    if as_json:
        render.print_json({
            "prompt_tokens": [t.to_json() for t in session.prompt_tokens],
            "completion_tokens": [s.token.to_json() for s in session.current.steps],
            "candidates": [c.to_json() for c in dist.candidates],
            "entropy": dist.entropy,
            "entropy_final": dist.entropy_final,
            "n_kept": dist.n_kept,
            "n_valid": dist.n_valid,
            "top_n_only": dist.top_n_only,
            "other_mass": dist.other_mass,
            "params": session.params.to_json(),
        })
        return
    out = render.console()
    out.print(render.candidates_table(
        dist.candidates, f"next token · entropy {dist.entropy:.2f} bits · "
        f"{dist.n_kept} kept"
        + (f", {dist.n_valid} valid" if dist.n_valid != dist.vocab_size else "")
        + f" of {dist.vocab_size}"))


@shared_options("model", "prompt", "sampling", "constraint")
def generate(
    prompt: Prompt,
    completion_ids: CompletionIds = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per step.")] = False,
    show: Annotated[int, typer.Option(help="Candidates per step in --jsonl.", min=1)] = 10,
    save: Annotated[Path | None, typer.Option(
        "--save", help="Write the session of this run to FILE (replay it with tokentui replay).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="With --save: replace an existing file that is not a session file.")] = False,
    *,
    opts: SharedOptions,
) -> None:
    """Generate from PROMPT, streaming the text (or one JSON line per step)."""
    from tokentui.engine.persist import session_file as store
    from tokentui.engine.prompts import IncrementalDecoder

    if save is not None and not force:
        store.check_writable(save.expanduser())
    config = run_config(opts, prompt, need_prompt=True)
    session = open_session(config, completion_ids=parse_ids(completion_ids))
    session.top_n = show
    decoder = IncrementalDecoder(session.tokenizer)
    try:
        for step in session.generate():
            if jsonl:
                render.print_json(step.to_json())
            else:
                sys.stdout.write(terminal_safe(decoder.push(step.token.id)))
                sys.stdout.flush()
    except KeyboardInterrupt:
        # Keep what was generated: save it, say so, exit 130 like any interrupted command.
        if not jsonl:
            sys.stdout.write("\n")
        n = len(session.current)
        if save is not None and n:
            target = store.save(session, save, force=force)
            typer.echo(f"interrupted after {n} tokens: saved them to {one_line(target)}", err=True)
        else:
            typer.echo(f"interrupted after {n} tokens", err=True)
        raise typer.Exit(130) from None
    if not jsonl:
        sys.stdout.write("\n")
        reason = session.current.finish_reason
        if reason:
            typer.echo(f"[{len(session.current)} tokens, stopped: {one_line(stop_note(session, reason))}]",
                       err=True)
    if save is not None:
        store.save(session, save, force=force)


def stop_note(session: object, reason: str) -> str:
    """The stop reason, and when max tokens cut a constrained run short, that it is incomplete."""
    from tokentui.engine.constraints import incomplete_note

    note = incomplete_note(session, reason)
    return f"{reason}, {note}" if note else reason
