"""score: how a model reads a given text, token by token (GLTR-style), for people or pipes."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from tokentui.cli import progress, render
from tokentui.cli.options import SharedOptions, shared_options
from tokentui.engine.errors import ParameterError
from tokentui.visible import visible

if TYPE_CHECKING:
    from rich.console import Console

    from tokentui.engine.analysis.score import ScoreResult

STYLES = ("black on #7ee07e", "black on #f2e35c", "black on #f5a35c", "black on #ef6f6f",
          "black on #c48ef0", "dim")
"""Per rank bucket: 1, 2-10, 11-100, 101-1000, >1000, no probability."""
GLYPHS = ("", "¹", "²", "³", "⁴", "∅")
"""Written after a token under NO_COLOR (or without colours): the rank's order of magnitude."""


def register(app: typer.Typer) -> None:
    app.command("score")(score)


def read_text(text: str | None, file: str | None) -> tuple[str, str]:
    """The text to score and where it came from; one-line errors for empty, binary or non-UTF-8."""
    from tokentui.engine.analysis.score import MAX_TEXT_BYTES, decode_text, read_text_file

    if text is not None and file is not None:
        raise ParameterError("give TEXT or --file, not both")
    if text is None and file is None:
        raise ParameterError("give the text to score: TEXT, --file FILE, or - for standard input")
    if text is not None and text != "-":
        return decode_text(text.encode("utf-8", "surrogateescape"), "the text argument"), \
            "the text argument"
    if file is not None and file != "-":
        return read_text_file(file), str(Path(file).expanduser())
    return decode_text(sys.stdin.buffer.read(MAX_TEXT_BYTES + 1), "standard input"), "standard input"


def check_html_target(path: Path) -> Path:
    path = path.expanduser()
    if path.is_dir():
        raise ParameterError(f"--html {path} is a folder: give a file name")
    if not path.parent.is_dir():
        raise ParameterError(f"--html: the folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise ParameterError(f"--html: cannot write in {path.parent}")
    return path


@shared_options("model")
def score(
    text: Annotated[str | None, typer.Argument(
        help="The text to score; - reads standard input.", show_default=False)] = None,
    file: Annotated[str | None, typer.Option(
        "--file", "-f", help="Read the text from FILE (- for standard input).")] = None,
    top: Annotated[int, typer.Option("--top", help="How many of the most surprising tokens to list.",
                                     min=1)] = 10,
    alternatives: Annotated[int, typer.Option(
        "--alternatives", help="The model's top alternatives kept per token.", min=1, max=100)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object for the whole text.")] = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per token.")] = False,
    html_file: Annotated[Path | None, typer.Option(
        "--html", help="Also write one offline HTML page (alternatives on hover or focus).")] = None,
    chat: Annotated[str | None, typer.Option(
        "--chat", help="Score the text as the assistant's answer to PROMPT (chat template).")] = None,
    system: Annotated[str | None, typer.Option(
        "--system", help="System message for --chat.")] = None,
    prefix: Annotated[str | None, typer.Option(
        "--prefix", help="Context the text follows, not scored itself.")] = None,
    window: Annotated[int | None, typer.Option(
        "--window", help="Read a long text in windows of N tokens (default: the model's context).",
        min=2)] = None,
    stride: Annotated[int | None, typer.Option(
        "--stride", help="Tokens each window moves on (default: half the window); every token "
        "is scored with at least window - stride tokens before it.", min=1)] = None,
    *,
    opts: SharedOptions,
) -> None:
    """Score a text: each token's probability, rank, surprisal and the model's alternatives,
    per-line surprisal, perplexity, and the most surprising tokens first.

    The first token with nothing before it has no probability: --prefix or --chat gives it one."""
    from tokentui.cli.runtime import load_backend, model_config

    if as_json and jsonl:
        raise ParameterError("give --json or --jsonl, not both")
    if chat is not None and prefix is not None:
        raise ParameterError("give --chat or --prefix, not both")
    if system is not None and chat is None:
        raise ParameterError("--system goes with --chat")
    if window is not None and stride is not None and stride >= window:
        raise ParameterError(f"--stride must be smaller than --window ({window})")
    body, source = read_text(text, file)
    target = check_html_target(html_file) if html_file is not None else None
    config = model_config(opts)
    backend = load_backend(config)
    from tokentui.engine.analysis.score import score_text, text_ids

    prefix_ids, ids = text_ids(backend.tokenizer, body, prefix=prefix, chat=chat, system=system)
    with scoring_progress(len(ids)) as advance:
        result = score_text(backend, ids, prefix_ids=prefix_ids, window=window, stride=stride,
                            top_n=alternatives, progress=advance)
    if target is not None:
        from tokentui.engine.persist.files import atomic_write_text
        from tokentui.export.score_html import to_html

        atomic_write_text(target, to_html(result, top=top, source=source))
    if as_json:
        render.print_json(result.to_json())
        return
    if jsonl:
        for tok in result.tokens:
            render.print_json(tok.to_json())
        return
    print_report(render.console(), result, top=top)
    if target is not None:
        typer.echo(f"wrote {target}", err=True)


