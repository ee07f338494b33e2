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


@pytest.mark.parametrize(("piece", "shown"), [
    ("user\u202etxt.exe\u202c", "user\\u202etxt.exe\\u202c"),   # bidi override
    ("a\u2066b\u2069\u200f\u061c", "a\\u2066b\\u2069\\u200f\\u061c"),
    ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
    ("é中文🙂", "é中文🙂"),
])
def test_bidi_and_invisible_format_characters_are_shown(piece, shown):
    assert visible(piece) == shown


def test_terminal_safe_keeps_newlines_and_escapes_the_rest():
    from tokentui.visible import one_line, terminal_safe

    s = "a\x1b]52;c;SGVsbG8=\x1b\\b\n\x9b2J\u202ec\x07\rd"
    assert terminal_safe(s) == "a\\x1b]52;c;SGVsbG8=\\x1b\\b\n\\x9b2J\\u202ec\\x07\\x0dd"
    assert one_line(s) == "a\\x1b]52;c;SGVsbG8=\\x1b\\b\\x0a\\x9b2J\\u202ec\\x07\\x0dd"
    assert terminal_safe("a\udcffb") == "a\\xffb"  # undecodable byte of an argument
