"""The alternatives table: the top candidates of the position under the token cursor.

Tokens cut by the sampling filters stay listed, greyed out; the chosen one is marked ``●``.
Enter (here or on the token stream) asks for a branch with the selected row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from tokentui.engine.results import Candidate, Distribution
from tokentui.tui.styling import prob_bar, token_text

ROWS = 10
"""How many candidates the table lists."""
CUT = Style(color="#6e7681", strike=True)


class AlternativesTable(DataTable):
    """Rank, token, p_base, p_final, a bar and the logit of the top candidates."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "choose", "Branch")]

    @dataclass
    class Chosen(Message):
        """Branch (or force, at the next token) with this candidate."""

        token_id: int

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.candidates: tuple[Candidate, ...] = ()
        self.chosen_id: int | None = None

    def on_mount(self) -> None:
        self.border_title = "Alternatives"
        for label, key in (("", "mark"), ("#", "rank"), ("token", "token"), ("p_base", "p_base"),
                           ("p_final", "p_final"), ("", "bar"), ("logit", "logit")):
            self.add_column(label, key=key)

    def show(self, dist: Distribution | None, chosen_id: int | None, title: str) -> None:
        """List ``dist``'s candidates; select the chosen one (or the first)."""
        self.border_title = title
        self.clear()
        self.candidates = dist.candidates[:ROWS] if dist else ()
        self.chosen_id = chosen_id
        select = 0
        for i, cand in enumerate(self.candidates):
            usable = cand.kept and cand.valid
            style = Style() if usable else CUT
            chosen = cand.id == chosen_id
            if chosen:
                select = i
            mark = Text("●" if chosen else (" " if usable else "✗"),
                        style="bold" if chosen else "#6e7681")
            self.add_row(
                mark,
                Text(str(cand.rank), justify="right"),
                token_text(cand.token, style=style),
                Text(f"{cand.p_base:.3f}", justify="right", style=style),
                Text(f"{cand.p_final:.3f}", justify="right", style=style),
                Text(prob_bar(cand.p_final, 8), style="#58a6ff" if usable else "#6e7681"),
                Text(f"{cand.logit:.2f}", justify="right", style=style),
                key=str(i),
            )
        if dist is not None and dist.top_n_only and dist.other_mass > 0:
            self.border_subtitle = f"top-N only · other {dist.other_mass:.3f}"
        else:
            self.border_subtitle = (f"entropy {dist.entropy:.2f} bits · kept {dist.n_kept}"
                                    if dist else "")
        if self.candidates:
            self.move_cursor(row=select, animate=False)

    def move_selection(self, delta: int) -> None:
        if self.candidates:
            self.move_cursor(row=max(0, min(len(self.candidates) - 1, self.cursor_row + delta)),
                             animate=False)

    @property
    def selected(self) -> Candidate | None:
        if not self.candidates:
            return None
        return self.candidates[max(0, min(self.cursor_row, len(self.candidates) - 1))]

    def action_choose(self) -> None:
        if (cand := self.selected) is not None:
            self.post_message(self.Chosen(cand.id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """A mouse click on a row selects it; a second click branches (like enter)."""
        event.stop()
