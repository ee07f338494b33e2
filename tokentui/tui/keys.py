"""Every key of the main screen, declared once.

The App's ``BINDINGS``, the command palette (``ctrl+p``), the ``?`` help screen and the footer
are built from :data:`KEYS`; a test checks the README's key tables against it. An entry with an
``action`` is bound by the App; one without (``keys`` handled by a widget: the token stream's
cursor, the focus chain) still appears in the help and the README, and in the palette when it
names a ``command`` (an app action the palette can run without the key).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

GROUPS = ("Generate", "Move and branch", "Panes", "Sessions and models", "Analysis", "App")
"""The help screen's sections, in order."""


@dataclass(frozen=True, slots=True)
class Key:
    """One action: the keys that run it and how each face names it."""

    keys: tuple[str, ...]
    """Textual key names (``question_mark``, ``ctrl+s``); the first is the one shown."""
    description: str
    """What it does, for the help screen (one line, plain words)."""
    group: str
    action: str | None = None
    """The App action the keys run (``layer(1)``); None: a widget handles the keys."""
    short: str = ""
    """The footer's label (shown in the footer when ``footer`` is set)."""
    footer: bool = False
    """Shown in the footer: only the few that fit at 80 columns (the help and palette list all)."""
    command: str = ""
    """The command palette's title ("" = not in the palette)."""
    palette_action: str | None = None
    """The action the palette runs when it is not ``action`` (keys a widget handles)."""
    priority: bool = False
    """Bound with priority: works on modal screens too (F1 explains them)."""

    @property
    def shown(self) -> tuple[str, ...]:
        """The keys as people write them (``?``, ``[``, ``F1``)."""
        return tuple(DISPLAY.get(k, k) for k in self.keys)

    @property
    def label(self) -> str:
        return " / ".join(self.shown)


DISPLAY = {
    "question_mark": "?", "left_square_bracket": "[", "right_square_bracket": "]",
    "left_curly_bracket": "{", "right_curly_bracket": "}", "f1": "F1",
}

