"""The attention pane: a labelled heatmap of one layer/head (or the head mean).

One line per query row, one cell per key column, for the whole sequence (prompt +
completion). Rows are labelled on the left with their position and piece; columns on the
top line with their piece when a cell is wide enough (short sequences), else with their
position every few columns. The last line names the focused token and the keys it attends
to most. Only one layer's ``(heads, T, T)`` weights are held at a time; the app fetches
them lazily. Layers and heads are numbered from 0, as in the CLI and the JSON.
"""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from tokentui.engine.results import Token
from tokentui.palette import hex_colour, ramp
from tokentui.tui.styling import token_text

COMPUTING = "computing…"
"""What the pane says while the weights are computed (after a run, a step, a move)."""
TOP_KEYS = 3
"""Keys named in the caption line."""
ROW_LABEL = 6
"""Characters of a row's piece in the left gutter (when the pane is wide enough)."""
MAX_CELL = 5
"""Widest key column: wide columns carry their piece as the label."""
LABEL_STYLE = Style(color="#8b949e")
BLANK = Style()
LOW, HIGH = (13, 17, 23), (88, 166, 255)
FOCUS_LOW, FOCUS_HIGH = (40, 30, 10), (255, 200, 60)
"""Ordinary rows in blue; the focused token's row in amber."""


def _colour(value: float, low: tuple[int, int, int], high: tuple[int, int, int]) -> str:
    """A weight's shade on a square-root scale (small weights stay visible)."""
    return hex_colour(ramp(value, (low, high), gamma=0.5))


