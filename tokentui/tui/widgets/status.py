"""The status line: loading progress, what just happened, or one clear error line."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static


class StatusLine(Static):
    """One line; state as CSS classes (``-loading``, ``-error``).

    Its size never changes (one line, the full width), so an update repaints it without a
    layout of the whole screen: during a run it changes several times a second.
    """

    def update(self, content: Any = "", *, layout: bool = False) -> None:
        super().update(content, layout=layout)

    def info(self, message: str) -> None:
        self.set_classes("")
        self.update(Text(message))

    def error(self, message: str) -> None:
        self.set_classes("-error")
        first = message.strip().splitlines()[0] if message.strip() else "error"
        self.update(Text(f"✗ {first}"))

    def loading(self, stage: str, fraction: float | None) -> None:
        self.set_classes("-loading")
        text = Text(f"loading model: {stage}")
        if fraction is not None:
            filled = round(max(0.0, min(1.0, fraction)) * 20)
            text.append(f"  {'█' * filled}{'░' * (20 - filled)} {fraction:4.0%}")
        self.update(text)
