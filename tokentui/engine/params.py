"""Sampling parameters and the named presets: plain values, no torch.

Kept apart from :mod:`tokentui.engine.sampling` so that building a parameter set (every
CLI command, ``--help``, the app's Params pane) never imports torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from tokentui.engine.errors import ParameterError


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Everything that decides how the next token is picked."""

    temperature: float = 0.7
    top_k: int = 0
    """0 = off."""
    top_p: float = 0.8
    """1.0 = off."""
    min_p: float = 0.0
    """0 = off."""
    repetition_penalty: float = 1.05
    """1.0 = off; transformers' definition over prompt + completion."""
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    """None: a seed is drawn when a branch is created (and recorded)."""
    greedy: bool = False
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        self.validate()

    @property
    def is_greedy(self) -> bool:
        """Greedy selection: asked for, or temperature 0."""
        return self.greedy or self.temperature == 0

    def validate(self) -> None:
        """Raise ParameterError naming the first value out of range."""
        checks: list[tuple[bool, str]] = [
            (_finite(self.temperature) and 0 <= self.temperature <= 100,
             f"temperature must be between 0 and 100, got {self.temperature}"),
            (self.top_k >= 0, f"top-k must be 0 (off) or positive, got {self.top_k}"),
            (_finite(self.top_p) and 0 < self.top_p <= 1,
             f"top-p must be in (0, 1], got {self.top_p}"),
            (_finite(self.min_p) and 0 <= self.min_p <= 1,
             f"min-p must be in [0, 1], got {self.min_p}"),
            (_finite(self.repetition_penalty) and self.repetition_penalty > 0,
             f"repetition penalty must be positive, got {self.repetition_penalty}"),
            (_finite(self.presence_penalty) and -2 <= self.presence_penalty <= 2,
             f"presence penalty must be in [-2, 2], got {self.presence_penalty}"),
            (_finite(self.frequency_penalty) and -2 <= self.frequency_penalty <= 2,
             f"frequency penalty must be in [-2, 2], got {self.frequency_penalty}"),
            (self.max_new_tokens >= 1, f"max tokens must be at least 1, got {self.max_new_tokens}"),
            (self.seed is None or 0 <= self.seed < 2**63,
             f"seed must be between 0 and 2**63 - 1 ({2**63 - 1}), got {self.seed}"),
            (all(self.stop), "stop sequences must not be empty strings"),
        ]
        for ok, message in checks:
            if not ok:
                raise ParameterError(message)

    def with_changes(self, **changes: Any) -> SamplingParams:
        """A validated copy with some fields changed."""
        if "stop" in changes and changes["stop"] is not None:
            changes["stop"] = tuple(changes["stop"])
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SamplingParams:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "stop" in kwargs:
            kwargs["stop"] = tuple(kwargs["stop"] or ())
        return cls(**kwargs)


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


PRESETS: dict[str, dict[str, Any]] = {
    "greedy": {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0,
               "repetition_penalty": 1.0, "greedy": True},
    "balanced": {"temperature": 0.7, "top_k": 0, "top_p": 0.8, "min_p": 0.0,
                 "repetition_penalty": 1.05, "greedy": False},
    "reliable": {"temperature": 0.3, "top_k": 40, "top_p": 0.9, "min_p": 0.0,
                 "repetition_penalty": 1.05, "greedy": False},
    "creative": {"temperature": 1.0, "top_k": 0, "top_p": 0.95, "min_p": 0.05,
                 "repetition_penalty": 1.1, "greedy": False},
}
"""Named starting points; ``balanced`` equals the defaults."""


def apply_preset(params: SamplingParams, name: str) -> SamplingParams:
    """The parameters of a preset, keeping seed, stops and lengths."""
    try:
        return params.with_changes(presence_penalty=0.0, frequency_penalty=0.0, **PRESETS[name])
    except KeyError:
        raise ParameterError(
            f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None