class AttentionPane(Widget):
    """Heatmap of ``weights[head]`` (or their mean) with the focused row highlighted."""

    DEFAULT_CSS = "AttentionPane { height: 1fr; }"

    layer: reactive[int] = reactive(0)
    """Layer shown (0-based)."""
    head: reactive[int] = reactive(-1)
    """Head shown; -1 = the mean over heads."""
    focus_row: reactive[int] = reactive(0)
    """Sequence position of the token under the cursor."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.n_layers = 0
        self.n_heads = 0
        self.weights: np.ndarray | None = None
        """``(heads, T, T)`` of ``layer``, or None until computed."""
        self.tokens: list[Token] = []
        """The ``T`` tokens the weights are over (for the caption line)."""
        self.message = "attention appears once the model is loaded and a prompt is set"
        self.stale = True
        """The weights do not match the sequence any more (the app refetches when visible)."""

    def configure(self, n_layers: int, n_heads: int) -> None:
        self.n_layers, self.n_heads = n_layers, n_heads
        self.layer = min(self.layer, max(0, n_layers - 1))
        self._retitle()

    def set_weights(self, weights: np.ndarray | None, message: str = "",
                    tokens: list[Token] | None = None) -> None:
        """New weights for the current layer (None with a message when unavailable)."""
        self.weights = weights
        self.tokens = list(tokens or [])
        self.message = message
        self.stale = False
        self._retitle()
        self.refresh()

    def computing(self) -> None:
        """The weights for the current sequence are being computed: say so."""
        self.weights = None
        self.message = COMPUTING
        self.refresh()

    def message_lines(self, width: int) -> list[Text]:
        """The message wrapped to ``width`` (whole words; never a sentence cut off)."""
        text = Text(self.message, style="#6e7681 italic")
        return list(text.wrap(self.app.console, max(1, width)))

    def unavailable(self, reason: str) -> None:
        self.add_class("-unavailable")
        self.set_weights(None, reason)

    def shift_layer(self, delta: int) -> None:
        if self.n_layers:
            self.layer = (self.layer + delta) % self.n_layers

    def shift_head(self, delta: int) -> None:
        if self.n_heads:
            # -1 (mean) then 0..heads-1, cycling
            self.head = (self.head + 1 + delta) % (self.n_heads + 1) - 1

    def watch_layer(self) -> None:
        self._retitle()

    def watch_head(self) -> None:
        self._retitle()
        self.refresh()

    def watch_focus_row(self) -> None:
        self._retitle()
        self.refresh()

    def _retitle(self) -> None:
        self.border_title = self.title
        if self.weights is not None:
            size = self.weights.shape[-1]
            _gutter, _cell, rows, cols = self.geometry(size)
            r0, _c0 = self.window(rows, cols, size)
            self.border_subtitle = (f"{size} tokens · rows {r0}-{min(size, r0 + rows) - 1} · "
                                    "▶ cursor")
        else:
            self.border_subtitle = ""

    @property
    def title(self) -> str:
        # 0-based, as the CLI's --layer/--head, the JSON and the exports number them
        head = "mean of heads" if self.head < 0 else f"head {self.head} of 0-{max(0, self.n_heads - 1)}"
        return f"Attention · layer {self.layer} of 0-{max(0, self.n_layers - 1)} · {head}"

    def matrix(self) -> np.ndarray | None:
        if self.weights is None:
            return None
        if self.head < 0 or self.head >= self.weights.shape[0]:
            return self.weights.mean(axis=0)
        return self.weights[self.head]

    @property
    def has_caption(self) -> bool:
        size = self.weights.shape[-1] if self.weights is not None else 0
        return self.size.height >= 4 and size > 0 and len(self.tokens) == size

    @property
    def grid_lines(self) -> int:
        """Lines of heatmap (the caption takes the last line when there is one)."""
        return max(1, self.size.height - 1) if self.has_caption else max(1, self.size.height)

    def caption(self) -> Text:
        """``▶ token attends to key @position weight · ...`` for the focused row of the shown matrix."""
        matrix = self.matrix()
        if matrix is None or not self.has_caption:
            return Text()
        focus = min(self.focus_row, matrix.shape[0] - 1)
        row = matrix[focus, : focus + 1]
        order = np.argsort(-row, kind="stable")[:TOP_KEYS]
        parts: list[Text | str] = [Text("▶ ", style="bold #ffc83c"), token_text(self.tokens[focus]),
                                   Text(f" @{focus} attends to ", style="#8b949e")]
        for n, key in enumerate(order):
            if n:
                parts.append(Text(" · ", style="#6e7681"))
            parts += [token_text(self.tokens[int(key)]),
                      Text(f" @{int(key)} {float(row[key]):.2f}", style="#8b949e")]
        return Text.assemble(*parts, no_wrap=True, overflow="ellipsis")

    def window(self, rows: int, cols: int, size: int) -> tuple[int, int]:
        """First query row and first key column shown, so the focused row is visible."""
        focus = min(self.focus_row, size - 1)
        r0 = max(0, min(focus - rows // 2, size - rows))
        c0 = max(0, min(focus + 1, size) - cols)
        return r0, c0

    def geometry(self, size: int) -> tuple[int, int, int, int]:
        """``(gutter, cell, rows, cols)``: label gutter width, characters per key column, query
        rows and key columns that fit (the top line holds the column labels)."""
        width = max(1, self.size.width)
        digits = len(str(max(0, size - 1)))
        piece = ROW_LABEL if width >= 2 + digits + 1 + ROW_LABEL + 12 else 0
        gutter = 2 + digits + 1 + (piece + 1 if piece else 0)
        room = max(1, width - gutter)
        cell = max(1, min(MAX_CELL, room // max(1, size)))
        return gutter, cell, max(1, self.grid_lines - 1), max(1, room // cell)

    def _line(self, segments: list[Segment], width: int) -> Strip:
        # every segment carries a Style: Textual's NO_COLOR filter cannot take None
        return Strip([Segment(text, style or BLANK) for text, style, _ in segments]) \
            .crop(0, width).adjust_cell_length(width, BLANK)

    def _row_label(self, row: int, gutter: int, size: int, focus: int) -> list[Segment]:
        """``▶ 12 ·cat   ``: the cursor mark, the row's position and (room permitting) its piece."""
        digits = len(str(max(0, size - 1)))
        mark = Segment("▶ " if row == focus else "  ", Style(color="#ffc83c", bold=True))
        out = [mark, Segment(f"{row:>{digits}} ", LABEL_STYLE)]
        piece = gutter - 2 - digits - 2
        if piece > 0:
            text = token_text(self.tokens[row]) if row < len(self.tokens) else Text("")
            text.truncate(piece, overflow="ellipsis", pad=True)
            out += [*text.render(self.app.console), Segment(" ")]
        return out

    def column_labels(self, size: int) -> Text:
        """The top line: each key column's piece when its cell fits one, else positions
        every few columns (``0    5    10``)."""
        gutter, cell, rows, cols = self.geometry(size)
        _r0, c0 = self.window(rows, cols, size)
        shown = range(c0, min(size, c0 + cols))
        out = Text(" " * gutter, no_wrap=True)
        if cell >= 3 and len(self.tokens) == size:
            for c in shown:
                piece = token_text(self.tokens[c])
                piece.truncate(cell - 1, overflow="ellipsis", pad=True)
                out.append_text(piece)
                out.append(" ")
            return out
        step = max(5, -(-(len(str(size)) + 1) // cell))  # room for the number and a space
        step = 10 if step > 5 else 5
        line = [" "] * (len(shown) * cell)
        for k, c in enumerate(shown):
            if c % step == 0 or k == 0:
                label = str(c)
                at = k * cell
                if all(ch == " " for ch in line[max(0, at - 1):at + len(label)]) and \
                        at + len(label) <= len(line):
                    line[at:at + len(label)] = label
        out.append("".join(line), style=LABEL_STYLE)
        return out

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        matrix = self.matrix()
        if matrix is None:
            lines = self.message_lines(width)
            if y < len(lines):
                line = lines[y]
                if y == self.size.height - 1 and len(lines) > y + 1:  # no room: say so with …
                    line.truncate(max(1, width - 1))
                    line.append("…")
                line.end = ""
                return self._line(list(line.render(self.app.console)), width)
            return Strip.blank(width, BLANK)
        if self.has_caption and y == self.size.height - 1:
            caption = self.caption()
            caption.truncate(width, overflow="ellipsis")
            return self._line(list(caption.render(self.app.console)), width)
        size = matrix.shape[0]
        if y == 0:
            return self._line(list(self.column_labels(size).render(self.app.console)), width)
        gutter, cell, rows, cols = self.geometry(size)
        r0, c0 = self.window(rows, cols, size)
        row = r0 + y - 1
        if row >= size:
            return Strip.blank(width, BLANK)
        focus = min(self.focus_row, size - 1)
        segments = self._row_label(row, gutter, size, focus)
        for c in range(c0, min(size, c0 + cols)):
            colour = self._cell(matrix, row, c, focus)
            segments.append(Segment(" " * cell, BLANK if c > row or colour is None
                                    else Style(bgcolor=colour)))
        return self._line(segments, width)

    @staticmethod
    def _cell(matrix: np.ndarray, row: int, col: int, focus: int) -> str | None:
        size = matrix.shape[0]
        if row >= size:
            return None
        values = matrix[row, : row + 1]
        peak = float(values.max()) if values.size else 1.0
        value = float(matrix[row, col]) / peak if peak > 0 else 0.0
        if col > row:
            value = 0.0
        low, high = (FOCUS_LOW, FOCUS_HIGH) if row == focus else (LOW, HIGH)
        return _colour(value, low, high)