KEYS: tuple[Key, ...] = (
    # The order is the footer's (for the keys it shows) and the palette's.
    Key(("n", "space"), "step: add one token", "Generate", "step", "Step", True,
        "Step", None),
    Key(("g",), "generate until the end (EOS, a stop sequence or max tokens)", "Generate",
        "generate", "Generate", True, "Generate"),
    Key(("escape",), "stop generating (within one step); clear an attribution; in the prompt "
        "editor: leave it", "Generate", "stop", "Stop", True, "Stop"),
    Key(("left", "right", "home", "end"), "move the token cursor, into the prompt too "
        "(home / end: first generated token / next token)", "Move and branch"),
    Key(("up", "down"), "select an alternative for the token under the cursor", "Move and branch"),
    Key(("enter",), "branch: a new branch that takes the selected alternative there",
        "Move and branch", command="Branch with the selected alternative", palette_action="choose"),
    Key(("backspace",), "delete the last token", "Move and branch",
        command="Delete last token", palette_action="delete_last"),
    Key(("f",), "force a text (it is tokenised and appended)", "Generate", "force", "Force", False,
        "Force text"),
    Key(("b",), "branch list: switch, rename, delete", "Move and branch", "branches", "Branches",
        True, "Branches"),
    Key(("left_square_bracket",), "attention: previous layer", "Panes", "layer(-1)", "Layer-",
        command="Previous layer"),
    Key(("right_square_bracket",), "attention: next layer", "Panes", "layer(1)", "Layer+",
        command="Next layer"),
    Key(("left_curly_bracket",), "attention: previous head (and the mean of all heads)", "Panes",
        "head(-1)", "Head-", command="Previous head"),
    Key(("right_curly_bracket",), "attention: next head (and the mean of all heads)", "Panes",
        "head(1)", "Head+", command="Next head"),
    Key(("c",), "cycle the colours: bands, probability, entropy, rank", "Panes", "colour_mode",
        "Colours", False, "Cycle colours"),
    Key(("v",), "small terminals: show the side panes (parameters, attention, chart)", "Panes",
        "toggle_side", "Side panes", command="Side panes"),
    Key(("t",), "next side tab: Params, Attention, Chart, Constraint", "Panes", "next_tab", "Tab",
        False, "Next side tab"),
    Key(("tab", "shift+tab"), "focus the next / previous pane", "Panes"),
    Key(("ctrl+p",), "command palette: every action by name", "App"),
    Key(("i",), "inside the model at the token under the cursor (left / right: other tokens)",
        "Analysis", "inside", "Inside", False, "Inside the model"),
    Key(("f1",), "explain the focused pane: what it shows, how to read it, the formula", "Panes",
        "explain", "Explain", False, "Explain this pane", priority=True),
    Key(("ctrl+s",), "save the session (asks for a path the first time); it is also autosaved",
        "Sessions and models", "save_session", "Save", command="Save session"),
    Key(("ctrl+o",), "model: a hub id, a folder, a .gguf file or an inference server "
        "(device, dtype, recent)", "Sessions and models", "model", "Model", command="Model"),
    Key(("ctrl+r",), "reset: clear the completion and every branch, keep the prompt (asks first)",
        "Sessions and models", "reset", "Reset", command="Reset"),
    Key(("ctrl+l",), "model off / on: nothing runs while you edit; on again computes once",
        "Sessions and models", "model_off", "Model off", command="Model off / on"),
    Key(("m",), "chat: the next user message, once the model has ended its turn",
        "Sessions and models", "chat", "Chat", command="Chat: next user message"),
    Key(("C",), "compare two branches side by side from their fork", "Sessions and models",
        "compare", "Compare", command="Compare branches"),
    Key(("x",), "jump to the next critical token (where it could most easily have gone "
        "otherwise)", "Move and branch", "next_critical", "Critical", False, "Next critical token"),
    Key(("X",), "explore: branch at the N most critical positions automatically, as a tree",
        "Sessions and models", "explore", "Explore", command="Explore"),
    Key(("a",), "attribution: colour earlier tokens by how much they drove the cursor's token "
        "(again: clear)", "Analysis", "attribute", "Attribute", False, "Attribute"),
    Key(("A",), "cycle the attribution method: saliency, input x gradient, IG, SHAP, attention",
        "Analysis", "attribution_method", "Method", command="Attribution method"),
    Key(("o",), "attribution options: method, per-token reduction (l2/sum), IG steps, baseline",
        "Analysis", "attribution_options", "Attribution options", command="Attribution options"),
    Key(("J",), "save the shown attribution as JSON to tokentui-attribution-<time>.json here",
        "Analysis", "save_attribution", "Save attribution", command="Save attribution"),
    Key(("e",), "export the 3D attention graph of the sequence to tokentui-graph-<time>.html here",
        "Analysis", "export_graph", "Graph", command="Export attention graph"),
    Key(("s",), "score a text file: its tokens as given, coloured by how expected each was; pressed "
        "again, the list of its surprises", "Analysis", "score", "Score", False, "Score a text"),
    Key(("u",), "jump to the next most surprising token of a scored text", "Analysis",
        "next_surprise", "Surprise", False, "Next surprise"),
    Key(("D",), "two models in lockstep: a second model reads the current branch beside this one "
        "(both top-10, KL both ways, Jensen-Shannon, a divergence strip)", "Analysis", "lockstep",
        "Two models", False, "Two models in lockstep"),
    Key(("question_mark",), "this help: every key and every pane", "App", "help", "Help", True,
        "Help"),
    Key(("q",), "quit (asks when branches would be lost)", "App", "quit_app", "Quit", True),
)


def bindings() -> list[Binding]:
    """The App's BINDINGS: one Binding per key of every entry with an action (the first key
    of an entry is the one the footer shows)."""
    out: list[Binding] = []
    for entry in KEYS:
        if entry.action is None:
            continue
        for i, key in enumerate(entry.keys):
            out.append(Binding(key, entry.action, entry.short or entry.command,
                               show=entry.footer and i == 0, priority=entry.priority))
    return out


COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("Open saved attribution", "a JSON from J or tokentui attribute --json, shown as the heatmap",
     "open_attribution_file"),
)
"""``(title, help, action)`` of the palette's commands that have no key of their own."""


def palette() -> list[tuple[str, str, str]]:
    """``(title, help, action)`` for the command palette: every keyed command in table order,
    then the key-less ones."""
    keyed = [(k.command, f"{k.description} ({k.label})", k.palette_action or k.action or "")
             for k in KEYS if k.command]
    return keyed + list(COMMANDS)


def help_rows() -> list[tuple[str, str]]:
    """``(keys, what)`` rows of the help screen, grouped, in table order within a group."""
    rows = []
    for group in GROUPS:
        rows.extend((k.label, k.description) for k in KEYS if k.group == group)
    return rows


def documented_keys() -> set[str]:
    """Every key as the README writes it (``?``, ``[``, ``F1``, ``shift+tab``)."""
    return {shown for k in KEYS for shown in k.shown}
