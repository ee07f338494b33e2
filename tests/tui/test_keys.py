"""One table of keys (tokentui/tui/keys.py): the bindings, the palette, the help screen and
the README's key tables all agree with it."""

from __future__ import annotations

import re
from pathlib import Path

from tokentui.tui import keys
from tokentui.tui.app import TokenApp
from tokentui.tui.screens.help import KEYS as HELP_ROWS

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_keys(text: str) -> set[str]:
    """Every key in the first column of the README's ``| key | what it does |`` tables."""
    found: set[str] = set()
    in_table = False
    for line in text.splitlines():
        if re.match(r"^\|\s*key\s*\|\s*what it does\s*\|", line):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        if in_table and not line.startswith("|---"):
            first = line.split("|")[1]
            found.update(re.findall(r"`([^`]+)`", first))
    return found


def test_readme_key_tables_match_keys_py():
    documented = readme_keys(README.read_text(encoding="utf-8"))
    declared = keys.documented_keys()
    assert documented - declared == set(), "in the README but not in keys.py"
    assert declared - documented == set(), "in keys.py, not in the README (rows: docs/readme/keys.md)"


def test_the_readme_parser_reads_key_cells():
    text = ("| key | what it does |\n|---|---|\n| `n` / `space` | step |\n"
            "| `left` / `right` (`home` / `end`) | move (`enter` in the text is not a key) |\n\nafter\n"
            "| key | does |\n|---|---|\n| `z` | another table |\n")
    assert readme_keys(text) == {"n", "space", "left", "right", "home", "end"}


def test_bindings_palette_and_help_come_from_the_table():
    bound = {(b.key, b.action) for b in TokenApp.BINDINGS}  # type: ignore[union-attr]
    for entry in keys.KEYS:
        for key in entry.keys:
            assert ((key, entry.action) in bound) == (entry.action is not None)
    assert len(bound) == sum(len(k.keys) for k in keys.KEYS if k.action)
    footer = [b.key for b in TokenApp.BINDINGS if b.show]  # type: ignore[union-attr]
    assert footer == [k.keys[0] for k in keys.KEYS if k.footer and k.action]
    for title, _, action in keys.palette():
        name = action.split("(")[0]
        assert callable(getattr(TokenApp, f"action_{name}")), title
    assert [label for label, _ in HELP_ROWS] == [k.label for g in keys.GROUPS
                                                 for k in keys.KEYS if k.group == g]
    assert {k.group for k in keys.KEYS} <= set(keys.GROUPS)


def test_each_key_is_declared_once():
    seen = [key for entry in keys.KEYS for key in entry.keys]
    assert len(seen) == len(set(seen))
