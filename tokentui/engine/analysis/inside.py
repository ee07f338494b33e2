"""Inside the model: what it did with one token, every number read from the loaded model.

For a position ``i`` of the current sequence: the token piece and its word, the input
embedding and its nearest neighbours, the position signal the architecture really uses
(learned ``wpe`` or rotary), the logit lens (each layer's residual stream through the
final norm and the unembedding), attention by layer, and the temperature knob swept over
one logits vector.

The lens and the attention of the newest positions reuse forwards the session already
ran (``Session.last_output`` for the position the newest step read, ``Session.next_output``
for the last one, which the next step reuses); an older position costs one forward over
its prefix. These views need the model's modules, so they work on the local backend only.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from tokentui.engine import sampling
from tokentui.engine.backends.local import eager_attention
from tokentui.engine.errors import TokentuiError
from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import TokenTable, token_bytes
from tokentui.engine.results import Token

if TYPE_CHECKING:
    from tokentui.engine.backends.base import Backend
    from tokentui.engine.session import Session

LN2 = math.log(2.0)
NEAREST = 8
SWEEP = tuple(round(0.1 * k, 10) for k in range(1, 21))
"""Temperatures 0.1 .. 2.0 in steps of 0.1 (the current one is added)."""
FINAL_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f", "final_norm")
LEARNED_POSITION_NAMES = ("wpe", "position_embeddings", "embed_positions")
PANES = ("token", "embedding", "position", "logit_lens", "attention_by_layer", "temperature_sweep")


class InsideError(TokentuiError):
    """A part of the model a view needs is missing, or the position is outside the sequence."""


# ----- results ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WordSplit:
    """The pieces around a token that the tokenizer cut out of the same word."""

    start: int
    end: int
    """Exclusive."""
    pieces: tuple[Token, ...]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.pieces)

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text,
                "pieces": [p.to_json() for p in self.pieces]}


@dataclass(frozen=True, slots=True)
class TokenInfo:
    index: int
    token: Token
    raw: bytes
    in_prompt: bool
    word: WordSplit
    vocab_size: int

    def to_json(self) -> dict[str, Any]:
        return {**self.token.to_json(), "index": self.index, "bytes": self.raw.hex(" "),
                "in_prompt": self.in_prompt, "word": self.word.to_json(),
                "vocab_size": self.vocab_size}


@dataclass(frozen=True, slots=True)
class Neighbour:
    token: Token
    cosine: float

    def to_json(self) -> dict[str, Any]:
        return {**self.token.to_json(), "cosine": self.cosine}


@dataclass(frozen=True, slots=True)
class EmbeddingInfo:
    token: Token
    values: tuple[float, ...]
    """The input-embedding row, ``d_model`` floats."""
    norm: float
    nearest: tuple[Neighbour, ...]
    """Other tokens by cosine similarity of their rows, most similar first."""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.token.id, "values": list(self.values), "norm": self.norm,
                "nearest": [n.to_json() for n in self.nearest]}


@dataclass(frozen=True, slots=True)
class RotaryVariant:
    """One of several rotary embeddings a model keeps (Gemma 3: local and global layers)."""

    layer_type: str
    """transformers' name for the layers that use it, e.g. ``sliding_attention``."""
    layers: tuple[int, ...]
    """0-based decoder layers that use it."""
    base: float | None
    attention_scaling: float
    inv_freq: tuple[float, ...]
    angle: tuple[float, ...]
    cos: tuple[float, ...]
    sin: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return {"layer_type": self.layer_type, "layers": list(self.layers), "base": self.base,
                "attention_scaling": self.attention_scaling, "inv_freq": list(self.inv_freq),
                "angle": list(self.angle), "cos": list(self.cos), "sin": list(self.sin)}


