"""Heatmap tables (rich) shared by both faces: the CLI prints them, the app shows them.

Token text is data (``rich.text.Text``); rows and columns carry the tokens, and positions
where a piece would not fit. Layers and heads are numbered from 0 by the callers.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from tokentui.engine.persist.attribution_file import SavedAttribution
from tokentui.engine.results import Token
from tokentui.palette import heat
from tokentui.visible import visible

NUMBERS_UP_TO = 16
"""Columns up to which cells carry their value (and columns their piece)."""


def shade(value: float) -> str:
    """The heat scale the app's attribution uses too (``tokentui.palette.heat``)."""
    return heat(value)


def short(token: Token, width: int = 6) -> Text:
    piece = visible(token.text)
    return Text(piece if len(piece) <= width else piece[:width - 1] + "…",
                style="bold magenta" if token.special else "")


def heatmap(title: str, row_labels: Sequence[Token], col_labels: Sequence[Token],
            values: Sequence[Sequence[float | None]], *, numbers: bool,
            col_positions: Sequence[int] | None = None) -> Table:
    """Rows x columns of shaded cells (None: not applicable); numbers when there is room.

    Rows carry their position and piece; columns their position and piece when cells carry
    numbers (few columns), else their position only (``col_positions``, default 0..n-1).
    """
    positions = list(col_positions) if col_positions is not None else list(range(len(col_labels)))
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False,
                  padding=(0, 0), collapse_padding=True)
    table.add_column("#", justify="right", style="dim")
    table.add_column("token", no_wrap=True)
    for pos, tok in zip(positions, col_labels, strict=True):
        if numbers:
            header = Text(f"{pos}\n", style="dim")
            header.append_text(short(tok, 4))
        else:
            header = Text(str(pos % 100), style="dim")
        table.add_column(header, justify="center", no_wrap=True, min_width=4 if numbers else 2)
    for i, (tok, row) in enumerate(zip(row_labels, values, strict=True)):
        cells: list[Text] = []
        for v in row:
            if v is None:
                cells.append(Text(" · " if numbers else "  ", style="dim"))
            elif numbers:
                fg = "black" if v > 0.5 else "white"
                cells.append(Text(f"{v:.2f}"[1:] if v < 1 else "1.0", style=f"{fg} on {shade(v)}"))
            else:
                cells.append(Text("  ", style=f"on {shade(v)}"))
        table.add_row(str(i), short(tok, 12), *cells)
    return table


def attribution_table(saved: SavedAttribution) -> Table:
    """Context tokens down, output tokens across: each column is one output token's scores."""
    outputs = [saved.tokens[p] for p in saved.outputs]
    rows = saved.tokens[:-1]
    columns = [saved.column(k) for k in range(len(outputs))]
    values = [[col[j] for col in columns] for j in range(len(rows))]
    table = heatmap(f"{saved.method} ({saved.aggregation})", rows, outputs, values,
                    numbers=len(outputs) <= NUMBERS_UP_TO, col_positions=saved.outputs)
    table.caption = ("rows: context tokens · columns: output tokens (position, piece) · "
                     "shade: |score| / column max · ·: at or after the output") + (
        f"\nnote: {saved.note}" if saved.note else "")
    table.caption_justify = "left"
    return table
