"""How outside text is written as text: one definition for the terminal, the exports and HTML.

A piece is data, shown exactly: spaces, newlines, tabs and carriage returns as glyphs (so
whitespace tokens can be seen), control characters (C0, DEL, C1), line separators, bidi
overrides and isolates and the other invisible format characters (zero-width space, joiners,
BOM, ...) as escapes, so a piece can never move the cursor, clear the screen, set a title,
write the clipboard, reorder what is shown around it or break a line in a table. Markup and
HTML escaping are the caller's job; nothing here interprets the text.

:func:`terminal_safe` is the one function for any text that comes from outside (a file, a
server, a model, an argument) on its way to a terminal: the same escapes, whitespace kept.
"""

from __future__ import annotations

import unicodedata

GLYPHS = {"\n": "⏎", "\t": "⇥", "\r": "␍", " ": "·"}

BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
"""Bidi embeddings, overrides, isolates and marks: they reorder what a terminal or a page shows."""


def is_unsafe(ch: str) -> bool:
    """A character that acts instead of showing: controls, C1, separators, invisible formats."""
    code = ord(ch)
    if code < 32 or code == 127 or 0x80 <= code < 0xA0:
        return True
    if code < 0xA0:
        return False
    return ch in BIDI or unicodedata.category(ch) in ("Cf", "Zl", "Zp")


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str, *, glyphs: bool = True) -> str:
    """Unsafe characters as ``\\xNN`` / ``\\uNNNN``, and whitespace as glyphs when ``glyphs``."""
    out = []
    for ch in text:
        if glyphs and ch in GLYPHS:
            out.append(GLYPHS[ch])
        elif ch in "\n\t ":  # a lone \r would end a Markdown line or a <pre> line: escaped
            out.append(ch)
        elif is_unsafe(ch):
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def terminal_safe(text: object, *, newlines: bool = True) -> str:
    """Outside text made safe to print: every unsafe character shown as an escape.

    Newlines and tabs stay (one line when ``newlines`` is false: a newline shows as ``\\n``
    escape so an error line stays one line). Never raises: anything is turned into ``str``.
    """
    s = text if isinstance(text, str) else str(text)
    if newlines and s.isascii() and s.isprintable():
        return s
    out = []
    for ch in s:
        if ch == "\t" or (ch == "\n" and newlines):
            out.append(ch)
        elif "\ud800" <= ch <= "\udfff":  # a lone surrogate (undecodable bytes of an argument)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}" if ord(ch) >= 0xDC80 else "\ufffd")
        elif is_unsafe(ch):
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def one_line(text: object) -> str:
    """:func:`terminal_safe` for a one-line message (newlines escaped as well)."""
    return terminal_safe(text, newlines=False)