@dataclass(frozen=True, slots=True)
class PositionInfo:
    """The position signal at one index: ``rope``, ``learned``, ``alibi`` or ``none``."""

    kind: str
    index: int
    note: str = ""
    # rope
    base: float | None = None
    head_dim: int | None = None
    rope_type: str | None = None
    attention_scaling: float | None = None
    inv_freq: tuple[float, ...] = ()
    """Per pair of dimensions (j, j + head_dim/2): the rotation speed in radians per position."""
    angle: tuple[float, ...] = ()
    cos: tuple[float, ...] = ()
    """``head_dim`` values, as the model's rotary module returns them."""
    sin: tuple[float, ...] = ()
    # learned
    vector: tuple[float, ...] = ()
    vector_norm: float | None = None
    token_plus_position: tuple[float, ...] = ()
    sum_norm: float | None = None
    table_row: int | None = None
    """The row of the learned table read for this position (OPT adds an offset of 2)."""
    # rope with one embedding per layer type (the fields above hold the first layer's)
    variants: tuple[RotaryVariant, ...] = ()
    # alibi
    slopes: tuple[float, ...] = ()
    """Per head: the attention score to a key ``d`` positions back gets ``-slope * d``."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "index": self.index, "note": self.note}
        if self.kind == "rope":
            out.update(base=self.base, head_dim=self.head_dim, rope_type=self.rope_type,
                       attention_scaling=self.attention_scaling, inv_freq=list(self.inv_freq),
                       angle=list(self.angle), cos=list(self.cos), sin=list(self.sin),
                       variants=[v.to_json() for v in self.variants])
        elif self.kind == "learned":
            out.update(vector=list(self.vector), vector_norm=self.vector_norm,
                       token_plus_position=list(self.token_plus_position), sum_norm=self.sum_norm,
                       table_row=self.table_row)
        elif self.kind == "alibi":
            out.update(slopes=list(self.slopes))
        return out


@dataclass(frozen=True, slots=True)
class LensEntry:
    token: Token
    p: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.token.id, "text": self.token.text, "p": self.p}


@dataclass(frozen=True, slots=True)
class LensLayer:
    """One layer's reading of the residual stream as a next-token distribution."""

    layer: int
    """0-based block index: 0 = after the first block ... n_layers - 1 = the model's output."""
    top: tuple[LensEntry, ...]
    entropy: float
    """Bits."""
    target_rank: int | None
    target_p: float | None

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "top": [t.to_json() for t in self.top],
                "entropy": self.entropy, "target_rank": self.target_rank, "target_p": self.target_p}


@dataclass(frozen=True, slots=True)
class LayerAttention:
    layer: int
    """0-based, like the lens and every layer number in tokentui."""
    mean: tuple[float, ...]
    """Attention from position ``i`` to positions ``0..i``, averaged over heads."""
    head_entropy: tuple[float, ...]
    """Bits per head: 0 = one token only, log2(i + 1) = spread evenly."""

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "mean": list(self.mean), "head_entropy": list(self.head_entropy),
                "max_entropy": math.log2(len(self.mean)) if self.mean else 0.0}


@dataclass(frozen=True, slots=True)
class FilterCut:
    """Where one filter cuts on its own at the current temperature."""

    name: str
    setting: float
    kept: int | None
    """Tokens kept; None when the filter is off."""
    last_kept_p: float | None
    """The smallest kept probability (softmax at the current temperature)."""

    def to_json(self) -> dict[str, Any]:
        return {"setting": self.setting, "kept": self.kept, "last_kept_p": self.last_kept_p}


@dataclass(frozen=True, slots=True)
class TemperatureSweep:
    """The top tokens' probability and the entropy as the temperature changes."""

    temperatures: tuple[float, ...]
    tokens: tuple[Token, ...]
    p: tuple[tuple[float, ...], ...]
    """``p[token][t]``: softmax of the penalised logits divided by ``temperatures[t]``."""
    entropy: tuple[float, ...]
    current_temperature: float
    cuts: tuple[FilterCut, ...]
    kept: int
    """Tokens surviving all filters together at the current settings."""
    p_final: tuple[float, ...]
    """The top tokens' probability after the whole pipeline at the current settings."""

    def to_json(self) -> dict[str, Any]:
        return {"temperatures": list(self.temperatures), "tokens": [t.to_json() for t in self.tokens],
                "p": [list(row) for row in self.p], "entropy": list(self.entropy),
                "current_temperature": self.current_temperature,
                "cuts": {c.name: c.to_json() for c in self.cuts}, "kept": self.kept,
                "p_final": list(self.p_final)}


@dataclass(frozen=True, slots=True)
class InsideReport:
    """Every pane for one position; a pane the model cannot give is None, with the reason."""

    index: int
    sequence_length: int
    target: Token | None
    """The token at ``index + 1`` (what the lens is scored against), None at the end."""
    token: TokenInfo | None = None
    embedding: EmbeddingInfo | None = None
    position: PositionInfo | None = None
    logit_lens: tuple[LensLayer, ...] | None = None
    attention_by_layer: tuple[LayerAttention, ...] | None = None
    temperature_sweep: TemperatureSweep | None = None
    missing: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def j(x: Any) -> Any:
            if x is None:
                return None
            if isinstance(x, tuple):
                return [e.to_json() for e in x]
            return x.to_json()

        return {"index": self.index, "sequence_length": self.sequence_length,
                "target": j(self.target), "token": j(self.token), "embedding": j(self.embedding),
                "position": j(self.position), "logit_lens": j(self.logit_lens),
                "attention_by_layer": j(self.attention_by_layer),
                "temperature_sweep": j(self.temperature_sweep), "missing": dict(self.missing)}


@dataclass(frozen=True, slots=True)
class LensGrid:
    """Top-1 of every layer at every position of a sequence (one forward)."""

    tokens: tuple[Token, ...]
    top: tuple[tuple[LensEntry, ...], ...]
    """``top[layer][position]`` (layers 0-based, like everywhere in tokentui)."""
    target_p: tuple[tuple[float | None, ...], ...]
    """Probability of the token actually at ``position + 1`` (None at the end)."""

    def to_json(self) -> dict[str, Any]:
        return {"tokens": [t.to_json() for t in self.tokens],
                "layers": [{"layer": n, "cells": [{**e.to_json(), "target_p": tp}
                                                  for e, tp in zip(row, tps, strict=True)]}
                           for n, (row, tps) in enumerate(zip(self.top, self.target_p, strict=True))]}


