"""The token stream: prompt tokens dimmed, completion tokens coloured, a cursor over them.

The widget lays the tokens out itself (so it knows which line holds the cursor and which
token a click hits). The cursor counts completion positions: ``0..len(steps)``, the last one
being the *next* token, not generated yet; negative values are prompt tokens (``-1`` is the
prompt's last token), so the attention row, the Inside screen and attribution can start there.

It draws with Textual's line API: a run's redraw restyles the old and the new newest token,
wraps again only from their line (``stream_layout``), and repaints only the lines that changed
and are on screen; the screen is laid out again only when the widget itself changes size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from tokentui.engine.results import StepResult, Token
from tokentui.tui.stream_layout import Changed, WrappedLines
from tokentui.tui.styling import COLOUR_MODES, legend, step_style, token_text

PROMPT_STYLES = (Style(color="#8b949e"), Style(color="#6e7681"))
"""Prompt tokens alternate two greys so their boundaries stay visible."""
CURSOR_STYLE = Style(reverse=True, bold=True)
MAX_CACHED_LINES = 1000
"""Rendered lines kept at most (a few screens' worth; the cache starts again past it)."""
NEXT_SLOT = "▁"
"""Shown after the last token when the cursor is on the next (not yet generated) token."""


@dataclass
class Cell:
    """Where a token was drawn: line, first column, width, cursor index (negative = prompt)."""

    line: int
    x: int
    width: int
    index: int


class TokenStream(ScrollView, can_focus=True):
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
        negative index is a prompt token; ``followed``: it followed new tokens, no key moved it)."""

        index: int
        at_next: bool
        followed: bool = False

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
        self.overlay: Callable[[list[int]], dict[int, Style]] | None = None
        """Styles by sequence position laid over the colour mode (the attribution view)."""
        self.wrapped = WrappedLines()
        """The tokens' pieces (prompt, completion, the next-token slot) wrapped to the pane."""
        self._strips: dict[int, Strip] = {}
        """Rendered lines by line number, dropped when a line changes."""
        self._drawn_cursor: int | None = None
        """The cursor the pieces were styled with."""

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
        """New tokens, drawn once for all of them (a run draws a batch per redraw); the
        cursor follows when it was on the newest token or the next slot."""
        if not steps:
            return
        follow = self.cursor >= 0 and self.cursor >= len(self.steps) - 1  # a prompt cursor stays
        self.steps.extend(steps)
        if follow:
            self.set_reactive(TokenStream.cursor, len(self.steps) - 1)
            self.post_message(self.CursorMoved(self.cursor, False, followed=True))
        self._redraw_from_cursor()

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

    @property
    def rendered(self) -> Text:
        """The laid-out text, one line per row (tests read its ``plain``)."""
        text = Text("\n").join(self.wrapped.line_text(i) for i in range(self.wrapped.n_lines))
        text.no_wrap = True
        return text

    @property
    def cells(self) -> list[Cell]:
        """Where each token was drawn (a token wider than the pane has one cell per line)."""
        n_prompt = len(self.prompt_tokens)
        return [Cell(line, f.x, f.width, f.order - n_prompt)
                for line, fragments in enumerate(self.wrapped.lines) for f in fragments]

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
            self._redraw_from_cursor()
            self.post_message(self.CursorMoved(new, new >= len(self.steps)))

    def watch_colour_mode(self) -> None:
        self._update_legend()
        self.relayout()

    def _update_legend(self) -> None:
        self.border_subtitle = legend(self.colour_mode, mono=self.mono)

    def on_resize(self) -> None:
        self.relayout()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()  # a new theme or class: the lines render in new colours

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        order = self.wrapped.piece_at(offset.y + self.scroll_offset.y, offset.x + self.scroll_offset.x)
        if order is not None:
            self.cursor = self._clamp(order - len(self.prompt_tokens))
            self.focus()

    # ----- layout -------------------------------------------------------------------
    def _piece(self, order: int, over: dict[int, Style]) -> tuple[Text, bool]:
        """Token ``order`` (prompt first, then completion, then the next slot) as drawn, and
        whether it ends its line (it holds a newline)."""
        n_prompt = len(self.prompt_tokens)
        index = order - n_prompt
        if index == len(self.steps):
            return Text(NEXT_SLOT, style=CURSOR_STYLE), False
        if index < 0:
            token = self.prompt_tokens[order]
            piece = token_text(token, style=PROMPT_STYLES[order % 2])
        else:
            token = self.steps[index].token
            piece = token_text(token, style=step_style(self.steps[index], self.colour_mode,
                                                       mono=self.mono))
        if order in over:
            piece.stylize(over[order])
        if index == self.cursor:
            piece.stylize(CURSOR_STYLE)
            if self.mono:
                piece = Text("▸") + piece
        return piece, "\n" in token.text

    def _n_pieces(self) -> int:
        return len(self.prompt_tokens) + len(self.steps) + (1 if self.at_next else 0)

    def _overlay(self) -> dict[int, Style]:
        if self.overlay is None:
            return {}
        return self.overlay([t.id for t in self.prompt_tokens] + [s.token.id for s in self.steps])

    def relayout(self) -> None:
        """Style and wrap every token again (new tokens, colours, overlay or width)."""
        self._drawn_cursor = self.cursor
        if not self.is_mounted:
            return
        over = self._overlay()
        drawn = [self._piece(o, over) for o in range(self._n_pieces())]
        self._show(self.wrapped.reset(self._width(), [p for p, _ in drawn], [b for _, b in drawn]))

    def _redraw_from_cursor(self) -> None:
        """The cursor moved or tokens were added: restyle the tokens the cursor left and
        reached, style the new ones, and wrap again from there."""
        if not self.is_mounted or self._drawn_cursor is None or self.wrapped.width != self._width():
            self.relayout()
            return
        n_prompt, n = len(self.prompt_tokens), self._n_pieces()
        dirty = {self._drawn_cursor + n_prompt, self.cursor + n_prompt}
        dirty.update(range(min(len(self.wrapped.pieces), n), n))
        self._drawn_cursor = self.cursor
        over = self._overlay()
        pieces, breaks = self.wrapped.pieces[:n], self.wrapped.breaks[:n]
        for order in sorted(dirty):
            if 0 <= order < n:
                piece, brk = self._piece(order, over)
                if order < len(pieces):
                    pieces[order], breaks[order] = piece, brk
                else:
                    pieces.append(piece)
                    breaks.append(brk)
        self._show(self.wrapped.update(pieces, breaks, dirty))

    def _width(self) -> int:
        return max(8, self.scrollable_content_region.width)

    def _show(self, changed: Changed) -> None:
        """Repaint the changed lines that are on screen, resize the scroll area, keep the
        cursor's line in view."""
        for line in [k for k in self._strips if k >= changed.first and k < changed.end]:
            del self._strips[line]
        height = self.wrapped.n_lines
        size = Size(self._width(), height)
        if size != self.virtual_size:
            # Only the scroll area changed (the scrollbar is always shown): no layout of the
            # whole screen, which would cost the UI thread (and the engine) far more.
            self.set_reactive(Widget.virtual_size, size)
            self.vertical_scrollbar.window_virtual_size = height
            self.vertical_scrollbar.window_size = self.scrollable_content_region.height
            self.vertical_scrollbar.refresh()
        top = self.scroll_offset.y
        rows = self.scrollable_content_region.height
        first, end = max(changed.first, top), min(changed.end, top + rows)
        if end > first:
            self.refresh_lines(first, end - first)
        self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        order = len(self.prompt_tokens) + self.cursor
        if not 0 <= order < len(self.wrapped.starts):
            return
        line, top = self.wrapped.starts[order], self.scroll_offset.y
        rows = self.scrollable_content_region.height
        if line < top:
            self.scroll_to(y=line, animate=False)
        elif line >= top + rows:
            self.scroll_to(y=line - rows + 1, animate=False)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        line = scroll_y + y
        width = self.scrollable_content_region.width
        style = self.rich_style
        if line >= self.wrapped.n_lines:
            return Strip.blank(width, style)
        strip = self._strips.get(line)
        if strip is None:
            if len(self._strips) > MAX_CACHED_LINES:  # scrolled through a long text: keep it flat
                self._strips.clear()
            text = self.wrapped.line_text(line)
            strip = Strip(text.render(self.app.console), text.cell_len).apply_style(style)
            self._strips[line] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, style)
