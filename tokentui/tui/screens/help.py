"""The help screen: every key, and each pane explained in plain words."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tokentui.tui.keys import GROUPS, help_rows
from tokentui.tui.keys import KEYS as KEY_TABLE

KEYS: tuple[tuple[str, str], ...] = tuple(help_rows())
"""``(keys, what)`` per row, built from ``tokentui.tui.keys`` (the one table of keys)."""

PANES: tuple[tuple[str, str], ...] = (
    ("Prompt", "What the model reads. With the chat template on, the text becomes a user "
     "message (and the optional system prompt a system message). Leaving the editor applies "
     "it; when tokens would be discarded the app asks first."),
    ("Tokens", "The prompt's tokens (grey) and the completion, one coloured piece per token. "
     "Bands: the probability the model gave the token it took: >70% / 50-70 / 30-50 / 10-30 / "
     "<10%. Spaces show as ·, newlines as ⏎, special tokens by name. The reversed token is the "
     "cursor; ▁ at the end is the next token, not generated yet."),
    ("Alternatives", "The top 10 candidates at the cursor: rank, token, p_base (the model's own "
     "softmax), p_final (after temperature, top-k/top-p/min-p and penalties), a bar and the raw "
     "logit. Crossed-out rows were cut by the filters; ● marks the token taken."),
    ("Parameters", "Sampling settings, applied as you type. A value out of range is marked "
     "red, explained below the fields and not used."),
    ("Attention", "How much each token (row) looks at each earlier token (column) in one layer "
     "and head, or the mean of the heads. Two rows per character; the cursor's row is amber."),
    ("Chart", "The distribution at the cursor (top 20) and, over the steps, the entropy (how "
     "unsure the model was) and the surprisal of the token taken."),
    ("Constraint", "Limit what may come next: pick choice (one option a line), regex, grammar "
     "(Lark) or JSON schema, type the source, tick 'on' (or press Apply after an edit). The "
     "header names the constraint in force; an invalid source is one red line and changes "
     "nothing. Candidates it forbids are crossed out in Alternatives with the reason in the "
     "'why' column; forcing a forbidden text is refused. --choice/--regex/--grammar/"
     "--json-schema/--choices-file fill it at start."),
    ("Branches", "Every branch is a complete alternative continuation. The list shows where a "
     "branch leaves its parent, the token it took there versus the parent's, and both "
     "probabilities."),
)


def help_table() -> Table:
    """Every key, by group, in the order of ``keys.KEYS``."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for group in GROUPS:
        table.add_row(Text(group, style="italic"), Text(""))
        for entry in KEY_TABLE:
            if entry.group == group:
                table.add_row(Text(entry.label), Text(entry.description))
    return table


class HelpScreen(ModalScreen[None]):
    """Keys and panes; any of escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self):
        with VerticalScroll(id="help"):
            yield Static(Text("Keys", style="bold underline"))
            yield Static(help_table())
            yield Static(Text("Panes", style="bold underline"))
            for name, text in PANES:
                para = Text()
                para.append(f"{name}: ", style="bold")
                para.append(text)
                yield Static(para, classes="help-para")

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "Help"