# ----- finding the modules ---------------------------------------------------------------
def _base(model: Any) -> Any:
    base = getattr(model, "base_model", model)
    decoder = getattr(base, "decoder", None)
    return decoder if isinstance(decoder, torch.nn.Module) else base


def _named(module: Any, names: Sequence[str]) -> tuple[str, Any] | None:
    for name in names:
        found = getattr(module, name, None)
        if isinstance(found, torch.nn.Module):
            return name, found
    return None


def final_norm(model: Any) -> torch.nn.Module:
    found = _named(_base(model), FINAL_NORM_NAMES)
    if found is None:
        raise InsideError(f"logit lens unavailable: no final norm found in "
                             f"{type(_base(model)).__name__} (looked for {', '.join(FINAL_NORM_NAMES)})")
    return found[1]


def rotary_module(model: Any) -> torch.nn.Module | None:
    base = _base(model)
    found = getattr(base, "rotary_emb", None)
    if isinstance(found, torch.nn.Module):
        return found
    layers = getattr(base, "layers", None)
    if layers is not None and len(layers):
        attn = getattr(layers[0], "self_attn", None)
        found = getattr(attn, "rotary_emb", None)
        if isinstance(found, torch.nn.Module):
            return found
    return None


def sincos_table(model: Any) -> torch.Tensor | None:
    """A GPT-J style ``[sin | cos]`` buffer in the first attention layer, if there is one."""
    base = _base(model)
    layers = getattr(base, "h", None)
    if layers is None:
        layers = getattr(base, "layers", None)
    if layers is None or not len(layers):
        return None
    attn = getattr(layers[0], "attn", None)
    table = getattr(attn, "embed_positions", None)
    return table if isinstance(table, torch.Tensor) and table.dim() == 2 else None


def _rope_base(config: Any, layer_type: str | None = None) -> float | None:
    params = getattr(config, "rope_parameters", None)
    if isinstance(params, dict):
        if layer_type is not None and isinstance(params.get(layer_type), dict):
            theta = params[layer_type].get("rope_theta")
            return float(theta) if theta is not None else None
        if "rope_theta" in params:
            return float(params["rope_theta"])
        for value in params.values():  # per layer type (e.g. sliding / full attention)
            if isinstance(value, dict) and "rope_theta" in value:
                return float(value["rope_theta"])
    theta = getattr(config, "rope_theta", None)
    return float(theta) if theta is not None else None


def _rope_type(rotary: Any, layer_type: str) -> str:
    kind = getattr(rotary, "rope_type", "default")
    if isinstance(kind, dict):
        return str(kind.get(layer_type, "default"))
    return str(kind)


def uses_alibi(config: Any) -> bool:
    """Bloom always; Falcon and MPT when their config turns it on."""
    if getattr(config, "model_type", "") == "bloom":
        return True
    if getattr(config, "alibi", False) is True:
        return True
    attn = getattr(config, "attn_config", None)
    return bool(getattr(attn, "alibi", False) if not isinstance(attn, dict) else attn.get("alibi"))


def alibi_slopes(heads: int) -> tuple[float, ...]:
    """ALiBi's per-head slopes (Press et al. 2022): a geometric series from ``2^(-8/n)``,
    interleaved with the next power of two's when ``heads`` is not a power of two."""
    closest = 2 ** math.floor(math.log2(heads))
    base = 2.0 ** (-(2.0 ** -(math.log2(closest) - 3)))
    slopes = [base ** (i + 1) for i in range(closest)]
    if closest != heads:
        extra = 2.0 ** (-(2.0 ** -(math.log2(2 * closest) - 3)))
        slopes += [extra ** (2 * i + 1) for i in range(min(closest, heads - closest))]
    return tuple(slopes)


def _text_config(model: Any) -> Any:
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


