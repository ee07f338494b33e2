"""Immutable results that cross the engine boundary.

They hold plain ints, floats and strings (never tensors or caches), so a long session
keeps a flat memory profile and every result serialises with ``to_json()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokentui.engine.params import SamplingParams


@dataclass(frozen=True, slots=True)
class Token:
    """One vocabulary entry as the model sees it."""

    id: int
    text: str
    """The decoded piece: leading spaces and newlines kept, invalid UTF-8 bytes as ``<0xNN>``."""
    special: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "special": self.special}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A possible next token with its probability before and after the filters."""

    token: Token
    p_base: float
    """Softmax of the raw logits."""
    p_final: float
    """Probability after penalties, temperature, top-k/top-p/min-p and the constraint (0 if cut)."""
    logit: float
    """The raw logit."""
    kept: bool
    """Survives the sampling filters."""
    valid: bool = True
    """Allowed by the constraint."""
    rank: int = 0
    """Rank by ``p_base``, starting at 1."""

    @property
    def id(self) -> int:
        return self.token.id

    @property
    def text(self) -> str:
        return self.token.text

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.token.id,
            "text": self.token.text,
            "special": self.token.special,
            "p_base": self.p_base,
            "p_final": self.p_final,
            "logit": self.logit,
            "kept": self.kept,
            "valid": self.valid,
            "rank": self.rank,
        }


@dataclass(frozen=True, slots=True)
class Distribution:
    """The next-token distribution of one position, reduced to what is worth keeping."""

    candidates: tuple[Candidate, ...]
    """Top-N by ``p_base``, descending; filtered tokens included."""
    entropy: float
    """Shannon entropy of ``p_base`` in bits."""
    entropy_final: float
    """Shannon entropy of ``p_final`` in bits."""
    n_kept: int
    """How many tokens survive the filters."""
    n_valid: int
    """How many tokens the constraint allows (the vocabulary size without one)."""
    vocab_size: int
    top_n_only: bool = False
    """True when the backend returns only the top-N log-probabilities (remote servers)."""
    other_mass: float = 0.0
    """Probability mass outside ``candidates`` that a top-N backend could not name."""

    def to_json(self) -> dict[str, Any]:
        return {
            "candidates": [c.to_json() for c in self.candidates],
            "entropy": self.entropy,
            "entropy_final": self.entropy_final,
            "n_kept": self.n_kept,
            "n_valid": self.n_valid,
            "vocab_size": self.vocab_size,
            "top_n_only": self.top_n_only,
            "other_mass": self.other_mass,
        }


@dataclass(frozen=True, slots=True)
class StepResult:
    """One token added to a branch, with the distribution it was taken from."""

    index: int
    """Position in the completion (0 = first generated token)."""
    token: Token
    p_base: float
    p_final: float
    logit: float
    how: str
    """``greedy``, ``sampled``, ``forced`` or ``alternative``."""
    distribution: Distribution
    seed: int | None = None
    """The branch seed used for a sampled token (the draw is keyed by seed and ``index``)."""
    branch_id: int = 0
    finish_reason: str | None = None
    """Set on the last step of a run: ``eos``, ``stop``, ``length``, ``constraint``."""
    note: str | None = None
    """A remark about this step (e.g. the filters left no valid token)."""
    elapsed_ms: float = 0.0
    """Wall time of the forward pass and the pipeline for this step."""
    attention: tuple[tuple[tuple[float, ...], ...], ...] | None = field(
        default=None, compare=False
    )
    """Optional: per layer, per head, the new token's attention over the sequence."""
    params: SamplingParams | None = field(default=None, compare=False, repr=False)
    """The parameters this step was computed with (the session's own object, shared by every
    step taken under it, never copied): ``replay`` needs them when they changed mid-session."""

    @property
    def entropy(self) -> float:
        return self.distribution.entropy

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        return self.distribution.candidates

    @property
    def rank(self) -> int | None:
        """Rank of the chosen token by ``p_base`` if it is among the candidates."""
        for cand in self.distribution.candidates:
            if cand.token.id == self.token.id:
                return cand.rank
        return None

    def to_json(self, *, with_candidates: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": self.index,
            "token": self.token.to_json(),
            "p_base": self.p_base,
            "p_final": self.p_final,
            "logit": self.logit,
            "how": self.how,
            "entropy": self.distribution.entropy,
        }
        if with_candidates:
            out["candidates"] = [c.to_json() for c in self.distribution.candidates]
        if self.seed is not None:
            out["seed"] = self.seed
        if self.finish_reason:
            out["finish_reason"] = self.finish_reason
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True, slots=True)
class PromptTokenView:
    """How the model saw a prompt token: its next-token distribution from the tokens before it.

    Nothing chose a prompt token, but the distribution says how expected it was."""

    index: int
    """Position in the prompt (at least 1: the first token has nothing before it)."""
    token: Token
    distribution: Distribution
    p_base: float | None
    """The model's probability of this very token there; None when a top-N backend did not
    list it."""
    rank: int | None
    """1 = the model's favourite; None when a top-N backend did not list the token."""

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "token": self.token.to_json(), "p_base": self.p_base,
                "rank": self.rank, "distribution": self.distribution.to_json()}