def scoring_progress(total: int) -> contextlib.AbstractContextManager[progress.CountCallback]:
    """A bar on stderr while a long text (2048 tokens or more) is scored."""
    return progress.counts("scoring", quiet=total < SCORING_BAR_FROM, total=total)


SCORING_BAR_FROM = 2048
"""Shorter texts score in a moment: no bar."""


def plain_console(out: Console) -> bool:
    """No colours will show: NO_COLOR is set, or the output is not a colour terminal."""
    return bool(out.no_color or out.color_system is None)


def coloured_text(result: ScoreResult, *, glyphs: bool) -> Text:
    """The text, each token styled by its rank bucket (and marked with a glyph when asked)."""
    from tokentui.engine.analysis.score import rank_bucket

    out = Text()
    for tok in result.tokens:
        bucket = rank_bucket(tok.rank)
        piece = visible(tok.text, glyphs=False)
        if not (glyphs and GLYPHS[bucket]):
            out.append(piece, style=STYLES[bucket])
            continue
        head, newline, tail = piece.partition("\n")  # the mark stays on the token's line
        out.append(head or (" " if newline else ""), style=STYLES[bucket])
        out.append(GLYPHS[bucket], style="dim")
        if newline:
            out.append(newline + tail, style=STYLES[bucket])
    return out


LEGEND = ("1", "2-10", "11-100", "101-1000", ">1000", "no context")


def legend(*, glyphs: bool) -> Text:
    """``rank:`` and one swatch per bucket (with its glyph when glyphs are used); fits 80 columns."""
    out = Text("rank: ")
    for i, label in enumerate(LEGEND):
        mark = GLYPHS[i] + " " if glyphs and GLYPHS[i] else ""
        out.append(f" {mark}{label} ", style=STYLES[i])
        out.append(" ")
    return out


def print_report(out: Console, result: ScoreResult, *, top: int) -> None:
    from tokentui.engine.analysis.score import NO_CONTEXT

    glyphs = plain_console(out)
    out.print(legend(glyphs=glyphs))
    out.print()
    out.print(coloured_text(result, glyphs=glyphs))
    out.print()
    if result.tokens and result.tokens[0].p is None:
        out.print(Text(f"token 0: {NO_CONTEXT} (give --prefix or --chat for a context)",
                       style="dim"))
    lines = Table(title="mean surprisal per line", title_justify="left")
    lines.add_column("line", justify="right", style="dim")
    lines.add_column("bits", justify="right")
    lines.add_column("tokens", justify="right", style="dim")
    lines.add_column("text", overflow="ellipsis", no_wrap=True, max_width=70)
    for ln in result.lines():
        lines.add_row(str(ln.number), "–" if ln.mean_surprisal_bits is None else
                      f"{ln.mean_surprisal_bits:.2f}", str(ln.n_scored), Text(visible(ln.text, glyphs=False)))
    out.print(lines)
    summary = (f"perplexity {result.perplexity:.3f} · {result.bits_per_token:.3f} bits per token"
               if result.perplexity is not None else "nothing scored")
    summary += f" · {result.n_tokens} tokens, {len(result.scored)} scored · {result.model}"
    if result.window:
        summary += f" · windows of {result.window}, stride {result.stride}"
    if result.prefix_tokens:
        summary += f" · after {result.prefix_tokens} context tokens"
    if result.top_n_only:
        summary += " · a server's top N: entropy unknown, ranks beyond N shown as ?"
    out.print(Text(summary, style="bold"))
    table = Table(title=f"the {top} most surprising tokens", title_justify="left")
    for name, justify in (("#", "right"), ("token", "left"), ("p", "right"), ("rank", "right"),
                          ("bits", "right"), ("entropy", "right"), ("the model expected", "left")):
        table.add_column(name, justify=justify)
    for tok in result.surprises(top):
        expected = Text()
        for c in tok.top[:3]:
            expected.append(visible(c.text), style="bold" if c.id == tok.id else "")
            expected.append(f" {c.p_base:.2f}  ", style="dim")
        table.add_row(str(tok.position), render.token_cell(tok.token), f"{tok.p:.4g}",
                      str(tok.rank) if tok.rank is not None else "?", f"{tok.surprisal_bits:.2f}",
                      "?" if tok.entropy_bits is None else f"{tok.entropy_bits:.2f}", expected)
    out.print(table)
