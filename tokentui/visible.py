"""How a token piece is written as text: one definition for the terminal, the exports and HTML.

A piece is data, shown exactly: spaces, newlines, tabs and carriage returns as glyphs (so
whitespace tokens can be seen), control characters and line separators as escapes (so a piece
can never move the cursor, clear the screen or break a line in a table). Markup and HTML
escaping are the caller's job; nothing here interprets the text.
"""

from __future__ import annotations

GLYPHS = {"\n": "⏎", "\t": "⇥", "\r": "␍", " ": "·"}


def visible(text: str, *, glyphs: bool = True) -> str:
    """Control characters as ``\\xNN`` / ``\\uNNNN``, and whitespace as glyphs when ``glyphs``."""
    out = []
    for ch in text:
        code = ord(ch)
        if glyphs and ch in GLYPHS:
            out.append(GLYPHS[ch])
        elif ch in "\n\t ":  # a lone \r would end a Markdown line or a <pre> line: escaped
            out.append(ch)
        elif code < 32 or code == 127 or 0x80 <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif ch in "\u2028\u2029":
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)
