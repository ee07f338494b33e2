"""Ask for the path a session is saved to (``ctrl+s`` the first time)."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class SaveScreen(ModalScreen[str | None]):
    """Dismisses with the typed path, or None (escape)."""

    DEFAULT_CSS = """
    SaveScreen { align: center middle; }
    SaveScreen #save-dialog {
        width: 80; max-width: 95%; height: auto;
        border: thick $accent; background: $surface; padding: 1 2;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, suggestion: str) -> None:
        super().__init__()
        self.suggestion = suggestion

    def compose(self):
        with Vertical(id="save-dialog"):
            yield Static("Save the session (every branch) as a JSON file. An existing file that is "
                         "not a session file is never overwritten. Enter: save · Escape: cancel.",
                         markup=False)
            yield Input(self.suggestion, placeholder="path/to/session.json", id="save-path")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
