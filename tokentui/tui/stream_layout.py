"""Token pieces wrapped into lines, kept up to date piece by piece.

A run appends tokens and moves the cursor one token on. Wrapping the whole text again per redraw
costs the UI thread time in proportion to everything shown so far, and the UI thread's time is the
engine's too (one GIL). Greedy wrapping of a piece depends only on the pieces before it, so an
update wraps again from the line where the first changed piece starts; past the last changed piece
it stops as soon as a line starts with the same piece as before, and keeps the old lines from there.

No Textual here: lines are lists of fragments of ``rich.text.Text``; the widget renders them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text


@dataclass(frozen=True)
class Fragment:
    """Piece ``order`` (or the part of it that fits) drawn on a line from column ``x``."""

    order: int
    x: int
    text: Text

    @property
    def width(self) -> int:
        return self.text.cell_len


@dataclass(frozen=True)
class Changed:
    """Which lines an update redrew: ``[first, end)``, in the new numbering."""

    first: int
    end: int


def _cut(piece: Text, room: int) -> tuple[Text, Text]:
    """The head of ``piece`` that fits in ``room`` cells (at least one character) and the rest."""
    plain = piece.plain
    k = 0
    while k < len(plain) and cell_len(plain[:k + 1]) <= room:
        k += 1
    k = max(1, k)
    return piece[:k], piece[k:]


class WrappedLines:
    """Pieces (one per token) wrapped greedily to ``width`` cells; a piece with ``breaks``
    set ends its line (a token holding a newline)."""

    def __init__(self, width: int = 80) -> None:
        self.width = max(1, width)
        self.pieces: list[Text] = []
        self.breaks: list[bool] = []
        self.lines: list[list[Fragment]] = [[]]
        self.starts: list[int] = []
        """The line each piece starts on."""

    @property
    def n_lines(self) -> int:
        return len(self.lines)

    def line_text(self, line: int) -> Text:
        text = Text(no_wrap=True, end="")
        for fragment in self.lines[line]:
            text.append_text(fragment.text)
        return text

    def piece_at(self, line: int, x: int) -> int | None:
        """The piece drawn at column ``x`` of ``line`` (None: nothing there)."""
        if not 0 <= line < len(self.lines):
            return None
        for fragment in self.lines[line]:
            if fragment.x <= x < fragment.x + fragment.width:
                return fragment.order
        return None

    def reset(self, width: int, pieces: Sequence[Text], breaks: Sequence[bool]) -> Changed:
        """Wrap everything again (a new width, new tokens, a new colouring)."""
        old_lines = len(self.lines)
        self.width = max(1, width)
        self.pieces, self.breaks = list(pieces), list(breaks)
        self.lines, self.starts = [[]], []
        self._wrap(0, 0, last_dirty=len(self.pieces), old_lines=[], old_starts=[])
        return Changed(0, max(old_lines, len(self.lines)))

    def update(self, pieces: Sequence[Text], breaks: Sequence[bool], dirty: Iterable[int]) -> Changed:
        """New pieces of which only ``dirty`` (and any past the old end) differ from before."""
        old_n, new_n = len(self.pieces), len(pieces)
        changed = {i for i in dirty if 0 <= i < new_n}
        if old_n != new_n:
            changed.update(range(min(old_n, new_n), new_n))
        old_lines, old_starts = self.lines, self.starts
        self.pieces, self.breaks = list(pieces), list(breaks)
        if not changed and old_n == new_n:
            return Changed(0, 0)
        first = min(changed) if changed else new_n
        last_dirty = max(changed) if changed else new_n - 1
        # the line of the first changed piece (or of the last old one, when only pieces were added)
        line = old_starts[min(first, old_n - 1)] if old_n else 0
        # One line up (a changed piece that got narrower may fit at the end of the line above),
        # then up to a line that starts with a whole piece (a piece wider than the pane spans lines).
        line = max(0, line - 1)
        while old_lines[line] and old_starts[old_lines[line][0].order] < line:
            line = old_starts[old_lines[line][0].order]
        start = old_lines[line][0].order if old_lines[line] else first
        start = min(start, first)
        self.lines = [*old_lines[:line], []]
        self.starts = old_starts[:start]
        reused = self._wrap(start, line, last_dirty=last_dirty if old_n == new_n else new_n,
                            old_lines=old_lines, old_starts=old_starts)
        if reused is None:  # the lines from ``line`` on may all have moved
            return Changed(line, max(len(old_lines), len(self.lines)))
        return Changed(line, reused)

    def _wrap(self, start: int, line: int, *, last_dirty: int, old_lines: list[list[Fragment]],
              old_starts: list[int]) -> int | None:
        """Place pieces from ``start`` on the empty line ``line`` onwards. Returns the line from
        which the old lines were taken over where they were, or None (wrapped to the end, or the
        old lines now sit higher or lower)."""
        lines, starts, width = self.lines, self.starts, self.width
        x = 0
        for order in range(start, len(self.pieces)):
            if not lines[-1] and order > last_dirty and order < len(old_starts):
                old = old_starts[order]
                if old_lines[old] and old_lines[old][0].order == order:
                    shift = (len(lines) - 1) - old
                    lines[-1:] = old_lines[old:]
                    starts.extend(s + shift for s in old_starts[order:])
                    return old if shift == 0 else None
            piece = self.pieces[order]
            starts.append(len(lines) - 1)
            while True:
                room = width - x
                if piece.cell_len <= room or (x == 0 and room <= 0):
                    break
                if x > 0:
                    lines.append([])
                    x = 0
                    starts[-1] = len(lines) - 1
                    continue
                head, piece = _cut(piece, room)  # a piece wider than the pane
                lines[-1].append(Fragment(order, 0, head))
                lines.append([])
            lines[-1].append(Fragment(order, x, piece))
            x += piece.cell_len
            if self.breaks[order]:
                lines.append([])
                x = 0
        return None
