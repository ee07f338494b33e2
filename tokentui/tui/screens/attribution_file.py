"""A saved attribution (``J`` in the app, ``tokentui attribute --json``) drawn again as the
heatmap, from the command palette ("Open saved attribution"): type a path, enter shows it.

The file is read and checked by :mod:`tokentui.engine.persist.attribution_file` (no model);
a bad file is one line under the path and the screen stays open. F1 explains the heatmap.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from tokentui.engine.errors import TokentuiError
from tokentui.engine.persist.attribution_file import SavedAttribution, read_attribution
from tokentui.heatmap import attribution_table


class AttributionFileScreen(ModalScreen[None]):
    """Asks for a path (or starts with one) and shows the file's heatmap; escape closes."""

    DEFAULT_CSS = """
    AttributionFileScreen { align: center middle; }
    AttributionFileScreen #attribution-file {
        width: 95%; height: 90%; border: round $accent; background: $surface; padding: 0 1;
    }
    AttributionFileScreen #attribution-file-status { height: auto; color: $text-muted; }
    AttributionFileScreen #attribution-file-status.-error { color: $error; }
    AttributionFileScreen #attribution-file-table { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__()
        self.path = str(path) if path is not None else ""
        self.saved: SavedAttribution | None = None

    def compose(self):
        with Vertical(id="attribution-file"):
            yield Input(self.path, placeholder="a saved attribution: tokentui-attribution-….json",
                        id="attribution-file-path")
            yield Static(Text("enter: open · escape: close · F1: how to read it"),
                         id="attribution-file-status")
            with VerticalScroll(id="attribution-file-table"):
                yield Static(Text(""), id="attribution-file-heatmap")

    def on_mount(self) -> None:
        self.query_one("#attribution-file").border_title = "Saved attribution"
        if self.path:
            self.open(self.path)
        else:
            self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.open(event.value.strip())

    def open(self, path: str) -> None:
        """Read ``path``; show its heatmap, or say in one line why not."""
        status = self.query_one("#attribution-file-status", Static)
        try:
            saved = read_attribution(Path(path).expanduser())
        except TokentuiError as exc:
            status.set_class(True, "-error")
            status.update(Text(f"✗ {exc}"))
            return
        self.saved = saved
        status.set_class(False, "-error")
        status.update(Text(f"{path} · {len(saved.outputs)} output token"
                           f"{'s' if len(saved.outputs) != 1 else ''} · {len(saved.tokens)} tokens · "
                           f"saved by {saved.source} · escape: close · F1: how to read it"))
        self.query_one("#attribution-file-heatmap", Static).update(attribution_table(saved))
        self.query_one("#attribution-file-table").focus()

    def action_close(self) -> None:
        self.dismiss(None)