# ----- the inspector ------------------------------------------------------------------------
class Inspector:
    """Computes the Inside panes from one local backend's model (caches the embedding norms)."""

    def __init__(self, backend: Backend) -> None:
        model = backend.model
        if model is None or not backend.capabilities.hidden_states:
            raise InsideError("this backend gives no access to the model's internals "
                          "(use --backend local)")
        self.backend = backend
        self.model = model
        self.tokenizer = backend.tokenizer
        self.tokens = TokenTable(self.tokenizer)
        self._row_norms: torch.Tensor | None = None
        self._embeddings: dict[int, EmbeddingInfo] = {}
        """Per token id (it does not depend on the context); bounded below."""

    # -- token --------------------------------------------------------------------------
    def token_info(self, ids: Sequence[int], index: int, *, prompt_length: int) -> TokenInfo:
        raw = [self._bytes(i) for i in ids]
        start = index
        while start > 0 and index - start < 32 and self._joins(ids, raw, start - 1, start):
            start -= 1
        end = index + 1
        while end < len(ids) and end - index < 32 and self._joins(ids, raw, end - 1, end):
            end += 1
        word = WordSplit(start=start, end=end, pieces=tuple(self.tokens(i) for i in ids[start:end]))
        return TokenInfo(index=index, token=self.tokens(ids[index]), raw=raw[index],
                         in_prompt=index < prompt_length, word=word,
                         vocab_size=int(self.backend.vocab_size))

    def _bytes(self, token_id: int) -> bytes:
        raw = token_bytes(self.tokenizer, token_id)
        piece = self.tokenizer.convert_ids_to_tokens(int(token_id)) or ""
        if piece.startswith("\u2581") and not raw.startswith(b" "):  # SentencePiece word start
            raw = b" " + raw
        return raw

    def _joins(self, ids: Sequence[int], raw: Sequence[bytes], left: int, right: int) -> bool:
        """True when piece ``right`` continues the word of piece ``left``: no space between,
        neither special, and both sides letters/digits (or both punctuation)."""
        special = self.tokens.special_ids
        a, b = raw[left], raw[right]
        if ids[left] in special or ids[right] in special or not a or not b:
            return False
        if chr(b[0]).isspace() or chr(a[-1]).isspace():
            return False
        return _byte_class(a[-1]) == _byte_class(b[0])

    # -- embedding ----------------------------------------------------------------------
    def embedding(self, token_id: int, *, nearest: int = NEAREST,
                  products: torch.Tensor | None = None) -> EmbeddingInfo:
        """``products``: ``W_embed @ row`` when the caller already has them (see
        ``fused_embedding_row``); otherwise one matrix-vector product here."""
        key = self._embedding_key(token_id, nearest)
        if key not in self._embeddings:
            if len(self._embeddings) >= 512:
                self._embeddings.pop(next(iter(self._embeddings)))
            self._embeddings[key] = self._embedding(token_id, nearest, products)
        return self._embeddings[key]

    @staticmethod
    def _embedding_key(token_id: int, nearest: int) -> int:
        return int(token_id) * 1024 + nearest

    def _embedding(self, token_id: int, nearest: int, products: torch.Tensor | None) -> EmbeddingInfo:
        weight = self.model.get_input_embeddings().weight
        with self.backend.lock, torch.no_grad():
            if self._row_norms is None:
                self._row_norms = weight.float().norm(dim=1)
            row = weight[int(token_id)].float()
            dots = weight.float() @ row if products is None else products.to(self._row_norms.device)
            cosine = dots / (self._row_norms * row.norm()).clamp_min(1e-12)
            cosine[int(token_id)] = -math.inf
            top = torch.topk(cosine, min(nearest, cosine.shape[0] - 1))
        neighbours = tuple(Neighbour(self.tokens(int(i)), float(c))
                           for i, c in zip(top.indices.tolist(), top.values.tolist(), strict=True))
        return EmbeddingInfo(token=self.tokens(int(token_id)), values=tuple(row.cpu().tolist()),
                             norm=float(row.norm()), nearest=neighbours)

    # -- position -------------------------------------------------------------------------
    def position(self, index: int, token_id: int) -> PositionInfo:
        base = _base(self.model)
        config = _text_config(self.model)
        learned = _named(base, LEARNED_POSITION_NAMES)
        if learned is not None:
            return self._learned(index, token_id, *learned)
        if uses_alibi(config):
            heads = int(getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None) or 0)
            slopes = alibi_slopes(heads)
            return PositionInfo(
                kind="alibi", index=index, slopes=slopes,
                note="ALiBi: no position vector is added and nothing is rotated; each head adds "
                     "-slope x distance to its attention scores, so far tokens count less. Slopes "
                     "per head: " + ", ".join(f"{v:.4g}" for v in slopes))
        rotary = rotary_module(self.model)
        table = sincos_table(self.model) if rotary is None else None
        if table is not None:
            return self._sincos(index, table, config)
        if rotary is None:
            if _rope_base(config) is not None:
                raise InsideError(f"position unavailable: the config names rotary embeddings "
                                     f"but no rotary module was found in {type(base).__name__}")
            return PositionInfo(kind="none", index=index,
                                note="no position vector is added to the input and no rotary module "
                                     "was found; order reaches the model some other way (or not at all)")
        variants = self._rotary_variants(rotary, index, config)
        main = variants[0]
        head_dim = len(main.cos)
        note = ("rotary embeddings: no vector is added; inside every attention layer the query and "
                f"key are rotated by an angle proportional to the position, in {head_dim // 2} pairs "
                "of dimensions")
        if len(variants) > 1:
            note += "; this model keeps " + str(len(variants)) + " rotary embeddings: " + "; ".join(
                f"{v.layer_type} (base {v.base:g}) in layers {', '.join(map(str, v.layers))}"
                if v.base is not None else f"{v.layer_type} in layers {', '.join(map(str, v.layers))}"
                for v in variants) + f" (the table shows {main.layer_type})"
        return PositionInfo(
            kind="rope", index=index, note=note, base=main.base, head_dim=head_dim,
            rope_type=str(_rope_type(rotary, main.layer_type)),
            attention_scaling=main.attention_scaling, inv_freq=main.inv_freq, angle=main.angle,
            cos=main.cos, sin=main.sin, variants=variants if len(variants) > 1 else ())

    def _sincos(self, index: int, table: torch.Tensor, config: Any) -> PositionInfo:
        """GPT-J style: each attention layer keeps a ``(positions, rotary_dim)`` buffer of
        ``[sin | cos]`` rows and rotates adjacent pairs of the first ``rotary_dim`` dimensions."""
        if not (table.shape[0] > 1 and index < table.shape[0]):
            raise InsideError(f"position unavailable: the rotary table has {table.shape[0]} rows")
        half = table.shape[-1] // 2
        with torch.no_grad():
            row, one = table[index].float().cpu(), table[1].float().cpu()
            sin, cos = row[:half], row[half:]
            inv_freq = torch.atan2(one[:half], one[half:])  # the angle one position turns
        rotary_dim = 2 * half
        base = _rope_base(config)
        if base is None and half > 1:  # inv_freq[j] = base ** (-2j / rotary_dim)
            base = round(float(inv_freq[1].double() ** (-rotary_dim / 2)), 3)
        return PositionInfo(
            kind="rope", index=index,
            note=f"rotary embeddings on the first {rotary_dim} dimensions of each head, adjacent "
                 "pairs (2j, 2j+1) rotated by an angle proportional to the position; the sin/cos "
                 "table is a buffer inside every attention layer; no vector is added",
            base=base, head_dim=rotary_dim, rope_type="default",
            attention_scaling=1.0, inv_freq=tuple(inv_freq.tolist()),
            angle=tuple((index * inv_freq).tolist()), cos=tuple(cos.tolist()) * 2,
            sin=tuple(sin.tolist()) * 2)

    def _learned(self, index: int, token_id: int, name: str, table: Any) -> PositionInfo:
        base = _base(self.model)
        offset = getattr(table, "offset", 0)
        if not isinstance(table, torch.nn.Embedding) or not isinstance(offset, int) or (
                type(table) is not torch.nn.Embedding and not offset):
            raise InsideError(f"position unavailable: {type(base).__name__}.{name} is a "
                              f"{type(table).__name__}, not a plain lookup table")
        row = index + offset
        with torch.no_grad():
            vec = table.weight[row].float()
            summed = self.model.get_input_embeddings().weight[int(token_id)].float() + vec
        shift = f" (position {index} + offset {offset})" if offset else ""
        return PositionInfo(kind="learned", index=index, table_row=row,
                            note=f"learned absolute positions ({name}): row {row}{shift} is added "
                                 "to the token's embedding before the first block",
                            vector=tuple(vec.cpu().tolist()), vector_norm=float(vec.norm()),
                            token_plus_position=tuple(summed.cpu().tolist()),
                            sum_norm=float(summed.norm()))

    def _rotary_variants(self, rotary: Any, index: int, config: Any) -> tuple[RotaryVariant, ...]:
        """One entry per rotary embedding: a plain module has one ``inv_freq``; Gemma 3's keeps
        ``<layer_type>_inv_freq`` per layer type and takes the type as an argument."""
        layer_types = getattr(rotary, "layer_types", None)
        config_types = list(getattr(config, "layer_types", None) or [])
        kinds: list[str | None] = [None]
        if isinstance(getattr(rotary, "inv_freq", None), torch.Tensor):
            kinds = [None]
        elif layer_types:
            order = [t for t in dict.fromkeys(config_types) if t in layer_types]
            kinds = order + [t for t in layer_types if t not in order]
        else:
            raise InsideError(f"position unavailable: {type(rotary).__name__} has no inv_freq")
        out = []
        n_layers = len(config_types) or int(getattr(config, "num_hidden_layers", 0) or 0)
        for kind in kinds:
            inv_freq = getattr(rotary, "inv_freq" if kind is None else f"{kind}_inv_freq", None)
            if not isinstance(inv_freq, torch.Tensor):
                raise InsideError(f"position unavailable: {type(rotary).__name__} has no inv_freq")
            with self.backend.lock, torch.no_grad():
                probe = torch.zeros(1, device=inv_freq.device, dtype=torch.float32)
                pos = torch.tensor([[index]], device=inv_freq.device)
                try:
                    cos, sin = (rotary(probe, position_ids=pos) if kind is None
                                else rotary(probe, pos, kind))
                except TypeError as exc:
                    raise InsideError(f"position unavailable: {type(rotary).__name__} has an "
                                      f"interface this view does not know ({exc})") from None
                angle = index * inv_freq.float()
            scaling = getattr(rotary, "attention_scaling" if kind is None
                              else f"{kind}_attention_scaling", 1.0)
            layers = tuple(range(n_layers)) if kind is None else tuple(
                i for i, t in enumerate(config_types) if t == kind)
            out.append(RotaryVariant(
                layer_type=kind or "all", layers=layers, base=_rope_base(config, kind),
                attention_scaling=float(scaling), inv_freq=tuple(inv_freq.float().cpu().tolist()),
                angle=tuple(angle.cpu().tolist()), cos=tuple(cos.reshape(-1).float().cpu().tolist()),
                sin=tuple(sin.reshape(-1).float().cpu().tolist())))
        return tuple(out)

    # -- logit lens -----------------------------------------------------------------------
    def lens_logits(self, hidden: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``(layers, ..., vocab)`` from ``hidden (layers + 1, ..., d)`` and ``logits (..., vocab)``.

        Blocks 1..L-1 go through the final norm and the unembedding; the last layer is the
        model's own logits (transformers already applied the final norm to that hidden state,
        so normalising it again would be wrong)."""
        return self.lens_and_products(hidden, logits, None)[0]

    def lens_and_products(self, hidden: torch.Tensor, logits: torch.Tensor,
                           extra: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The lens logits, and ``extra @ W_unembed.T`` for ``extra (d,)`` in the same matmul.

        The unembedding is the lens's largest cost and one more row in it is nearly free:
        with tied embeddings that row's products are the dot products the nearest-token
        search needs."""
        norm = final_norm(self.model)
        head = self.model.get_output_embeddings()
        if head is None:
            raise InsideError("logit lens unavailable: the model has no output embedding")
        weight = head.weight
        with self.backend.lock, torch.no_grad():
            inner = norm(hidden[1:-1].to(device=weight.device, dtype=weight.dtype))
            rows = inner.reshape(-1, inner.shape[-1])
            n_extra = 0 if extra is None else 1
            if extra is not None:
                rows = torch.cat([extra.to(device=weight.device, dtype=weight.dtype)[None], rows])
            # One buffer [extra?, inner layers..., model logits]: the matmul writes into it
            # directly and the lens is a contiguous view of its tail.
            vocab = weight.shape[0]
            buffer = torch.empty((rows.shape[0] + logits.numel() // vocab, vocab),
                                 dtype=torch.float32, device=weight.device)
            out = buffer[:rows.shape[0]]
            if _plain_linear(head) and weight.dtype == torch.float32:
                torch.mm(rows, weight.T, out=out)
            else:
                out.copy_(head(rows))
            buffer[rows.shape[0]:] = logits.reshape(-1, vocab)
            lens = buffer[n_extra:].view(inner.shape[0] + 1, *logits.shape)
            cap = getattr(_text_config(self.model), "final_logit_softcapping", None)
            if cap:
                inner_z = lens[:-1]
                inner_z.copy_(torch.tanh(inner_z / cap) * cap)
            return lens, (buffer[0] if extra is not None else None)

    def fused_embedding_row(self, token_id: int) -> torch.Tensor | None:
        """The input-embedding row to multiply inside the lens matmul, when that gives the
        nearest-token dot products (tied, bias-free, float32 unembedding) and they are not
        cached yet."""
        head = self.model.get_output_embeddings()
        weight = self.model.get_input_embeddings().weight
        # float32 only: in bf16/fp16 the products would round and change the neighbours.
        tied = _plain_linear(head) and head.weight is weight and weight.dtype == torch.float32
        if not tied or self._embedding_key(token_id, NEAREST) in self._embeddings:
            return None
        return weight[int(token_id)]

    def logit_lens(self, hidden: torch.Tensor, logits: torch.Tensor, target: int | None,
                   *, top_k: int = 5, lens: torch.Tensor | None = None) -> tuple[LensLayer, ...]:
        """``lens``: the lens logits when the caller already computed them."""
        p, entropy_t = softmax_entropy(self.lens_logits(hidden, logits) if lens is None else lens)
        entropy = entropy_t.tolist()
        top = torch.topk(p, min(top_k, p.shape[-1]))
        top_p = top.values
        if target is not None:
            target_p = p[:, target]
            ranks = ((p > target_p[:, None]).sum(-1) + 1).tolist()
            target_ps = target_p.tolist()
        layers = []
        for n, (ids, ps) in enumerate(zip(top.indices.tolist(), top_p.tolist(), strict=True)):
            layers.append(LensLayer(
                layer=n, top=tuple(LensEntry(self.tokens(i), v) for i, v in zip(ids, ps, strict=True)),
                entropy=entropy[n], target_rank=ranks[n] if target is not None else None,
                target_p=target_ps[n] if target is not None else None))
        return tuple(layers)

    def lens_grid(self, ids: Sequence[int]) -> LensGrid:
        """Every layer's top-1 at every position: one uncached forward over ``ids``."""
        ids = [int(i) for i in ids]
        out = self.forward(ids, attention=False)
        hidden = torch.stack([h[0] for h in out.hidden_states])  # (L+1, T, d)
        logits = out.logits[0]
        nxt = torch.tensor([*ids[1:], 0], dtype=torch.long, device=logits.device)
        best_p, best_id, target_p = [], [], []
        for lo in range(0, len(ids), 16):  # (L, 16, vocab) at a time keeps memory flat
            p = torch.softmax(self.lens_logits(hidden[:, lo:lo + 16], logits[lo:lo + 16]), dim=-1)
            best = p.max(dim=-1)
            best_p.append(best.values)
            best_id.append(best.indices)
            target_p.append(p.gather(-1, nxt[lo:lo + 16].expand(p.shape[0], -1)[..., None])[..., 0])
        values, indices = torch.cat(best_p, 1).tolist(), torch.cat(best_id, 1).tolist()
        targets = torch.cat(target_p, 1).tolist()
        return LensGrid(
            tokens=tuple(self.tokens(i) for i in ids),
            top=tuple(tuple(LensEntry(self.tokens(i), v) for i, v in zip(row_i, row_v, strict=True))
                      for row_i, row_v in zip(indices, values, strict=True)),
            target_p=tuple((*row[:-1], None) for row in targets))

    # -- attention --------------------------------------------------------------------------
    @staticmethod
    def attention_by_layer(attention: torch.Tensor) -> tuple[LayerAttention, ...]:
        """From ``(layers, heads, seq)``: the head mean and each head's entropy in bits."""
        a = attention.float()
        mean = a.mean(dim=1)
        entropy = -(a * torch.log2(a.clamp_min(1e-30))).sum(-1)
        return tuple(LayerAttention(layer=n, mean=tuple(m), head_entropy=tuple(h))
                     for n, (m, h) in enumerate(zip(mean.tolist(), entropy.tolist(), strict=True)))

    # -- forwards ---------------------------------------------------------------------------
    def forward(self, ids: Sequence[int], *, attention: bool) -> Any:
        """One uncached forward with hidden states (and attention) over ``ids``."""
        self.backend.check_length(len(ids))
        ctx = eager_attention(self.model) if attention else contextlib.nullcontext()
        with self.backend.lock, torch.no_grad(), ctx:
            device = self.model.get_input_embeddings().weight.device
            out = self.model(input_ids=torch.tensor([list(ids)], device=device),
                             use_cache=False, output_hidden_states=True, output_attentions=attention)
        if not out.hidden_states:
            raise InsideError("logit lens unavailable: the model returned no hidden states")
        return out


def softmax_entropy(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(p, entropy in bits)`` of ``softmax(z)`` over the last axis (0 log 0 = 0)."""
    p = torch.softmax(z, dim=-1)
    log_p = torch.log_softmax(z, dim=-1).clamp_min(torch.finfo(z.dtype).min)  # -inf: p is 0 there
    return p, -torch.linalg.vecdot(p, log_p) / LN2


def _plain_linear(module: Any) -> bool:
    """A bias-free ``nn.Linear``: its output is exactly ``x @ weight.T``."""
    return type(module) is torch.nn.Linear and module.bias is None


def _byte_class(byte: int) -> str:
    if byte >= 0x80 or chr(byte).isalnum():
        return "word"
    return "space" if chr(byte).isspace() else "punct"


# ----- the temperature knob (no forward) --------------------------------------------------
def temperature_sweep(
    logits: torch.Tensor,
    context_ids: Sequence[int],
    completion_ids: Sequence[int],
    params: SamplingParams,
    token_of: Any,
    *,
    top_n: int = 5,
    temperatures: Sequence[float] = SWEEP,
) -> TemperatureSweep:
    """Sweep the temperature over one logits vector, after the penalties the pipeline applies.

    At the current temperature (with the filters off) the probabilities equal the pipeline's
    ``p_final``: the same ``sampling.penalize`` produces the penalised scores (bit for bit on
    the CPU; a GPU may divide by the temperature as a multiply, a last-bit difference).
    """
    logits = logits.float()
    scores = sampling.penalize(logits, context_ids, completion_ids, params)
    current = float(params.temperature)
    temps = sorted({*(float(t) for t in temperatures), *([current] if current > 0 else [])})
    t = torch.tensor(temps, dtype=torch.float32, device=scores.device)[:, None]
    p, entropy_t = softmax_entropy(scores[None] / t)
    entropy = entropy_t.tolist()
    top_ids = torch.topk(scores, min(top_n, scores.shape[-1])).indices
    top_p = p[:, top_ids]
    full = sampling.process(logits, context_ids, completion_ids, params)
    at_t = p[temps.index(current)] if current > 0 else full.p_final
    filters = (("top_k", params.top_k, 0, {"top_p": 1.0, "min_p": 0.0}),
               ("top_p", params.top_p, 1.0, {"top_k": 0, "min_p": 0.0}),
               ("min_p", params.min_p, 0.0, {"top_k": 0, "top_p": 1.0}))
    active = sum(setting != off for _, setting, off, _ in filters)
    cuts = []
    for name, setting, off, change in filters:
        if setting == off:
            cuts.append(FilterCut(name, float(setting), None, None))
            continue
        kept = full.kept if active == 1 else sampling.process(
            logits, context_ids, completion_ids, params.with_changes(**change)).kept
        cuts.append(FilterCut(name, float(setting), int(kept.sum()), float(at_t[kept].min())))
    return TemperatureSweep(
        temperatures=tuple(temps), tokens=tuple(token_of(int(i)) for i in top_ids.tolist()),
        p=tuple(tuple(row) for row in top_p.T.tolist()), entropy=tuple(entropy),
        current_temperature=current, cuts=tuple(cuts), kept=int(full.kept.sum()),
        p_final=tuple(full.p_final[top_ids].tolist()))


# ----- one position of a session ------------------------------------------------------------
def resolve_index(index: int, length: int) -> int:
    """0-based index into prompt + completion; negative counts from the end."""
    resolved = index + length if index < 0 else index
    if not 0 <= resolved < length:
        raise InsideError(f"position {index} is outside the sequence of {length} tokens "
                             f"(use 0..{length - 1}, or -1..-{length} from the end)")
    return resolved


def position_output(session: Session, index: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(hidden (L+1, d), logits (vocab,), attention (layers, heads, index+1))`` at ``index``
    (attention None for a model without attention weights).

    The last position comes from ``session.next_output`` (kept for the next step); the position
    the newest step read from ``session.last_output`` when it holds both; any other position
    from one forward over its prefix.
    """
    ctx = session.context_ids()
    has_attention = session.backend.capabilities.attention
    if index == len(ctx) - 1:
        out = session.next_output(attention=has_attention, hidden_states=True)
        if out.hidden_states is None:
            raise InsideError("this backend returned no hidden states")
        return out.hidden_states, out.logits, out.attention
    last = session.last_output
    if last is not None and last[0] == tuple(ctx[:index + 1]):
        out = last[1]
        if out.hidden_states is not None and (out.attention is not None or not has_attention):
            return out.hidden_states, out.logits, out.attention
    full = Inspector(session.backend).forward(ctx[:index + 1], attention=has_attention)
    hidden = torch.stack([h[0, -1].float().cpu() for h in full.hidden_states])
    attention = (torch.stack([a[0, :, -1].float().cpu() for a in full.attentions])
                 if has_attention else None)
    return hidden, full.logits[0, -1].float(), attention


def inspect(session: Session, index: int = -1, *, top_k: int = 5, strict: bool = True,
            inspector: Inspector | None = None) -> InsideReport:
    """Every Inside pane for one position of the session's current branch.

    ``strict``: raise the first InsideError (the CLI); otherwise the failing pane is None
    and its reason is in ``missing`` (the TUI shows the other panes).
    """
    inspector = inspector or Inspector(session.backend)
    ctx = session.context_ids()
    i = resolve_index(index, len(ctx))
    target = ctx[i + 1] if i + 1 < len(ctx) else None
    found: dict[str, Any] = {}
    missing: dict[str, str] = {}

    def attempt(name: str, fn: Any) -> None:
        try:
            found[name] = fn()
        except InsideError as exc:
            if strict:
                raise
            missing[name] = str(exc)

    attempt("token", lambda: inspector.token_info(ctx, i, prompt_length=len(session.prompt_ids)))
    attempt("position", lambda: inspector.position(i, ctx[i]))
    attempt("output", lambda: position_output(session, i))
    products = None
    if "output" in found:
        hidden, logits, attention = found.pop("output")
        row = inspector.fused_embedding_row(ctx[i])
        attempt("lens", lambda: inspector.lens_and_products(hidden, logits, row))
        if "lens" in found:
            lens, products = found.pop("lens")
            attempt("logit_lens", lambda: inspector.logit_lens(hidden, logits, target, top_k=top_k,
                                                               lens=lens))
        else:
            missing["logit_lens"] = missing.pop("lens")
        if attention is not None:
            attempt("attention_by_layer", lambda: inspector.attention_by_layer(attention))
        else:
            # A view the architecture does not have: greyed with its reason, even in strict mode.
            missing["attention_by_layer"] = (session.backend.capabilities.why_not("attention")
                                             or "the backend returned no attention weights")
        n_prompt = len(session.prompt_ids)
        attempt("temperature_sweep", lambda: temperature_sweep(
            logits, ctx[:i + 1], ctx[n_prompt:i + 1], session.params, inspector.tokens))
    else:
        reason = missing.pop("output")
        missing.update({name: reason for name in PANES[3:]})
    attempt("embedding", lambda: inspector.embedding(ctx[i], products=products))
    return InsideReport(index=i, sequence_length=len(ctx),
                        target=inspector.tokens(target) if target is not None else None,
                        missing=missing, **found)
