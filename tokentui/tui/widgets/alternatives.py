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
from textual.geometry import Size
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
        self.reasons: dict[int, str] = {}
        """Why each listed invalid candidate is invalid (filled by the constraint panel)."""
        self.base_subtitle = ""
        """Entropy and kept count: the subtitle when the selected row needs no reason."""

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
                *self._why_cells(cand),
                key=str(i),
            )
        if dist is not None and dist.top_n_only and dist.other_mass > 0:
            self.border_subtitle = f"top-N only · other {dist.other_mass:.3f}"
        else:
            self.border_subtitle = (f"entropy {dist.entropy:.2f} bits · kept {dist.n_kept}"
                                    if dist else "")
        self.base_subtitle = str(self.border_subtitle)
        if self.candidates:
            self.move_cursor(row=select, animate=False)

    def watch_virtual_size(self, old: Size, new: Size) -> None:
        """DataTable measures new rows' columns only when idle, and keeps rows it rendered
        before that, cached at the headers' widths (rank 10 shown as "1", tokens cut): when
        the measured widths change the table's width, drop those renders."""
        if old.width != new.width:
            self.notify_style_update()  # DataTable's own way to clear its row and cell renders

    def _why_cells(self, cand: Candidate) -> list[Text]:
        """The ``why`` cell while that column is shown (a constraint is in play)."""
        if "why" not in self.columns:
            return []
        if not cand.valid:
            return [Text(self.reasons.get(cand.id, "invalid"), style="#f85149")]
        return [Text("" if cand.kept else "cut", style="#6e7681")]

    def show_reasons(self, reasons: dict[int, str] | None) -> None:
        """Say why each invalid candidate is invalid (token id -> reason); None drops the column."""
        if reasons is None:
            self.reasons = {}
            if "why" in self.columns:
                self.remove_column("why")
            self._subtitle_why()
            return
        self.reasons = reasons
        if "why" not in self.columns:
            self.add_column("why", key="why")
        for i, cand in enumerate(self.candidates):
            self.update_cell(str(i), "why", self._why_cells(cand)[0])
        self._subtitle_why()

    def _subtitle_why(self) -> None:
        """The selected row's whole reason goes in the subtitle (the column is often cut)."""
        cand = self.selected
        why = self.reasons.get(cand.id) if cand is not None and not cand.valid else None
        self.border_subtitle = f"✗ {why}" if why else self.base_subtitle

    def on_data_table_row_highlighted(self) -> None:
        self._subtitle_why()

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
