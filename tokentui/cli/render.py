"""Rich tables and JSON for the one-shot commands (token text is always plain data)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from tokentui.engine.persist.files import json_text
from tokentui.engine.results import Candidate, Token
from tokentui.visible import one_line, terminal_safe, visible

__all__ = ["SafeConsole", "console", "one_line", "print_json", "safe", "terminal_safe", "visible"]


def safe(text: object, style: str = "") -> Text:
    """Outside text (a file, a server, a model, an argument) as a Rich Text, made terminal-safe."""
    return Text(terminal_safe(text), style=style)


def token_cell(token: Token) -> Text:
    return Text(visible(token.text), style="bold magenta" if token.special else "")


def print_json(data: Any) -> None:
    sys.stdout.write(json_text(data) + "\n")
    sys.stdout.flush()


class SafeConsole(Console):
    """A Console that, as a last line of defence, writes no raw control character of its own
    content: every text segment goes through :func:`terminal_safe` (Rich's own style and
    cursor codes are added after, so colours still work)."""

    def _render_buffer(self, buffer: Any) -> str:
        return super()._render_buffer(
            seg if seg.control else Segment(terminal_safe(seg.text), seg.style, seg.control)
            for seg in buffer)


def console(*, stderr: bool = False) -> Console:
    return SafeConsole(highlight=False, stderr=stderr)


def tokens_table(tokens: Sequence[Token], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("id", justify="right")
    table.add_column("token")
    table.add_column("special", justify="center")
    for i, tok in enumerate(tokens):
        table.add_row(str(i), str(tok.id), token_cell(tok), "yes" if tok.special else "")
    return table


def candidates_table(candidates: Sequence[Candidate], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name, justify in (("rank", "right"), ("id", "right"), ("token", "left"),
                          ("p_base", "right"), ("p_final", "right"), ("logit", "right"),
                          ("", "left")):
        table.add_column(name, justify=justify)
    for c in candidates:
        style = "" if c.kept and c.valid else "dim strike"
        bar = "█" * max(0, round(c.p_final * 20)) if c.kept and c.valid else ""
        flags = [] if c.kept else ["cut"]
        if not c.valid:
            flags.append("invalid")
        table.add_row(str(c.rank), str(c.id), token_cell(c.token),
                      f"{c.p_base:.4f}", f"{c.p_final:.4f}", f"{c.logit:.2f}",
                      Text(bar or " ".join(flags), style="green" if bar else "dim"), style=style)
    return table
