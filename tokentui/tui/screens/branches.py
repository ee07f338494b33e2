"""The branch list: where each branch leaves its parent, and what it took there.

The screen only shows and asks; the app performs switch/rename/delete on the engine
(``Act`` messages) and hands back fresh rows with :meth:`BranchesScreen.show`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Static

from tokentui.engine.session import BranchInfo
from tokentui.tui.styling import token_text, visible

TEXT_TAIL = 40
"""Characters of a branch's text shown (its end: where branches differ)."""


def tail(text: str, width: int) -> str:
    """The last ``width`` characters, marked ``…`` where the start was cut."""
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _prob(p: float | None) -> str:
    return "" if p is None else f"{p:.1%}"


class BranchesScreen(ModalScreen[None]):
    """A table of branches: enter switches, r renames, d deletes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("enter", "switch", "Switch"),
        Binding("r", "rename", "Rename"),
        Binding("d", "delete", "Delete"),
    ]

    @dataclass
    class Act(Message):
        """``switch``, ``rename`` (with ``name``) or ``delete`` a branch."""

        kind: str
        branch_id: int
        name: str = ""

    def __init__(self, infos: Sequence[BranchInfo]) -> None:
        super().__init__()
        self.infos = list(infos)

    def compose(self):
        with Vertical(id="branches"):
            yield DataTable(id="branch-table", cursor_type="row")
            yield Input(placeholder="new name (enter: rename, escape: cancel)", id="rename")
            yield Static(Text("enter: switch · r: rename · d: delete · escape: close"),
                         id="branch-help")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#branches").border_title = "Branches"
        table = self.query_one(DataTable)
        for label in ("", "id", "name", "parent", "fork at", "took", "p", "parent took", "p ",
                      "len", "end", "text"):
            table.add_column(label)
        self.show(self.infos)
        table.focus()

    def show(self, infos: Sequence[BranchInfo]) -> None:
        self.infos = list(infos)
        table = self.query_one(DataTable)
        table.clear()
        current_row = 0
        for row, info in enumerate(self.infos):
            if info.current:
                current_row = row
            table.add_row(
                Text("●" if info.current else " ", style="bold"),
                Text(str(info.id)),
                Text(visible(info.name, glyphs=False)),
                Text("-" if info.parent is None else str(info.parent)),
                Text("-" if info.parent is None else str(info.fork_at)),
                token_text(info.token) if info.token and info.parent is not None else Text(""),
                Text(_prob(info.p_final) if info.parent is not None else ""),
                token_text(info.parent_token) if info.parent_token else Text(""),
                Text(_prob(info.parent_p_final)),
                Text(str(info.length)),
                Text(visible(info.finish_reason or "", glyphs=False)),
                Text(tail(visible(info.text), TEXT_TAIL)),
                key=str(info.id),
            )
        table.move_cursor(row=current_row, animate=False)

    @property
    def selected(self) -> BranchInfo | None:
        table = self.query_one(DataTable)
        if not self.infos:
            return None
        return self.infos[max(0, min(table.cursor_row, len(self.infos) - 1))]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_switch()

    def action_switch(self) -> None:
        if (info := self.selected) is not None:
            self.post_message(self.Act("switch", info.id))

    def action_delete(self) -> None:
        if (info := self.selected) is not None:
            self.post_message(self.Act("delete", info.id))

    def action_rename(self) -> None:
        if (info := self.selected) is None:
            return
        box = self.query_one("#rename", Input)
        box.value = visible(info.name, glyphs=False)
        box.add_class("-shown")
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        event.input.remove_class("-shown")
        if (info := self.selected) is not None and event.value.strip():
            self.post_message(self.Act("rename", info.id, event.value))
        self.query_one(DataTable).focus()

    def action_close(self) -> None:
        box = self.query_one("#rename", Input)
        if box.has_class("-shown"):
            box.remove_class("-shown")
            self.query_one(DataTable).focus()
            return
        self.dismiss(None)
