"""Ask for a text to force into the completion (tokenised and appended token by token)."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class ForceScreen(ModalScreen[str | None]):
    """Dismisses with the text (``\\n`` typed as two characters means a newline), or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self):
        with Vertical(id="dialog"):
            yield Static("Force a text: it is tokenised and appended, each token with its "
                         "probabilities. Type \\n for a newline. Enter: force · Escape: cancel.",
                         markup=False)
            yield Input(placeholder="text to append", id="force-text")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.replace("\\n", "\n").replace("\\t", "\t")
        self.dismiss(text or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
