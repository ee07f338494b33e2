"""Compare two branches side by side, aligned at their fork (``C``).

First pick two branches (space marks, enter compares the marked pair, or the branch under
the cursor with the current one). Then: at the fork, the shared top-10 with each branch's
pick marked; step by step each branch's token, its probability and the entropy, and their
KL divergence; for the highlighted step both top-10 side by side and how probability mass
moved between them. The screen only shows: the app computes the comparison on the engine.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from tokentui.engine.analysis.compare import BranchComparison, ComparedStep
from tokentui.engine.results import Distribution, StepResult
from tokentui.engine.session import BranchInfo
from tokentui.tui.styling import token_text, visible


def _p(p: float | None) -> str:
    return "" if p is None else f"{p:.1%}"


def fork_table(cmp: BranchComparison) -> Table:
    """The shared top-10 at the fork; A and B mark each branch's pick."""
    table = Table(title=f"at the fork (position {cmp.fork_at})", title_justify="left",
                  expand=False, pad_edge=False)
    for name, justify in (("#", "right"), ("token", "left"), ("p_base", "right"), ("p_final", "right"),
                          ("A", "center"), ("B", "center")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for f in cmp.fork:
        c = f.candidate
        table.add_row(Text(str(c.rank)), token_text(c.token), Text(_p(c.p_base)), Text(_p(c.p_final)),
                      Text("●" if f.picked_by_a else "", style="bold cyan"),
                      Text("●" if f.picked_by_b else "", style="bold magenta"))
    return table


def one_line(title: str) -> Text:
    """A table title that never wraps: cut with ``…`` at the table's width, so a long title
    cannot push its table down below its neighbour's."""
    return Text(title, no_wrap=True, overflow="ellipsis")


def _top(dist: Distribution | None, chosen: int | None, title: str) -> Table:
    table = Table(title=one_line(title), title_justify="left", pad_edge=False)
    table.add_column("token")
    table.add_column("p_final", justify="right")
    for c in dist.candidates[:10] if dist else ():
        table.add_row(token_text(c.token, style="bold" if c.token.id == chosen else ""),
                      Text(_p(c.p_final)))
    return table


def step_detail(row: ComparedStep) -> Table:
    """Both top-10 at one position side by side, and the mass that moved from A to B."""
    grid = Table.grid(padding=(0, 3))
    a, b = row.a, row.b
    shifts = Table(title=one_line("p_base moved A → B"), title_justify="left", pad_edge=False)
    shifts.add_column("token")
    shifts.add_column("A", justify="right")
    shifts.add_column("B", justify="right")
    shifts.add_column("Δ", justify="right")
    for s in row.shifts:
        mark = "~" if s.estimated else ""
        shifts.add_row(token_text(s.token), Text(f"{mark}{s.p_a:.3f}"), Text(f"{mark}{s.p_b:.3f}"),
                       Text(f"{s.delta:+.3f}", style="green" if s.delta > 0 else "red"))
    grid.add_row(_side(a, "A"), _side(b, "B"), shifts)
    return grid


def _side(step: StepResult | None, label: str) -> Table:
    if step is None:
        return _top(None, None, f"{label}: ended")
    return _top(step.distribution, step.token.id, f"{label} top-10 (took {visible(step.token.text)!s})")


class CompareScreen(ModalScreen[None]):
    """Pick two branches, then see them aligned at their fork."""

    DEFAULT_CSS = """
    CompareScreen { align: center middle; }
    CompareScreen #compare {
        width: 100%; height: 95%; border: round $accent; background: $surface;
    }
    CompareScreen #compare-pick { height: 1fr; }
    CompareScreen #compare-head { height: auto; max-height: 14; }
    CompareScreen #compare-steps { height: 1fr; min-height: 5; }
    CompareScreen #compare-detail { height: auto; max-height: 15; }
    CompareScreen #compare-help { height: 1; color: $text-muted; }
    CompareScreen .-hidden { display: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("space", "mark", "Mark"),
        Binding("enter", "compare", "Compare"),
        Binding("k", "exact", "Exact KL"),
    ]

    @dataclass
    class Pick(Message):
        """Compare branch ``a`` with branch ``b`` (``exact``: recompute the full distributions)."""

        a: int
        b: int
        exact: bool = False

    def __init__(self, infos: Sequence[BranchInfo]) -> None:
        super().__init__()
        self.infos = list(infos)
        self.marked: list[int] = []
        self.comparison: BranchComparison | None = None
        self.pending = False
        """A comparison is running for this screen (keys that would start another wait)."""
        self.cancel: threading.Event | None = None
        """Stops the running comparison; set when the screen closes."""

    def compose(self):
        with Vertical(id="compare"):
            yield DataTable(id="compare-pick", cursor_type="row")
            yield Static(id="compare-head", classes="-hidden")
            yield DataTable(id="compare-steps", cursor_type="row", classes="-hidden")
            yield Static(id="compare-detail", classes="-hidden")
            yield Static(Text("space: mark two branches · enter: compare (one marked, or the cursor's "
                              "branch with the current one) · escape: close"), id="compare-help")

    def on_mount(self) -> None:
        self.query_one("#compare").border_title = "Compare branches"
        table = self.query_one("#compare-pick", DataTable)
        for label in ("", "id", "name", "len", "text"):
            table.add_column(label)
        self._fill_pick()
        table.focus()

    def _fill_pick(self) -> None:
        table = self.query_one("#compare-pick", DataTable)
        row = table.cursor_row
        table.clear()
        for info in self.infos:
            mark = "AB"[self.marked.index(info.id)] if info.id in self.marked else (
                "●" if info.current else " ")
            table.add_row(Text(mark, style="bold"), Text(str(info.id)), Text(info.name),
                          Text(str(info.length)), Text(visible(info.text)[-60:]), key=str(info.id))
        table.move_cursor(row=row, animate=False)

    def _cursor_info(self) -> BranchInfo | None:
        table = self.query_one("#compare-pick", DataTable)
        if not self.infos:
            return None
        return self.infos[max(0, min(table.cursor_row, len(self.infos) - 1))]

    def action_mark(self) -> None:
        if self.comparison is not None or (info := self._cursor_info()) is None:
            return
        if info.id in self.marked:
            self.marked.remove(info.id)
        else:
            self.marked = [*self.marked, info.id][-2:]
        self._fill_pick()
        if len(self.marked) == 2:
            self.post_message(self.Pick(*self.marked))

    def action_compare(self) -> None:
        if self.comparison is not None:
            return
        if len(self.marked) == 2:
            self.post_message(self.Pick(*self.marked))
            return
        info = self._cursor_info()
        current = next((i.id for i in self.infos if i.current), None)
        other = self.marked[0] if self.marked else current
        if info is None or other is None or info.id == other:
            self.notify("mark two different branches (space)", severity="warning")
            return
        self.post_message(self.Pick(other, info.id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.data_table.id == "compare-pick":
            self.action_compare()

    def failed(self, text: str) -> None:
        """The comparison asked for did not come: say why here, keep what was shown."""
        self.pending = False
        self.notify(text, severity="error", markup=False)
        if self.comparison is not None:
            self.show(self.comparison)

    def show(self, cmp: BranchComparison) -> None:
        """Replace the picker with the comparison."""
        self.pending = False
        self.comparison = cmp
        names = {i.id: i.name for i in self.infos}
        self.query_one("#compare-pick").add_class("-hidden")
        head = Text()
        head.append(f"A: {names.get(cmp.a, cmp.a)}", style="bold cyan")
        head.append("  vs  ")
        head.append(f"B: {names.get(cmp.b, cmp.b)}", style="bold magenta")
        kl = ("KL exact, from the full distributions" if cmp.kl_method == "exact"
              else "KL estimated from the recorded top-N · k: exact (runs the model)")
        head.append(f"  · they part at position {cmp.fork_at} after {len(cmp.shared)} shared tokens"
                    f" · {kl}\n")
        grid = Table.grid()
        grid.add_row(head)
        if cmp.fork:
            grid.add_row(fork_table(cmp))
        else:
            grid.add_row(Text("the branches do not differ (one is a prefix of the other or equal)"))
        self.query_one("#compare-head", Static).update(grid)
        steps = self.query_one("#compare-steps", DataTable)
        steps.clear(columns=True)
        for label in ("pos", "A token", "A p", "A H", "B token", "B p", "B H", "KL bits"):
            steps.add_column(label)
        for row in cmp.steps:
            steps.add_row(Text(str(row.index)), *self._cells(row.a), *self._cells(row.b),
                          Text("" if row.kl is None else f"{row.kl:.3f}"), key=str(row.index))
        for w in ("#compare-head", "#compare-steps", "#compare-detail"):
            self.query_one(w).remove_class("-hidden")
        self.query_one("#compare-help", Static).update(
            Text("up/down: a step · k: exact KL · escape: close · ~ marks a probability estimated "
                 "from the top-N"))
        steps.focus()
        self._detail(0)

    def action_exact(self) -> None:
        """Recompute KL from the full next-token distributions (two forwards per position)."""
        cmp = self.comparison
        if cmp is None or cmp.kl_method == "exact" or self.pending:
            return
        self.pending = True
        self.query_one("#compare-help", Static).update(
            Text("computing the exact KL: one forward per position of each branch …"))
        self.post_message(self.Pick(cmp.a, cmp.b, exact=True))

    @staticmethod
    def _cells(step: StepResult | None) -> tuple[Text, Text, Text]:
        if step is None:
            return Text("—"), Text(""), Text("")
        return token_text(step.token), Text(_p(step.p_final)), Text(f"{step.entropy:.2f}")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "compare-steps":
            self._detail(event.cursor_row)

    def _detail(self, row: int) -> None:
        if self.comparison is None or not self.comparison.steps:
            self.query_one("#compare-detail", Static).update(Text(""))
            return
        row = max(0, min(row, len(self.comparison.steps) - 1))
        self.query_one("#compare-detail", Static).update(step_detail(self.comparison.steps[row]))

    def action_close(self) -> None:
        if self.cancel is not None:
            self.cancel.set()  # an exact KL in flight stops at its next position
        self.dismiss(None)
