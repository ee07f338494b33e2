"""The constraint panel: a kind, its source and an on switch, applied through the engine.

Attributes down, messages up: the panel posts :class:`ConstraintPanel.Requested` (the switch,
Apply) and the App builds the constraint on the engine thread (the first time per tokenizer,
llguidance's view of the vocabulary, about 2 s), then tells the panel the outcome
(:meth:`ConstraintPanel.building`, :meth:`~ConstraintPanel.turned_on`,
:meth:`~ConstraintPanel.turned_off`, :meth:`~ConstraintPanel.failed`,
:meth:`~ConstraintPanel.refused`). An invalid source is one line under the editor and changes
nothing in the session; the switch always says whether a constraint is in force. The
module's :func:`install` and :func:`reasons` run on the engine thread (the App calls them;
``reasons`` explains, for the alternatives table, why a candidate is invalid).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Checkbox, Select, Static, TextArea

from tokentui.engine.results import StepResult
from tokentui.engine.session import Session
from tokentui.tui.widgets.tickbox import TickBox

KIND_OPTIONS: tuple[tuple[str, str], ...] = (
    ("choice (one option a line)", "choice"),
    ("regex", "regex"),
    ("grammar (Lark)", "grammar"),
    ("JSON schema", "json_schema"),
)
"""Label and ``constraints.build`` kind of each entry of the kind picker."""

PLACEHOLDERS = {
    "choice": "yes\nno",
    "regex": "[0-9]{3}-[0-9]{4}",
    "grammar": 'start: "yes" | "no"',
    "json_schema": '{"type": "object", "properties": {"name": {"type": "string"}}}',
}
"""An example source per kind, shown while the editor is empty."""

THEN = "not allowed by the constraint in force when it was computed"
"""The reason for a candidate marked invalid by an earlier (or since removed) constraint."""


def step_status(step: StepResult) -> str | None:
    """The status line a step deserves on its own: its note, or the constraint finishing."""
    parts = [f"token {step.index}: {step.note}"] if step.note else []
    if step.finish_reason == "constraint":
        parts.append("constraint finished: nothing but the end may follow")
    return " · ".join(parts) or None


def install(session: Session, kind: str, text: str) -> tuple[str, str | None]:
    """Engine thread: build, set, and say whether the current branch already breaks it."""
    from tokentui.engine import constraints

    backend = session.backend
    constraint = constraints.build(kind, text, backend.tokenizer, backend.vocab_size,
                                   eos_ids=backend.eos_token_ids)
    session.set_constraint(constraint)
    return constraint.description, constraint.refusal(session.current.ids, [])


def reasons(session: Session, index: int, token_ids: list[int]) -> dict[int, str]:
    """Engine thread: why each token may not come at completion ``index`` of the branch."""
    constraint = session.constraint
    if constraint is None:
        return dict.fromkeys(token_ids, THEN)
    prefix = session.current.ids[:index]
    return {t: constraint.why_invalid(t, prefix) or THEN for t in token_ids}


class ConstraintPanel(Vertical):
    """Kind picker, source editor, on switch and Apply; one line says what is in force."""

    DEFAULT_CSS = """
    ConstraintPanel {
        height: 1fr;
        border: round $primary 50%;
        border-subtitle-color: $warning;
        padding: 0 1;
        &:focus-within { border: round $accent; }
        #constraint-text { height: 1fr; min-height: 3; }
        .constraint-row { height: 1; margin: 1 0 0 0; }
        #constraint-on { width: auto; margin-right: 2; }
        #constraint-info { height: auto; color: $text-muted; }
        #constraint-info.-active { color: $success; }
        #constraint-info.-error { color: $error; text-style: bold; }
        &.-building #constraint-info { color: $warning; }
    }
    """

    @dataclass
    class Requested(Message):
        """The user asked to turn the constraint on (with this kind and source) or off."""

        kind: str
        text: str
        enabled: bool

    def __init__(self, source: tuple[str, str] | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        kind, text = source or ("choice", "")
        self._initial = (kind, text)
        self.wanted = source is not None
        """The user (or a CLI flag) asked for the constraint to be on."""
        self.applied: tuple[str, str] | None = None
        """Kind and source of the constraint in force, or None."""
        self.description = ""
        """The active constraint's label (empty when off)."""

    def compose(self):
        kind, text = self._initial
        yield Select(KIND_OPTIONS, value=kind, allow_blank=False, compact=True, id="constraint-kind")
        yield TextArea(text, id="constraint-text", soft_wrap=True, compact=True,
                       placeholder=PLACEHOLDERS[kind])
        with Horizontal(classes="constraint-row"):
            yield TickBox("on", self.wanted, compact=True, id="constraint-on")
            yield Button("Apply", compact=True, id="constraint-apply")
        yield Static(Text("off" if not self.wanted else "applies when the model is ready"),
                     id="constraint-info")

    def on_mount(self) -> None:
        self.border_title = "Constraint"

    # ----- reading the editor ------------------------------------------------------------
    @property
    def source(self) -> tuple[str, str]:
        """Kind and text as they stand in the editor."""
        kind = self.query_one("#constraint-kind", Select).value
        text = self.query_one("#constraint-text", TextArea).text
        return (kind if isinstance(kind, str) else "choice", text)

    def _mark_edited(self) -> None:
        edited = self.applied is not None and self.source != self.applied
        self.border_subtitle = "edited · Apply to use" if edited else ""

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, str):
            self.query_one("#constraint-text", TextArea).placeholder = PLACEHOLDERS[event.value]
        self._mark_edited()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        self._mark_edited()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self.request(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.request(True)

    # ----- applying -------------------------------------------------------------------------
    def _info(self, text: str, state: str = "") -> None:
        info = self.query_one("#constraint-info", Static)
        info.set_classes(state)
        info.update(Text(text))

    def _show_switch(self, on: bool) -> None:
        with self.prevent(Checkbox.Changed):
            self.query_one("#constraint-on", Checkbox).value = on

    def request(self, enabled: bool) -> None:
        """Ask the App to turn the constraint on (with the editor's source) or off."""
        self.wanted = enabled
        self._show_switch(enabled)
        kind, text = self.source
        self.post_message(self.Requested(kind, text, enabled))

    # ----- what the App tells the panel ----------------------------------------------------------
    def refused(self, text: str) -> None:
        """Nothing changed (a run is going): the switch shows what is in force."""
        self.wanted = self.applied is not None
        self._show_switch(self.applied is not None)
        self._info(text, "-error")

    def pending(self) -> None:
        """No session yet: the wish is kept until one opens."""
        self._info("applies when the model and prompt are ready" if self.wanted else "off")

    def building(self) -> None:
        self.add_class("-building")
        self._info("building the constraint…")

    def turned_on(self, kind: str, text: str, description: str) -> None:
        self.remove_class("-building")
        self.applied, self.description = (kind, text), description
        self._mark_edited()
        self._info(f"in force: {description}", "-active")

    def turned_off(self) -> None:
        self.applied, self.description = None, ""
        self._info("off")
        self._mark_edited()

    def failed(self, line: str) -> None:
        """An invalid source (or a tokenizer llguidance cannot read): what is still in force stays."""
        self.remove_class("-building")
        still = f" · still in force: {self.description}" if self.applied else ""
        self._show_switch(self.applied is not None)
        self.wanted = self.applied is not None
        self._info(f"✗ {line}{still}", "-error")
