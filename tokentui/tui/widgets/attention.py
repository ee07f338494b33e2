"""The attention pane: a half-block heatmap of one layer/head (or the head mean).

Each character cell shows two query rows (upper half = first row). Rows are queries,
columns are keys, for the whole sequence (prompt + completion). The last line names the
focused token and the keys it attends to most, since a cell grid cannot carry labels. Only
one layer's ``(heads, T, T)`` weights are held at a time; the app fetches them lazily.
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
from tokentui.tui.styling import token_text

COMPUTING = "computing…"
"""What the pane says while the weights are computed (after a run, a step, a move)."""
TOP_KEYS = 3
"""Keys named in the caption line."""
LOW, HIGH = (13, 17, 23), (88, 166, 255)
FOCUS_LOW, FOCUS_HIGH = (40, 30, 10), (255, 200, 60)
"""Ordinary rows in blue; the focused token's row in amber."""


def _colour(value: float, low: tuple[int, int, int], high: tuple[int, int, int]) -> str:
    t = float(min(1.0, max(0.0, value))) ** 0.5
    r, g, b = (round(a + (c - a) * t) for a, c in zip(low, high, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


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
            rows = self.grid_lines * 2
            r0, _c0 = self.window(rows, max(1, self.size.width - 2), size)
            self.border_subtitle = f"{size} tokens · rows {r0 + 1}-{min(size, r0 + rows)} · ▶ cursor"
        else:
            self.border_subtitle = ""

    @property
    def title(self) -> str:
        head = "mean of heads" if self.head < 0 else f"head {self.head + 1}/{self.n_heads}"
        return f"Attention · layer {self.layer + 1}/{max(1, self.n_layers)} · {head}"

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
                return Strip(list(line.render(self.app.console))).crop(0, width).adjust_cell_length(width)
            return Strip.blank(width)
        if self.has_caption and y == self.size.height - 1:
            caption = self.caption()
            caption.truncate(width, overflow="ellipsis")
            return Strip(list(caption.render(self.app.console))).crop(0, width).adjust_cell_length(width)
        size = matrix.shape[0]
        gutter = 2
        cols = max(1, width - gutter)
        rows = self.grid_lines * 2
        r0, c0 = self.window(rows, cols, size)
        top, bottom = r0 + 2 * y, r0 + 2 * y + 1
        focus = min(self.focus_row, size - 1)
        mark = "▶ " if focus in (top, bottom) else "  "
        segments = [Segment(mark, Style(color="#ffc83c", bold=True))]
        for c in range(c0, min(size, c0 + cols)):
            upper = self._cell(matrix, top, c, focus)
            lower = self._cell(matrix, bottom, c, focus)
            if upper is None and lower is None:
                segments.append(Segment(" "))
            elif lower is None:
                segments.append(Segment("▀", Style(color=upper)))
            else:
                segments.append(Segment("▀", Style(color=upper or "#000000", bgcolor=lower)))
        return Strip(segments).adjust_cell_length(width)

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
