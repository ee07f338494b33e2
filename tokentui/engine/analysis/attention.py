"""Attention weights: capture, aggregation over layers and heads, and rollout.

Capture is lazy. The newest token's row (layers x heads x seq) comes from one cached
step when asked for; the full ``(layers, heads, T, T)`` matrix of a sequence costs one
uncached eager forward and is only computed on demand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from tokentui.engine.errors import CapabilityError, ParameterError
from tokentui.engine.prompts import TokenTable
from tokentui.engine.results import Token

if TYPE_CHECKING:
    from tokentui.engine.backends.base import Backend

Weights = tuple[tuple[float, ...], ...]


@dataclass(frozen=True, slots=True)
class AttentionMatrix:
    """A ``T x T`` attention map (rows are queries, columns keys) of one token sequence."""

    tokens: tuple[Token, ...]
    weights: Weights
    """``weights[i][j]``: how much token ``i`` attends to token ``j`` (0 for ``j > i``)."""
    layer: int | None
    """0-based layer, or None for the mean over all layers."""
    head: int | None
    """0-based head, or None for the mean over heads."""
    n_layers: int
    n_heads: int

    @property
    def description(self) -> str:
        layer = "all layers (mean)" if self.layer is None else f"layer {self.layer}"
        head = "head mean" if self.head is None else f"head {self.head}"
        return f"{layer}, {head}"

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens": [t.to_json() for t in self.tokens],
            "layer": self.layer,
            "head": self.head,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "description": self.description,
            "weights": [list(row) for row in self.weights],
        }


@dataclass(frozen=True, slots=True)
class StepAttention:
    """The newest token's attention over the sequence, per layer and head."""

    position: int
    """Position of the query token (the last of the sequence)."""
    weights: tuple[Weights, ...]
    """``weights[layer][head][key]``."""

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position,
                "weights": [[list(h) for h in layer] for layer in self.weights]}


def check_layer_head(att: torch.Tensor, layer: int | None, head: int | None) -> tuple[int | None, int | None]:
    """Validate (negative indices count from the end); returns 0-based indices."""
    n_layers, n_heads = int(att.shape[0]), int(att.shape[1])
    if layer is not None:
        if not -n_layers <= layer < n_layers:
            raise ParameterError(f"layer {layer} is out of range: the model has {n_layers} layers "
                                 f"(0..{n_layers - 1}, or negative from the end)")
        layer %= n_layers
    if head is not None:
        if not -n_heads <= head < n_heads:
            raise ParameterError(f"head {head} is out of range: the model has {n_heads} heads "
                                 f"(0..{n_heads - 1}, or negative from the end)")
        head %= n_heads
    return layer, head


def select(att: torch.Tensor, layer: int | None = -1, head: int | None = None) -> torch.Tensor:
    """``(L, H, T, T)`` -> ``(T, T)``: one layer (or the layer mean), one head (or the head mean)."""
    layer, head = check_layer_head(att, layer, head)
    chosen = att if layer is None else att[layer:layer + 1]
    chosen = chosen if head is None else chosen[:, head:head + 1]
    return chosen.float().mean(dim=(0, 1))


def rollout(att: torch.Tensor, residual: float = 0.5) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): ``(L, H, T, T)`` -> ``(T, T)``.

    Each layer's head mean is mixed with the identity (the residual stream), rows are
    renormalised, and the layers are multiplied from the first up, so row ``i`` says how
    much of the last layer's token ``i`` flows from each input position.
    """
    mean = att.float().mean(dim=1)
    eye = torch.eye(mean.shape[-1], dtype=mean.dtype)
    result = eye
    for layer in mean:
        mixed = residual * eye + (1.0 - residual) * layer
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        result = mixed @ result
    return result


def to_rows(matrix: torch.Tensor) -> Weights:
    return tuple(tuple(float(v) for v in row) for row in matrix.tolist())


def full_attention(backend: Backend, ids: Sequence[int]) -> torch.Tensor:
    """``(L, H, T, T)`` on CPU for a whole sequence: one eager forward under the backend lock."""
    if not backend.capabilities.attention:
        raise CapabilityError(f"{backend.capabilities.name} gives no attention weights: "
                              f"{backend.capabilities.why_not('attention')}")
    if not ids:
        raise ParameterError("attention needs at least one token")
    return backend.attention_matrix(list(ids))


def attention_matrix(backend: Backend, ids: Sequence[int], *, layer: int | None = -1,
                     head: int | None = None, att: torch.Tensor | None = None) -> AttentionMatrix:
    """The attention map of ``ids`` for one layer (or all) and one head (or the mean)."""
    att = full_attention(backend, ids) if att is None else att
    layer, head = check_layer_head(att, layer, head)
    table = TokenTable(backend.tokenizer)
    return AttentionMatrix(tokens=tuple(table.tokens(ids)), weights=to_rows(select(att, layer, head)),
                           layer=layer, head=head, n_layers=int(att.shape[0]),
                           n_heads=int(att.shape[1]))


def step_attention(backend: Backend, ids: Sequence[int]) -> StepAttention:
    """The last token's attention (layers x heads x seq) from one cached step.

    The backend reuses its KV cache, so only the newest position is computed.
    """
    if not backend.capabilities.attention:
        raise CapabilityError(f"{backend.capabilities.name} gives no attention weights: "
                              f"{backend.capabilities.why_not('attention')}")
    out = backend.next_logits(list(ids), attention=True)
    if out.attention is None:
        raise ParameterError(f"{backend.capabilities.name} returned no attention weights")
    weights = tuple(tuple(tuple(float(v) for v in h) for h in layer.tolist()) for layer in out.attention)
    return StepAttention(position=len(ids) - 1, weights=weights)
