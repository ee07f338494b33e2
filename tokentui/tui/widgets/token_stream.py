"""The token stream: prompt tokens dimmed, completion tokens coloured, a cursor over them.

The widget lays the tokens out itself (so it knows which line holds the cursor and which
token a click hits). The cursor counts completion positions: ``0..len(steps)``, the last one
being the *next* token, not generated yet; negative values are prompt tokens (``-1`` is the
prompt's last token), so the attention row, the Inside screen and attribution can start there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static

from tokentui.engine.results import StepResult, Token
from tokentui.tui.styling import COLOUR_MODES, legend, step_style, token_text

PROMPT_STYLES = (Style(color="#8b949e"), Style(color="#6e7681"))
"""Prompt tokens alternate two greys so their boundaries stay visible."""
CURSOR_STYLE = Style(reverse=True, bold=True)
NEXT_SLOT = "▁"
"""Shown after the last token when the cursor is on the next (not yet generated) token."""


@dataclass
class Cell:
    """Where a token was drawn: line, first column, width, cursor index (negative = prompt)."""

    line: int
    x: int
    width: int
    index: int


class _StreamText(Static):
    """The laid-out text; reports clicks as line/column."""

    @dataclass
    class Clicked(Message):
        line: int
        x: int

    def on_click(self, event: events.Click) -> None:
        self.post_message(self.Clicked(event.y, event.x))


class TokenStream(VerticalScroll, can_focus=True):
    """Prompt and completion tokens with a movable cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1)", "Token ←", show=False),
        Binding("right", "move(1)", "Token →", show=False),
        Binding("home", "move_to(0)", "First token", show=False),
        Binding("end", "move_to(-1)", "Next token", show=False),
        Binding("up", "alternative(-1)", "Alt ↑", show=False),
        Binding("down", "alternative(1)", "Alt ↓", show=False),
        Binding("enter", "choose", "Branch"),
        Binding("backspace", "delete_last", "Delete", show=False),
    ]

    cursor: reactive[int] = reactive(0)
    """Completion index under the cursor; ``len(steps)`` is the next token, negative the prompt."""
    colour_mode: reactive[str] = reactive("bands")
    """How completion tokens are coloured (one of ``COLOUR_MODES``)."""

    @dataclass
    class CursorMoved(Message):
        """The cursor moved to completion ``index`` (``at_next``: past the last token; a
        negative index is a prompt token)."""

        index: int
        at_next: bool

    @dataclass
    class AlternativeMove(Message):
        """Up/down pressed on the stream: move the alternatives selection."""

        delta: int

    class Choose(Message):
        """Enter pressed: branch with the selected alternative."""

    class DeleteLast(Message):
        """Backspace pressed: delete the newest token."""

    def __init__(self, *, mono: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.mono = mono
        self.prompt_tokens: list[Token] = []
        self.steps: list[StepResult] = []
        self.cells: list[Cell] = []
        self.rendered = Text()
        """The laid-out text as last drawn (tests read its ``plain``)."""
        self._text = _StreamText(id="stream-text")
        self.overlay: Callable[[list[int]], dict[int, Style]] | None = None
        """Styles by sequence position laid over the colour mode (the attribution view)."""

    def compose(self):
        yield self._text

    def on_mount(self) -> None:
        self.border_title = "Tokens"
        self._update_legend()

    # ----- data ------------------------------------------------------------------
    def set_tokens(self, prompt_tokens: list[Token], steps: list[StepResult],
                   cursor: int | None = None) -> None:
        """Replace everything shown (after a branch, a switch, a delete, a new prompt)."""
        self.prompt_tokens = list(prompt_tokens)
        self.steps = list(steps)
        target = len(self.steps) if cursor is None else cursor
        self.set_reactive(TokenStream.cursor, self._clamp(target))
        self.relayout()
        self.post_message(self.CursorMoved(self.cursor, self.cursor == len(self.steps)))

    def append(self, step: StepResult) -> None:
        """One new token; the cursor follows when it was on the newest token or the next slot."""
        self.extend([step])

    def extend(self, steps: list[StepResult]) -> None:
        """New tokens, laid out once for all of them (a run draws a batch per redraw); the
        cursor follows when it was on the newest token or the next slot."""
        if not steps:
            return
        follow = self.cursor >= 0 and self.cursor >= len(self.steps) - 1  # a prompt cursor stays
        self.steps.extend(steps)
        if follow:
            self.set_reactive(TokenStream.cursor, len(self.steps) - 1)
            self.post_message(self.CursorMoved(self.cursor, False))
        self.relayout()

    @property
    def at_next(self) -> bool:
        return self.cursor >= len(self.steps)

    @property
    def in_prompt(self) -> bool:
        return self.cursor < 0

    @property
    def position(self) -> int:
        """The cursor as a sequence position (prompt + completion; the next token at the end)."""
        return len(self.prompt_tokens) + self.cursor

    @property
    def current_step(self) -> StepResult | None:
        return None if self.at_next or self.in_prompt else self.steps[self.cursor]

    def _clamp(self, index: int) -> int:
        return max(-len(self.prompt_tokens), min(len(self.steps), index))

    # ----- actions ----------------------------------------------------------------
    def action_move(self, delta: int) -> None:
        self.cursor = self._clamp(self.cursor + delta)

    def action_move_to(self, index: int) -> None:
        self.cursor = len(self.steps) if index < 0 else min(index, len(self.steps))

    def action_alternative(self, delta: int) -> None:
        self.post_message(self.AlternativeMove(delta))

    def action_choose(self) -> None:
        self.post_message(self.Choose())

    def action_delete_last(self) -> None:
        self.post_message(self.DeleteLast())

    def cycle_colour_mode(self) -> str:
        i = COLOUR_MODES.index(self.colour_mode)
        self.colour_mode = COLOUR_MODES[(i + 1) % len(COLOUR_MODES)]
        return self.colour_mode

    def watch_cursor(self, old: int, new: int) -> None:
        if old != new:
            self.relayout()
            self.post_message(self.CursorMoved(new, new >= len(self.steps)))

    def watch_colour_mode(self) -> None:
        self._update_legend()
        self.relayout()

    def _update_legend(self) -> None:
        self.border_subtitle = legend(self.colour_mode, mono=self.mono)

    def on_resize(self) -> None:
        self.relayout()

    def on__stream_text_clicked(self, event: _StreamText.Clicked) -> None:
        for cell in self.cells:
            if cell.line == event.line and cell.x <= event.x < cell.x + cell.width:
                self.cursor = self._clamp(cell.index)
                self.focus()
                return

    # ----- layout -------------------------------------------------------------------
    def relayout(self) -> None:
        """Wrap the tokens to the pane width, remember each token's cell, scroll to the cursor."""
        if not self.is_mounted:
            return
        width = max(8, self.scrollable_content_region.width - 1)
        lines: list[Text] = [Text()]
        cells: list[Cell] = []
        cursor_line = 0

        def put(piece: Text, index: int | None, newline_after: bool) -> None:
            nonlocal cursor_line
            while True:
                line = lines[-1]
                room = width - line.cell_len
                if piece.cell_len <= room or (line.cell_len == 0 and room <= 0):
                    break
                if line.cell_len > 0:
                    lines.append(Text())
                    continue
                head, piece = piece[:room], piece[room:]  # a token wider than the pane
                cells.append(Cell(len(lines) - 1, 0, head.cell_len, index))
                line.append_text(head)
                lines.append(Text())
            cells.append(Cell(len(lines) - 1, lines[-1].cell_len, piece.cell_len, index))
            if index == self.cursor:
                cursor_line = len(lines) - 1
            lines[-1].append_text(piece)
            if newline_after:
                lines.append(Text())

        over = self.overlay([t.id for t in self.prompt_tokens] + [s.token.id for s in self.steps]) \
            if self.overlay else {}
        n_prompt = len(self.prompt_tokens)
        for i, tok in enumerate(self.prompt_tokens):
            piece = token_text(tok, style=PROMPT_STYLES[i % 2])
            if i in over:
                piece.stylize(over[i])
            if i - n_prompt == self.cursor:
                piece.stylize(CURSOR_STYLE)
                if self.mono:
                    piece = Text("▸") + piece
            put(piece, i - n_prompt, "\n" in tok.text)
        for i, step in enumerate(self.steps):
            piece = token_text(step.token, style=step_style(step, self.colour_mode, mono=self.mono))
            if len(self.prompt_tokens) + i in over:
                piece.stylize(over[len(self.prompt_tokens) + i])
            if i == self.cursor:
                piece.stylize(CURSOR_STYLE)
                if self.mono:
                    piece = Text("▸") + piece
            put(piece, i, "\n" in step.token.text)
        if self.at_next:
            put(Text(NEXT_SLOT, style=CURSOR_STYLE), len(self.steps), False)
        self.cells = cells
        text = Text("\n").join(lines)
        text.no_wrap = True
        # A new layout of the screen only when the text gets taller or shorter (a run adds
        # tokens to the last line most of the time): a layout costs the UI thread far more.
        grew = len(lines) != len(self.rendered.plain.split("\n")) or not self.rendered.plain
        self.rendered = text
        self._text.update(text, layout=grew)
        self.call_after_refresh(self.scroll_to_region, Region(0, cursor_line, 1, 1), animate=False)
