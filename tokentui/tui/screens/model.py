"""The model screen (``ctrl+o``): a Hugging Face id, a local folder or a ``.gguf`` file,
with device and dtype; recently used models one keypress away.

The screen only asks; the app loads on the engine thread and keeps the current model and
session when the load fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Select, Static

from tokentui.engine.launch import DTYPES, ModelConfig

DEVICES = ("auto", "cpu", "cuda", "mps")


class ModelScreen(ModalScreen[ModelConfig | None]):
    """Dismisses with a :class:`ModelConfig`, or None (escape)."""

    DEFAULT_CSS = """
    ModelScreen { align: center middle; }
    ModelScreen #model-dialog {
        width: 90; max-width: 95%; height: auto; max-height: 90%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    ModelScreen .model-row { height: auto; margin-top: 1; }
    ModelScreen .model-row Label { width: 8; padding-top: 1; }
    ModelScreen .model-row Select { width: 1fr; }
    ModelScreen #model-recent { height: auto; max-height: 8; }
    ModelScreen #model-current { color: $text-muted; }
    ModelScreen #model-buttons { height: auto; align: center middle; margin-top: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str, recent: Sequence[str] = ()) -> None:
        super().__init__()
        self.current = current
        self.recent = list(recent)

    def compose(self):
        with Vertical(id="model-dialog"):
            yield Static(Text(f"current model: {self.current}"), id="model-current")
            yield Input(placeholder="Hugging Face id, model folder or .gguf file (default: bundled)",
                        id="model-spec")
            with Horizontal(classes="model-row"):
                yield Label("device")
                yield Select([(d, d) for d in DEVICES], value="auto", allow_blank=False,
                             id="model-device")
                yield Label("dtype")
                yield Select([(d, d) for d in DTYPES], value="auto", allow_blank=False,
                             id="model-dtype")
            if self.recent:
                yield Static(Text("recently used (enter picks one):"))
                yield OptionList(*[Text(r) for r in self.recent], id="model-recent")
            with Horizontal(id="model-buttons"):
                yield Button("Load (enter)", variant="primary", id="model-load")
            yield Static(Text("Loading replaces the session with a new one on the same prompt "
                              "(autosaved first); a failure keeps everything as it is."))

    def on_mount(self) -> None:
        self.query_one("#model-dialog").border_title = "Model"
        self.query_one("#model-spec", Input).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        spec = self.query_one("#model-spec", Input)
        spec.value = self.recent[event.option_index]
        spec.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._load()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self._load()

    def _load(self) -> None:
        device = self.query_one("#model-device", Select).value
        dtype = self.query_one("#model-dtype", Select).value
        self.dismiss(ModelConfig(spec=self.query_one("#model-spec", Input).value.strip() or None,
                                 device=str(device), dtype=str(dtype)))

    def action_cancel(self) -> None:
        self.dismiss(None)
