"""The prompt pane: a multi-line editor, an optional system prompt, a chat-template switch.

The pane only edits: it reports a changed :class:`PromptSpec` when the focus leaves it,
and the app decides (asking first when branches would be discarded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Checkbox, Input, TextArea

from tokentui.engine.prompts import PromptSpec
from tokentui.tui.widgets.tickbox import TickBox
from tokentui.visible import terminal_safe


class PromptEditor(TextArea):
    """The prompt text; ``escape`` leaves it (``tab`` too)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "leave", "Leave editor")]

    class Leave(Message):
        """The user asked to leave the editor."""

    def action_leave(self) -> None:
        self.post_message(self.Leave())


class PromptPane(Vertical):
    """Editor + system prompt + chat template toggle."""

    @dataclass
    class Edited(Message):
        """The prompt differs from the one in use (posted when the focus leaves the pane)."""

        spec: PromptSpec

    def __init__(self, spec: PromptSpec, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.committed = spec
        """The prompt the session uses."""

    def compose(self):
        # Outside text (a session file's prompt) is shown with its control, bidi and invisible
        # characters as escapes: drawn raw they would act on the terminal.
        yield PromptEditor(terminal_safe(self.committed.text), id="prompt-text", soft_wrap=True,
                           tab_behavior="focus", show_line_numbers=False, compact=True)
        with Horizontal(id="prompt-options"):
            yield Input(terminal_safe(self.committed.system or ""), placeholder="system prompt (optional)",
                        id="prompt-system", compact=True)
            yield TickBox("chat template", self.committed.chat_template, id="prompt-chat",
                           compact=True)

    def on_mount(self) -> None:
        self.border_title = "Prompt"
        self.border_subtitle = "escape/tab: leave"

    @property
    def spec(self) -> PromptSpec:
        """What the pane shows now."""
        system = self.query_one("#prompt-system", Input).value
        text = self.query_one("#prompt-text", TextArea).text
        # Unedited escaped text stands for the committed text itself.
        if text == terminal_safe(self.committed.text):
            text = self.committed.text
        if system == terminal_safe(self.committed.system or ""):
            system = self.committed.system or ""
        return PromptSpec(text=text,
                          system=system or None,
                          chat_template=self.query_one("#prompt-chat", Checkbox).value)

    @property
    def dirty(self) -> bool:
        return self.spec != self.committed

    def commit(self, spec: PromptSpec) -> None:
        self.committed = spec

    def revert(self) -> None:
        """Show the prompt in use again (the user declined to discard branches)."""
        with self.prevent(TextArea.Changed, Input.Changed, Checkbox.Changed):
            self.query_one("#prompt-text", TextArea).text = terminal_safe(self.committed.text)
            self.query_one("#prompt-system", Input).value = terminal_safe(self.committed.system or "")
            self.query_one("#prompt-chat", Checkbox).value = self.committed.chat_template

    def on_descendant_blur(self) -> None:
        self.call_after_refresh(self._check_left)

    def _check_left(self) -> None:
        if not self.has_focus_within and self.dirty:
            self.post_message(self.Edited(self.spec))

    @property
    def has_focus_within(self) -> bool:
        focused = self.screen.focused if self.is_attached else None
        return focused is not None and self in focused.ancestors_with_self
