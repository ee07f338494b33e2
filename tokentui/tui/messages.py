"""Messages shared across widgets and the app (a widget's own messages live in its class).

They carry plain results (``StepResult``, strings, floats), never tensors or caches.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from tokentui.engine.results import StepResult


@dataclass
class ModelLoading(Message):
    """Progress of the model load, posted from the engine thread."""

    stage: str
    fraction: float | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ModelLoading)


@dataclass
class ModelLoaded(Message):
    """The backend is ready: what the header shows."""

    name: str
    device: str


@dataclass
class StepComputed(Message):
    """One token was added to the current branch."""

    step: StepResult


@dataclass
class RunFinished(Message):
    """A generation run ended (finished, stopped or failed)."""

    reason: str | None
    tokens: int
    seconds: float
