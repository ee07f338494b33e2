"""Explore (``X``): branch automatically at the N most critical positions of the current
branch with the top M alternatives each, grow each new branch K tokens, and see the result
as a tree with each branch's text and joint probability. Progress and cancel while it runs.

The screen only asks and shows; the app runs ``forks.explore`` on the engine thread and
feeds :meth:`ExploreScreen.add` / :meth:`ExploreScreen.finished`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ProgressBar, Static, Tree

from tokentui.engine.analysis.forks import ExploredBranch, ExploreResult
from tokentui.tui.styling import visible


def branch_label(b: ExploredBranch) -> Text:
    """``@position 'token' → text · p=…`` (token text as data)."""
    label = Text()
    label.append(f"@{b.fork_at} ", style="bold")
    label.append(visible(b.token.text), style="bold cyan")
    label.append(" → ")
    label.append(visible(b.text)[:70])
    label.append(f"  p={b.joint_p:.3g}", style="dim")
    if b.finish_reason:
        label.append(f" ({b.finish_reason})", style="dim")
    return label


class ExploreScreen(ModalScreen[None]):
    """Settings, a progress bar and the tree of explored branches."""

    DEFAULT_CSS = """
    ExploreScreen { align: center middle; }
    ExploreScreen #explore {
        width: 100%; height: 95%; border: round $accent; background: $surface; padding: 0 1;
    }
    ExploreScreen #explore-settings { height: 1; margin: 1 0; }
    ExploreScreen #explore-settings Label { width: auto; padding: 0 1 0 2; }
    ExploreScreen #explore-settings Input { width: 6; }
    ExploreScreen #explore-settings Button { margin-left: 3; }
    ExploreScreen #explore-tree { height: 1fr; }
    ExploreScreen #explore-status { height: 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel_or_close", "Cancel / close")]

    @dataclass
    class Start(Message):
        """Explore ``positions`` x ``alternatives`` branches of ``tokens`` tokens each."""

        positions: int
        alternatives: int
        tokens: int

    class Cancel(Message):
        """Stop the running exploration (the branches made so far stay)."""

    @dataclass
    class Switch(Message):
        """Make this explored branch current."""

        branch_id: int

    def __init__(self, source_text: str, positions: int = 3, alternatives: int = 2, tokens: int = 8) -> None:
        super().__init__()
        self.source_text = source_text
        self.defaults = (positions, alternatives, tokens)
        self.running = False

    def compose(self):
        with Vertical(id="explore"):
            with Horizontal(id="explore-settings"):
                for (label, key), value in zip((("positions N", "n"), ("alternatives M", "m"),
                                                ("tokens K", "k")), self.defaults, strict=True):
                    yield Label(label)
                    yield Input(str(value), id=f"explore-{key}", type="integer", compact=True)
                yield Button("Explore (enter)", id="explore-start", variant="primary", compact=True)
            yield ProgressBar(total=1, id="explore-progress", show_eta=False)
            yield Tree(Text("current branch"), id="explore-tree")
            yield Static(Text("enter: start · on a branch: enter switches to it · escape: cancel / close"),
                         id="explore-status")

    def on_mount(self) -> None:
        self.query_one("#explore").border_title = "Explore the critical positions"
        tree = self.query_one(Tree)
        tree.root.set_label(Text(visible(self.source_text)[-90:] or "current branch"))
        tree.root.expand()
        self.query_one("#explore-n", Input).focus()

    def _settings(self) -> tuple[int, int, int] | None:
        try:
            values = tuple(int(self.query_one(f"#explore-{k}", Input).value) for k in "nmk")
        except ValueError:
            values = ()
        if len(values) != 3 or min(values) < 1:
            self.status("N, M and K must be whole numbers of at least 1", error=True)
            return None
        return values  # type: ignore[return-value]

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.start()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.start()

    def start(self) -> None:
        if self.running or (values := self._settings()) is None:
            return
        self.running = True
        tree = self.query_one(Tree)
        tree.root.remove_children()
        n, m, _ = values
        self.query_one(ProgressBar).update(total=n * m, progress=0)
        self.status(f"exploring {n} positions x {m} alternatives… escape cancels")
        self.post_message(self.Start(*values))

    def add(self, branch: ExploredBranch, done: int, total: int) -> None:
        """One more branch grew (called by the app as they come)."""
        self.query_one(Tree).root.add_leaf(branch_label(branch), data=branch.branch_id)
        self.query_one(ProgressBar).update(total=total, progress=done)

    def finished(self, result: ExploreResult | None, error: str | None = None) -> None:
        self.running = False
        if error:
            self.status(error, error=True)
            return
        assert result is not None
        tree = self.query_one(Tree)
        tree.root.set_label(Text(f"{visible(self.source_text)[-70:]}  p={_p(result.source_logprob)}"))
        if len(tree.root.children) != len(result.branches):
            tree.root.remove_children()
            for b in result.branches:
                tree.root.add_leaf(branch_label(b), data=b.branch_id)
        verb = "cancelled after" if result.cancelled else "made"
        self.status(f"{verb} {len(result.branches)} branches · enter on one switches to it · escape closes")
        tree.focus()

    def status(self, text: str, *, error: bool = False) -> None:
        self.query_one("#explore-status", Static).update(Text(text, style="bold red" if error else ""))

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        event.stop()
        if isinstance(event.node.data, int) and not self.running:
            self.post_message(self.Switch(event.node.data))
            self.dismiss(None)

    def action_cancel_or_close(self) -> None:
        if self.running:
            self.post_message(self.Cancel())
            self.status("cancelling after the current forward pass…")
        else:
            self.dismiss(None)


def _p(logprob: float) -> str:
    import math

    return f"{math.exp(logprob):.3g}" if logprob > -math.inf else "0"
