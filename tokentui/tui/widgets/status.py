"""The status line: loading progress, what just happened, or one clear error line."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class StatusLine(Static):
    """One line; state as CSS classes (``-loading``, ``-error``)."""

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
