"""F1: a plain-words explanation of the focused pane, in a modal (escape closes).

The texts live in :mod:`tokentui.tui.help_texts` (no UI import). Which pane is "focused" is found
by walking up from the focused widget: a node with an ``explain_id`` (the Inside panes),
a main-screen pane by its id (the token stream with an attribution shown explains the
attribution), the side tabs by the active tab, and finally the screen itself by its class.
Under NO_COLOR the text describes the glyphs and styles drawn, not colours.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import Static, TabbedContent

from tokentui.tui.help_texts import Explanation, explain, explanation

MAIN_PANES: dict[str, str] = {
    "prompt": "prompt",
    "stream": "token_stream",
    "alternatives": "alternatives",
    "params": "params",
    "attention": "attention",
    "charts": "charts",
    "status": "status",
    "tab-params": "params",
    "tab-attention": "attention",
    "tab-chart": "charts",
    "constraint": "constraint",
    "tab-constraint": "constraint",
}
"""Widget (or tab) id on the main screen -> explanation id."""
SCREENS: dict[str, str] = {
    "AttributionOptionsScreen": "attribution_options",
    "AttributionFileScreen": "attribution_file",
    "BranchesScreen": "branches",
    "ChatScreen": "chat",
    "CompareScreen": "compare",
    "ConfirmScreen": "confirm",
    "ExploreScreen": "explore",
    "ForceScreen": "force",
    "HelpScreen": "help",
    "InsideScreen": "inside",
    "ModelScreen": "model",
    "SaveScreen": "save",
    "ScoreScreen": "score",
    "LockstepScreen": "lockstep",
}
"""Screen class name -> explanation id (by name, so no screen needs importing or editing)."""
DEFAULT_PANE = "token_stream"


def explanation_id(widget: DOMNode | None) -> str | None:
    """The explanation id for the pane holding ``widget`` (None when none is known)."""
    node = widget
    while node is not None:
        pane = getattr(node, "explain_id", None)
        if isinstance(pane, str) and pane:
            return pane
        if node.id == "stream" and getattr(node, "overlay", None) is not None:
            return "attribution"  # the stream shows an attribution's heat, not the colour mode
        if node.id in MAIN_PANES:
            return MAIN_PANES[node.id]
        if isinstance(node, TabbedContent) and node.active in MAIN_PANES:
            return MAIN_PANES[node.active]
        if type(node).__name__ in SCREENS:
            return SCREENS[type(node).__name__]
        node = node.parent
    return None


class ExplainScreen(ModalScreen[None]):
    """One explanation: what the pane shows, how to read it, the formula."""

    DEFAULT_CSS = """
    ExplainScreen { align: center middle; }
    #explain {
        width: 84;
        max-width: 100%;
        height: auto;
        max-height: 90%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    #explain .explain-head { color: $text-muted; text-style: bold; margin-top: 1; }
    #explain .explain-formula { background: $panel; padding: 0 1; }
    #explain-keys { color: $text-muted; margin-top: 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,q", "dismiss", "Close")]

    def __init__(self, pane_id: str) -> None:
        super().__init__()
        self.pane_id = pane_id
        self.explanation: Explanation = explain(pane_id)

    @classmethod
    def for_widget(cls, widget: DOMNode | None, default: str = DEFAULT_PANE) -> ExplainScreen:
        """The explanation of the pane that holds ``widget`` (``default`` when none does)."""
        return cls(explanation_id(widget) or default)

    def compose(self) -> ComposeResult:
        self.explanation = e = explanation(self.pane_id, no_color=self.app.no_color)
        with VerticalScroll(id="explain"):
            yield Static(Text("What it shows", style="bold"), classes="explain-head")
            yield Static(Text(e.shows), id="explain-shows")
            yield Static(Text("How to read it", style="bold"), classes="explain-head")
            yield Static(Text(e.read), id="explain-read")
            yield Static(Text("Formula", style="bold"), classes="explain-head")
            yield Static(Text(e.formula), classes="explain-formula", id="explain-formula")
            yield Static(Text("escape: close"), id="explain-keys")

    def on_mount(self) -> None:
        self.query_one("#explain").border_title = f"F1 · {self.explanation.title}"
