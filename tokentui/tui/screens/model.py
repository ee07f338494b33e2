"""The model screen (``ctrl+o``): the CLI's loader with fields for its model flags.

A local model (a Hugging Face id, a model folder or a ``.gguf`` file; device, dtype, device
map, trust-remote-code) or an inference server (base URL, served model, tokenizer, the name
of the environment variable holding the API key). The screen builds a
:class:`~tokentui.engine.launch.ModelConfig` and checks it with ``ModelConfig.validate()``
before closing (a bad value is one line under the fields); the app then opens it with
``launch.open_backend`` on the engine thread, as the CLI does, and keeps the current model
and session when the load fails or ``escape`` cancels it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Select, Static

from tokentui.engine.errors import TokentuiError
from tokentui.engine.launch import DTYPES, ModelConfig
from tokentui.tui.widgets.tickbox import TickBox

DEVICES = ("auto", "cpu", "cuda", "cuda:0", "cuda:1", "mps")
"""Offered as completions; any ``cuda:N`` is accepted."""
KINDS = (("local model (transformers in this process)", "local"),
         ("inference server (OpenAI-compatible)", "openai"))
TRUST_WARNING = ("⚠ trust remote code: the model's own Python code from its repository will run "
                 "on this machine")


class ModelScreen(ModalScreen[ModelConfig | None]):
    """Dismisses with a validated :class:`ModelConfig`, or None (escape)."""

    DEFAULT_CSS = """
    ModelScreen { align: center middle; }
    ModelScreen #model-dialog {
        width: 90; max-width: 95%; height: auto; max-height: 90%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    ModelScreen .model-row { height: auto; margin-top: 1; }
    ModelScreen .model-row Label { width: auto; padding: 1 1 0 0; }
    ModelScreen .model-row Select { width: 1fr; }
    ModelScreen .model-row Input { width: 1fr; }
    ModelScreen #model-local, ModelScreen #model-server { height: auto; }
    ModelScreen #model-recent { height: auto; max-height: 8; }
    ModelScreen #model-current { color: $text-muted; }
    ModelScreen #model-trust-warning { color: $warning; }
    ModelScreen #model-error { color: $error; text-style: bold; }
    ModelScreen #model-buttons { height: auto; align: center middle; margin-top: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str, recent: Sequence[str] = ()) -> None:
        super().__init__()
        self.current = current
        self.recent = list(recent)

    def compose(self):
        with VerticalScroll(id="model-dialog"):
            yield Static(Text(f"current model: {self.current}"), id="model-current")
            yield Select(KINDS, value="local", allow_blank=False, id="model-kind")
            with Vertical(id="model-local"):
                yield Input(placeholder="Hugging Face id, model folder or .gguf file (default: bundled)",
                            id="model-spec")
                with Horizontal(classes="model-row"):
                    yield Label("device")
                    yield Input("auto", suggester=SuggestFromList(DEVICES), id="model-device")
                    yield Label("dtype")
                    yield Select([(d, d) for d in DTYPES], value="auto", allow_blank=False,
                                 id="model-dtype")
                    yield Label("device map")
                    yield Input(placeholder="none (e.g. auto)", id="model-device-map")
                yield TickBox("trust remote code (runs the model's own Python code)", False,
                               id="model-trust")
                yield Static(Text(TRUST_WARNING), id="model-trust-warning")
                yield TickBox("allow pickle weights (a checkpoint without safetensors; unpickling "
                              "can run code)", False, id="model-pickle")
            with Vertical(id="model-server"):
                yield Input(placeholder="base URL, e.g. http://127.0.0.1:8080", id="model-url")
                yield Input(placeholder="served model (blank: the server's only model)", id="model-served")
                yield Input(placeholder="tokenizer: hub id, folder or .gguf (blank: the server's)",
                            id="model-tokenizer")
                yield Input(placeholder="API key: the NAME of the environment variable holding it",
                            id="model-key-env")
            if self.recent:
                yield Static(Text("recently used (enter picks one):"))
                yield OptionList(*[Text(r) for r in self.recent], id="model-recent")
            yield Static(Text(""), id="model-error")
            with Horizontal(id="model-buttons"):
                yield Button("Load (enter)", variant="primary", id="model-load")
            yield Static(Text("Loading replaces the session with a new one on the same prompt "
                              "(autosaved first); escape during the load cancels it; a failure "
                              "keeps everything as it is."))

    def on_mount(self) -> None:
        self.query_one("#model-dialog").border_title = "Model"
        self.query_one("#model-trust-warning").display = False
        self.query_one("#model-error").display = False
        self._show_kind("local")
        self.query_one("#model-spec", Input).focus()

    # ----- fields ---------------------------------------------------------------------------
    def _show_kind(self, kind: str) -> None:
        self.query_one("#model-local").display = kind == "local"
        self.query_one("#model-server").display = kind != "local"

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id == "model-kind" and isinstance(event.value, str):
            self._show_kind(event.value)
            self._say("")

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        if event.checkbox.id == "model-trust":
            self.query_one("#model-trust-warning").display = event.value

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.query_one("#model-kind", Select).value = "local"
        spec = self.query_one("#model-spec", Input)
        spec.value = self.recent[event.option_index]
        spec.focus()

    def _value(self, widget_id: str) -> str | None:
        return self.query_one(widget_id, Input).value.strip() or None

    @property
    def config(self) -> ModelConfig:
        """What the fields say (not validated)."""
        kind = self.query_one("#model-kind", Select).value
        if kind == "openai":
            return ModelConfig(backend="openai", base_url=self._value("#model-url"),
                               served_model=self._value("#model-served"),
                               tokenizer=self._value("#model-tokenizer"),
                               api_key_env=self._value("#model-key-env"))
        return ModelConfig(spec=self._value("#model-spec"),
                           device=self._value("#model-device") or "auto",
                           dtype=str(self.query_one("#model-dtype", Select).value),
                           device_map=self._value("#model-device-map"),
                           trust_remote_code=self.query_one("#model-trust", Checkbox).value,
                           allow_pickle=self.query_one("#model-pickle", Checkbox).value)

    def _say(self, line: str) -> None:
        error = self.query_one("#model-error", Static)
        error.display = bool(line)
        error.update(Text(line))

    # ----- loading --------------------------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._load()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self._load()

    def _load(self) -> None:
        config = self.config
        try:
            config.validate()
        except TokentuiError as exc:
            self._say(f"✗ {exc}")
            return
        self.dismiss(config)

    def action_cancel(self) -> None:
        self.dismiss(None)
