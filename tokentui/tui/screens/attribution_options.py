"""Choose how ``a`` attributes: method, per-token reduction, integral steps and baseline.

The choices become an :class:`~tokentui.engine.analysis.attribution.AttributionConfig`, so every value
is validated by the engine itself; a bad one is named on the dialog's last line and nothing
changes until it is fixed.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Select, Static

from tokentui.engine.analysis.attribution import AGGREGATIONS, BASELINES, METHODS, AttributionConfig
from tokentui.engine.errors import ParameterError


class AttributionOptionsScreen(ModalScreen[AttributionConfig | None]):
    """Dismisses with the new configuration (enter), or None (escape)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("enter", "apply", "Apply", priority=True),
    ]
    DEFAULT_CSS = """
    AttributionOptionsScreen { align: center middle; }
    AttributionOptionsScreen #attribution-options {
        width: 76; height: auto; max-height: 100%; border: round $accent; padding: 0 1;
        background: $surface;
    }
    AttributionOptionsScreen Grid { grid-size: 2; grid-columns: 14 1fr; grid-rows: 3; height: auto; }
    AttributionOptionsScreen Label { padding: 1 0 0 0; }
    AttributionOptionsScreen #options-error { color: $error; }
    AttributionOptionsScreen #options-help { color: $text-muted; }
    AttributionOptionsScreen #method-summary { color: $accent; }
    """

    def __init__(self, config: AttributionConfig) -> None:
        super().__init__()
        self.config = config

    def compose(self):
        with Vertical(id="attribution-options"):
            with Grid():
                yield Label("method")
                yield Select([(name, name) for name in METHODS],
                             value=self.config.method, allow_blank=False, id="option-method")
                yield Label("per token")
                yield Select([("l2: the norm of the token's scores (size only)", "l2"),
                              ("sum: the signed sum (direction too)", "sum")],
                             value=self.config.aggregation, allow_blank=False, id="option-aggregation")
                yield Label("steps")
                yield Input(str(self.config.n_steps), type="integer", id="option-steps",
                            tooltip="integral steps of integrated gradients (samples of gradient SHAP)")
                yield Label("baseline")
                yield Input(str(self.config.baseline), id="option-baseline",
                            tooltip=f"{', '.join(BASELINES)} or a token id")
            yield Static(METHODS[self.config.method].summary, id="method-summary", markup=False)
            yield Static("", id="options-error", markup=False)
            yield Static("space or down: open a list · tab: next field · enter: apply (and recompute "
                         "a shown attribution) · escape: cancel · "
                         f"per token: {' / '.join(AGGREGATIONS)} (attention methods ignore it); steps and "
                         f"baseline: integrated gradients, gradient SHAP, DeepLift",
                         id="options-help", markup=False)

    def on_mount(self) -> None:
        self.query_one("#attribution-options").border_title = "Attribution options"
        self.query_one("#option-method", Select).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "option-method" and event.value in METHODS:
            self.query_one("#method-summary", Static).update(f"{event.value}: {METHODS[event.value].summary}")

    def read(self) -> AttributionConfig:
        """The dialog's values as a configuration; ParameterError names the first bad one."""
        steps_text = self.query_one("#option-steps", Input).value.strip()
        baseline_text = self.query_one("#option-baseline", Input).value.strip()
        try:
            steps = int(steps_text)
        except ValueError:
            raise ParameterError(f"steps must be a whole number, got {steps_text!r}") from None
        ascii_digits = baseline_text.isascii() and baseline_text.isdigit()
        baseline: str | int = int(baseline_text) if ascii_digits else baseline_text
        return AttributionConfig(
            method=str(self.query_one("#option-method", Select).value),
            aggregation=str(self.query_one("#option-aggregation", Select).value),
            n_steps=steps, baseline=baseline, batch_size=self.config.batch_size)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While a Select's list is open, enter picks the highlighted entry there instead.
        return not (action == "apply" and any(select.expanded for select in self.query(Select)))

    def action_apply(self) -> None:
        try:
            config = self.read()
        except ParameterError as exc:
            self.query_one("#options-error", Static).update(f"error: {exc}")
            return
        self.dismiss(config)

    def action_cancel(self) -> None:
        self.dismiss(None)
