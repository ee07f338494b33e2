"""Writing files so that a reader or a crash never sees half of one."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokentui.engine.errors import ParameterError, TokentuiError


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


# ----- overwriting -------------------------------------------------------------------------
class OverwriteError(TokentuiError):
    """A writer was pointed at a file it must not replace (another kind of file, a folder...)."""


HEAD_BYTES = 64 * 1024


def describe_head(head: bytes) -> str:
    """What a file seems to be, from its first bytes (for a refusal message)."""
    text = head.lstrip()
    if not text:
        return "an empty file"
    if text.startswith(b'{"format":"tokentui-session"') or b'"format": "tokentui-session"' in text[:200]:
        return "a tokentui session file"
    if b"\x00" in head:
        return "binary data"
    lower = text[:200].lower()
    if lower.startswith((b"<!doctype html", b"<html", b"<!--")):
        return "an HTML page"
    if text[:1] in (b"{", b"["):
        return "JSON"
    return "a text file"


def check_overwrite(path: Path, *, kind: str, is_own: Callable[[bytes], bool],
                    force: bool = False) -> None:
    """Raise OverwriteError unless ``path`` may be (re)written as a ``kind``.

    A missing or empty file, or one this writer made before (``is_own`` of its first bytes),
    may be replaced; anything else only with ``force`` (``--force``). A folder, a device or a
    pipe never: they are not files to replace.
    """
    import stat

    path = Path(path).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise OverwriteError(f"cannot write {path}: the folder {path.parent} does not exist") from None
        return
    except OSError as exc:
        raise OverwriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OverwriteError(f"{path} is a folder, not a {kind}")
    if not stat.S_ISREG(st.st_mode):
        raise OverwriteError(f"{path} is not a regular file (a device, pipe or socket): not writing a {kind}")
    if force or st.st_size == 0:
        return
    try:
        with path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        raise OverwriteError(f"cannot read {path} to check it: {exc.strerror or exc}") from None
    if not is_own(head):
        raise OverwriteError(f"not overwriting {path}: it is {describe_head(head)}, not a {kind} "
                             f"(add --force to replace it)")


def write_checked(path: Path, text: str, *, kind: str, is_own: Callable[[bytes], bool],
                  force: bool = False) -> Path:
    """:func:`check_overwrite`, then an atomic write; an OSError becomes one OverwriteError line
    (a full disk or a read-only folder leaves the old file, or none, never half a file)."""
    path = Path(path).expanduser()
    check_overwrite(path, kind=kind, is_own=is_own, force=force)
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise OverwriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


# ----- reading what a user names -----------------------------------------------------------
def read_regular_file(p: Path, *, limit: int, what: str,
                      error: type[TokentuiError] = ParameterError) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is one error line.

    A FIFO, a device (``/dev/zero``), a socket or a folder is refused before it is opened, so
    nothing hangs or reads without end; the size is capped while reading too (a file that grows).
    """
    import stat

    try:
        st = p.stat()
    except FileNotFoundError:
        raise error(f"no such {what}: {p}") from None
    except OSError as exc:
        raise error(f"cannot read {p}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{p} is a folder, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{p} is not a regular file (a device, pipe or socket), not a {what}")
    if st.st_size > limit:
        raise error(f"{p} is {st.st_size / 2**20:.0f} MiB, larger than the {limit // 2**20} MiB a "
                    f"{what} may have")
    try:
        with p.open("rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {p}: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise error(f"{p} is larger than the {limit // 2**20} MiB a {what} may have")
    return raw


def decode_user_text(data: bytes, source: str, *, error: type[TokentuiError] = ParameterError) -> str:
    """Bytes a user gave as text: one line for a binary (NUL bytes) or non-UTF-8 input, saying
    where it broke and how it was read; a UTF-8 byte-order mark is dropped."""
    if b"\x00" in data:
        raise error(f"{source} is a binary file, not text (it holds NUL bytes)")
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{source} is not UTF-8 text: read as UTF-8, byte 0x{data[exc.start]:02x} at offset "
                    f"{exc.start} is invalid (convert it, e.g. iconv -f latin1 -t utf-8)") from None
    return decoded.removeprefix("\ufeff")


def read_user_text(path: str | Path, *, what: str, limit: int,
                   error: type[TokentuiError] = ParameterError) -> str:
    """A text file a user named (a grammar, a schema, choices, a text to score): a regular file
    of at most ``limit`` bytes, UTF-8, no NUL bytes; anything else is one error line."""
    p = Path(path).expanduser()
    return decode_user_text(read_regular_file(p, limit=limit, what=what, error=error), f"{p} ({what})",
                            error=error)
