"""The Backend protocol: the session asks for the next-token logits of a prefix of ids.

Only backends call the model. A backend also says what it can do (Capabilities) so the
faces can grey out the views it cannot give instead of faking them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can compute, with the reason when it cannot."""

    name: str
    """Shown in the header: backend kind and model name."""
    full_vocab: bool = True
    """False: only the top-N log-probabilities come back."""
    attention: bool = True
    hidden_states: bool = True
    gradients: bool = True
    tokenizer: bool = True
    max_context: int | None = None
    top_n: int | None = None
    """How many log-probabilities a top-N backend returns per step."""
    reason: str = ""
    """Why the views this backend lacks are missing (one line)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "full_vocab": self.full_vocab, "attention": self.attention,
            "hidden_states": self.hidden_states, "gradients": self.gradients,
            "tokenizer": self.tokenizer, "max_context": self.max_context, "top_n": self.top_n,
        }


@dataclass(slots=True)
class BackendOutput:
    """The next-token scores of one prefix, plus optional internals of the last position."""

    logits: torch.Tensor
    """``(vocab,)``: raw logits, or log-probabilities when ``logits_are_logprobs``."""
    logits_are_logprobs: bool = False
    attention: torch.Tensor | None = None
    """``(layers, heads, seq)``: the last position's attention, on CPU, when asked for."""
    hidden_states: torch.Tensor | None = None
    """``(layers + 1, d_model)``: the last position's residual stream, on CPU, when asked for."""
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """A model that can score the next token after a prefix of token ids."""

    capabilities: Capabilities
    tokenizer: Any
    vocab_size: int
    eos_token_ids: frozenset[int]

    def next_logits(
        self, ids: Sequence[int], *, attention: bool = False, hidden_states: bool = False
    ) -> BackendOutput:
        """Scores for the token after ``ids`` (reusing whatever cache the backend keeps)."""
        ...

    def reset(self) -> None:
        """Forget any cached state."""
        ...
