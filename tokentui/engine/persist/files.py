"""Writing files so that a reader or a crash never sees half of one."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a temporary file in the same folder, fsync, rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def json_safe(data: Any) -> Any:
    """JSON has no Infinity/NaN: such floats become null (a logit of -inf, say)."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(v) for v in data]
    return data


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


_JSON_UNSAFE = re.compile(
    "[\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]")
"""What json.dumps(ensure_ascii=False) leaves raw but a terminal acts on or hides: DEL, C1,
bidi controls, zero-width and the other format characters (Unicode category Cf), U+2028/9."""


def escape_json_text(text: str) -> str:
    """JSON text (from json.dumps) with those characters as ``\\uXXXX`` escapes.

    Outside string literals JSON is ASCII, so escaping them anywhere in the text is exact.
    """
    return _JSON_UNSAFE.sub(_json_escape, text)


def json_text(data: Any, *, indent: int | None = None,
              separators: tuple[str, str] | None = None) -> str:
    """Standard JSON (non-finite floats as null), UTF-8 text kept as is except the characters
    that act on a terminal or hide (C1, bidi, zero-width), which are ``\\uXXXX`` escapes:
    ``cat`` of the output shows them instead of running them."""
    return escape_json_text(json.dumps(json_safe(data), ensure_ascii=False, allow_nan=False,
                                       indent=indent, separators=separators))
