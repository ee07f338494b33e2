"""One way to write a token piece as text, for every face (terminal, exports, HTML)."""

from __future__ import annotations

import pytest

from tokentui.visible import visible


@pytest.mark.parametrize(("piece", "shown"), [
    (" the", "·the"),
    ("\n\n", "⏎⏎"),
    ("\t\r", "⇥␍"),
    ("\x1b[31mred", "\\x1b[31mred"),   # an escape sequence stays inert text
    ("\x00\x7f", "\\x00\\x7f"),
    ("\x9b2J", "\\x9b2J"),             # C1 control (8-bit CSI)
    ("a\u2028b\u2029", "a\\u2028b\\u2029"),  # line/paragraph separators break no table row
    ("[bold]x[/]", "[bold]x[/]"),      # markup is the caller's to escape; never interpreted here
    ("<b>é</b>", "<b>é</b>"),
])
def test_pieces_are_shown_exactly(piece, shown):
    assert visible(piece) == shown


def test_without_glyphs_whitespace_stays_but_controls_do_not():
    assert visible(" a\n\tb\x1b", glyphs=False) == " a\n\tb\\x1b"
    assert visible("name\rx", glyphs=False) == "name\\x0dx"  # a lone CR splits no line
