"""The parameter panel: every sampling parameter, validated as it is typed.

An invalid value is marked (``-invalid``) with its reason and not used; the last valid
parameters stay in force. Only a complete, valid ``SamplingParams`` leaves the panel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, Select, Static

from tokentui.engine.errors import ParameterError
from tokentui.engine.params import PRESETS, SamplingParams, apply_preset
from tokentui.tui.widgets.tickbox import TickBox


def _optional_int(text: str) -> int | None:
    return int(text) if text.strip() else None


def _stops(text: str) -> tuple[str, ...]:
    """``|``-separated stop sequences; ``\\n`` and ``\\t`` stand for newline and tab."""
    parts = [p.replace("\\n", "\n").replace("\\t", "\t") for p in text.split("|")]
    return tuple(p for p in parts if p)


def _show_stops(stops: tuple[str, ...]) -> str:
    return "|".join(s.replace("\n", "\\n").replace("\t", "\\t") for s in stops)


FIELDS: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("temperature", "temperature", float),
    ("top_k", "top-k", int),
    ("top_p", "top-p", float),
    ("min_p", "min-p", float),
    ("repetition_penalty", "repetition", float),
    ("presence_penalty", "presence", float),
    ("frequency_penalty", "frequency", float),
    ("seed", "seed", _optional_int),
    ("max_new_tokens", "max tokens", int),
    ("stop", "stop (a|b)", _stops),
)
"""Field name, label and parser of each text input."""


def preset_of(params: SamplingParams) -> str | None:
    """The preset ``params`` are (every field the preset sets matches), or None."""
    for name in PRESETS:
        if apply_preset(params, name) == params:
            return name
    return None


def _shown(params: SamplingParams, name: str) -> str:
    value = getattr(params, name)
    if name == "stop":
        return _show_stops(value)
    return "" if value is None else str(value)


class ParamsPanel(VerticalScroll):
    """Inputs for the sampling parameters, a preset picker, greedy and ignore-EOS switches."""

    @dataclass
    class Changed(Message):
        """New valid parameters."""

        params: SamplingParams

    def __init__(self, params: SamplingParams, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.params = params
        """The last valid parameters (what the session uses)."""
        self.errors: dict[str, str] = {}
        """Field name -> why its text is not used."""

    def compose(self):
        yield Select([(name, name) for name in PRESETS], prompt="preset: custom", id="preset",
                     compact=True, allow_blank=True,
                     **({"value": name} if (name := preset_of(self.params)) else {}))
        for name, label, _ in FIELDS:
            with Horizontal(classes="param-row"):
                yield Label(label, classes="param-label")
                yield Input(_shown(self.params, name), id=f"param-{name}", compact=True,
                            select_on_focus=False)
        with Horizontal(classes="param-row"):
            yield TickBox("greedy", self.params.greedy, id="param-greedy", compact=True)
            yield TickBox("ignore EOS", self.params.ignore_eos, id="param-ignore_eos", compact=True)
        yield Static(Text(""), id="param-error")

    def on_mount(self) -> None:
        self.border_title = "Parameters"

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id and event.input.id.startswith("param-"):
            event.stop()
            self._collect()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self._collect()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, str):
            self.fill(apply_preset(self.params, event.value))
            self._collect()

    def fill(self, params: SamplingParams) -> None:
        """Show ``params`` in the inputs (without posting a change per field)."""
        with self.prevent(Input.Changed, Checkbox.Changed):
            for name, _, _ in FIELDS:
                self.query_one(f"#param-{name}", Input).value = _shown(params, name)
            self.query_one("#param-greedy", Checkbox).value = params.greedy
            self.query_one("#param-ignore_eos", Checkbox).value = params.ignore_eos

    def _collect(self) -> None:
        """Parse every field on top of the last valid parameters; keep what validates."""
        params = self.params
        self.errors = {}
        for name, label, parse in FIELDS:
            box = self.query_one(f"#param-{name}", Input)
            try:
                params = params.with_changes(**{name: parse(box.value)})
            except (ValueError, ParameterError) as exc:
                reason = str(exc) if isinstance(exc, ParameterError) else f"{label}: not a number"
                self.errors[name] = reason
            box.set_class(name in self.errors, "-bad")
        params = params.with_changes(greedy=self.query_one("#param-greedy", Checkbox).value,
                                     ignore_eos=self.query_one("#param-ignore_eos", Checkbox).value)
        error = self.query_one("#param-error", Static)
        error.update(Text(next(iter(self.errors.values()), "")))
        error.set_class(bool(self.errors), "-shown")
        if params != self.params:
            self.params = params
            self._show_preset()
            self.post_message(self.Changed(params))

    def _show_preset(self) -> None:
        """The preset box names the preset in force ("custom" once a field departs from it)."""
        select = self.query_one("#preset", Select)
        name = preset_of(self.params)
        if (select.is_blank() and name is None) or select.value == name:
            return
        with self.prevent(Select.Changed):
            if name is None:
                select.clear()
            else:
                select.value = name
