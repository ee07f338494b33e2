"""The Backend protocol: the session asks for the next-token logits of a prefix of ids.

Only backends call the model. A backend also says what it can do (Capabilities) so the
faces can grey out the views it cannot give instead of faking them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from tokentui.engine.models import LoadedModel


VIEWS = ("attention", "hidden_states", "gradients", "full_vocab")
"""The views a backend may lack; each missing one has its own reason in ``Capabilities``."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can compute, with the reason for each view it cannot give.

    The faces read only this (never transformers' config attribute names): how many layers
    and heads to offer, whether to grey the attention pane, and what to say when they do.
    """

    name: str
    """Shown in the header: backend kind and model name."""
    full_vocab: bool = True
    """False: only the top-N log-probabilities come back."""
    attention: bool = True
    """Attention weights per layer and head (not for servers, nor for recurrent models)."""
    hidden_states: bool = True
    gradients: bool = True
    tokenizer: bool = True
    max_context: int | None = None
    top_n: int | None = None
    """How many log-probabilities a top-N backend returns per step."""
    layers: int | None = None
    """Decoder layers (None when unknown, e.g. a server)."""
    heads: int | None = None
    """Attention heads per layer (None without attention)."""
    reason: str = ""
    """Why the views this backend lacks are missing (one line), when one reason covers all."""
    reasons: tuple[tuple[str, str], ...] = ()
    """``(view, why)`` for a view with a reason of its own (``VIEWS``)."""

    def why_not(self, view: str) -> str:
        """The one-line reason ``view`` is missing ('' when it is there)."""
        if getattr(self, view, True):
            return ""
        for name, why in self.reasons:
            if name == view:
                return why
        return self.reason or f"this backend gives no {view.replace('_', ' ')}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "full_vocab": self.full_vocab, "attention": self.attention,
            "hidden_states": self.hidden_states, "gradients": self.gradients,
            "tokenizer": self.tokenizer, "max_context": self.max_context, "top_n": self.top_n,
            "layers": self.layers, "heads": self.heads,
            "missing": {v: self.why_not(v) for v in VIEWS if not getattr(self, v)},
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
    """A model that can score the next token after a prefix of token ids.

    Everything a caller may use is declared here; a view a backend cannot give is said in
    ``capabilities`` (and its method raises a one-line error), never found by probing.
    """

    capabilities: Capabilities
    tokenizer: Any
    vocab_size: int
    eos_token_ids: frozenset[int]
    lock: threading.RLock
    """Held while the model runs; analyses that call the model directly hold it too."""

    @property
    def loaded(self) -> LoadedModel | None:
        """The local model and where it lives; None for a server."""
        ...

    @property
    def model(self) -> Any:
        """The torch module for a local model (analyses that need weights use it); None for a server."""
        ...

    @property
    def device(self) -> torch.device:
        """Where the model's inputs go (CPU for a server)."""
        ...

    def next_logits(
        self, ids: Sequence[int], *, attention: bool = False, hidden_states: bool = False
    ) -> BackendOutput:
        """Scores for the token after ``ids`` (reusing whatever cache the backend keeps)."""
        ...

    def read_ahead(self, ids: Sequence[int], start: int) -> bool:
        """Run ``ids`` through the model in one pass and answer the coming ``next_logits(ids[:k])``
        (``start <= k <= len(ids)``) from it: a given text read position by position (lockstep)
        costs one forward instead of one per token. False when the backend cannot (a server,
        a recurrent state), and ``next_logits`` works as before."""
        ...

    def reset(self) -> None:
        """Forget any cached state."""
        ...

    def cancel(self) -> None:
        """Abort work in flight from another thread (a server request); a no-op locally."""
        ...

    def check_length(self, n: int) -> None:
        """Raise ContextOverflowError when ``n`` tokens do not fit the model's context."""
        ...

    def attention_matrix(self, ids: Sequence[int]) -> torch.Tensor:
        """``(layers, heads, T, T)`` attention over ``ids``; CapabilityError without attention."""
        ...
