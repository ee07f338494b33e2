"""The next user message of a chat (``m``): the conversation so far with its roles, and an input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

ROLE_STYLES = {"system": "bold magenta", "user": "bold cyan", "assistant": "bold green"}


def conversation_text(messages: Sequence[dict[str, str]]) -> Text:
    """Each message as ``role`` then its content (data, never markup)."""
    out = Text()
    for k, m in enumerate(messages):
        if k:
            out.append("\n\n")
        out.append(m["role"], style=ROLE_STYLES.get(m["role"], "bold"))
        out.append("\n")
        out.append(m["content"])
    return out


class ChatScreen(ModalScreen[str | None]):
    """Shows the conversation of the current branch; dismisses with the next message or None."""

    DEFAULT_CSS = """
    ChatScreen { align: center middle; }
    ChatScreen #chat-dialog {
        width: 90; max-width: 95%; height: auto; max-height: 90%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    ChatScreen #chat-log { height: auto; max-height: 24; margin-bottom: 1; }
    ChatScreen #chat-help { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, messages: Sequence[dict[str, str]]) -> None:
        super().__init__()
        self.messages = list(messages)

    def compose(self):
        with Vertical(id="chat-dialog"):
            with VerticalScroll(id="chat-log"):
                yield Static(conversation_text(self.messages), id="chat-messages")
            yield Static(Text("Your next message: it is added to this branch and the model answers. "
                              "Enter: send · Escape: cancel."), id="chat-help")
            yield Input(placeholder="next user message", id="chat-input")

    def on_mount(self) -> None:
        self.query_one("#chat-dialog").border_title = "Chat"
        self.query_one("#chat-log").scroll_end(animate=False)
        self.query_one("#chat-input").focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value if event.value.strip() else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
