"""Every worker failure in words: one function, used by the App's one ``Worker.StateChanged``
handler (and by the few workers that also show the line on their own dialog)."""

from __future__ import annotations

from tokentui.engine.errors import TokentuiError


def failure_line(error: BaseException | None, what: str = "", prefix: str = "") -> str:
    """One line: a :class:`TokentuiError`'s message as is; anything else
    ``<what> failed: <message>``; after ``prefix: `` when given (the prefix then says what
    failed). Never a bare exception class name."""
    text = next((line.strip() for line in str(error or "").splitlines() if line.strip()), "")
    if isinstance(error, TokentuiError) or prefix:
        line = text or "failed"
    else:
        line = f"{what or 'the last action'} failed" + (f": {text}" if text else "")
    return f"{prefix}: {line}" if prefix else line
