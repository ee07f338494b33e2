"""The divergence strip: one cell per completion token, shaded by the Jensen-Shannon divergence
of two models at that position (green: they agree, red: they part ways). Under NO_COLOR the
height of a block glyph carries the level instead (``▁`` to ``█``). The cursor cell is reversed.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tokentui.palette import hex_colour, ramp
from tokentui.tui.styling import GREEN, RED, YELLOW

GLYPHS = "▁▂▃▄▅▆▇█"
"""Eight levels of JS (0 to 1 bit) for monochrome terminals."""


def level(js: float) -> int:
    """0..7: which glyph a divergence gets (square-root scale, small differences stay visible)."""
    return min(len(GLYPHS) - 1, max(0, int((max(0.0, min(1.0, js)) ** 0.5) * len(GLYPHS))))


def shade(js: float) -> str:
    """Green (0) through yellow to red (1 bit), on the same square-root scale."""
    return hex_colour(ramp(js, (GREEN, YELLOW, RED), gamma=0.5))


def strip_text(values: Sequence[float], cursor: int | None, *, mono: bool) -> Text:
    """The strip as one Text: a coloured glyph per value (just the glyph when ``mono``)."""
    text = Text(no_wrap=False)
    for i, js in enumerate(values):
        glyph = GLYPHS[level(js)]
        style = Style() if mono else Style(color=shade(js))
        if i == cursor:
            style += Style(reverse=True, bold=True)
        text.append(glyph, style=style)
    return text


class DivergenceStrip(Widget):
    """One cell per token, shaded by Jensen-Shannon; the cursor marks the shown position."""

    DEFAULT_CSS = """
    DivergenceStrip { height: auto; min-height: 1; max-height: 4; }
    """

    values: reactive[tuple[float, ...]] = reactive(tuple, layout=True)
    """The JS divergence (bits) of each completion position."""
    cursor: reactive[int | None] = reactive(None)
    """The position shown in the panes below (None: none yet)."""

    def __init__(self, *, mono: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.mono = mono

    def render(self) -> Text:
        if not self.values:
            return Text("no steps yet: n steps both models, g generates", style="dim")
        return strip_text(self.values, self.cursor, mono=self.mono)
