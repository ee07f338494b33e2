"""Which earlier tokens drove a token: captum gradient methods and attention aggregation.

The target of every method is the log-probability of the token actually taken at a
position, given everything before it. Gradient methods run the local model on its
embeddings (``use_cache=False``, grads only w.r.t. the input) under the backend lock;
their per-dimension scores are reduced per token by an L2 norm or a signed sum, and the
choice is recorded in the result. Attention methods read eager attention weights.

The association matrix batches several targets per forward pass: a causal model lets
each batch row carry one target (its own position and token) over the same prefix.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tokentui.engine.analysis import attention as attn
from tokentui.engine.errors import Cancelled, CapabilityError, ParameterError
from tokentui.engine.prompts import TokenTable
from tokentui.engine.results import Token

if TYPE_CHECKING:
    from tokentui.engine.backends.base import Backend

Progress = Callable[[int, int], None]
"""``progress(done_rows, total_rows)`` after each batch of the association matrix."""


class AttributionCancelled(Cancelled):
    """The association matrix was cancelled before it finished."""


@dataclass(frozen=True, slots=True)
class MethodInfo:
    name: str
    kind: str
    """``gradient`` or ``attention``."""
    summary: str
    rows_per_target: Callable[[int], int] = field(default=lambda steps: 1)
    """Forward rows one target costs, given ``n_steps`` (for batch sizing)."""


METHODS: dict[str, MethodInfo] = {m.name: m for m in (
    MethodInfo("saliency", "gradient", "|d log p / d embedding| (captum Saliency)"),
    MethodInfo("input_x_gradient", "gradient", "embedding x gradient (captum InputXGradient)"),
    MethodInfo("integrated_gradients", "gradient",
               "layer integrated gradients over the embeddings, with convergence delta",
               lambda steps: steps),
    MethodInfo("gradient_shap", "gradient",
               "expected gradients from pad and random-token baselines (captum GradientShap)",
               lambda steps: steps),
    MethodInfo("layer_deeplift", "gradient",
               "DeepLift over the embedding layer from the pad baseline (captum LayerDeepLift)",
               lambda steps: 2),
    MethodInfo("attention_last", "attention", "last layer's attention, mean over heads"),
    MethodInfo("attention_mean", "attention", "attention averaged over all layers and heads"),
    MethodInfo("attention_rollout", "attention", "attention rollout (Abnar & Zuidema 2020)"),
)}
AGGREGATIONS = ("l2", "sum")
BASELINES = ("pad", "eos", "unk")


@dataclass(frozen=True, slots=True)
class AttributionConfig:
    """How to attribute: method, reduction per token, IG steps and baseline, batch size."""

    method: str = "saliency"
    aggregation: str = "l2"
    """``l2`` (norm of each token's scores) or ``sum`` (signed sum); attention ignores it."""
    n_steps: int = 16
    """Integral steps of integrated gradients (samples of gradient SHAP)."""
    baseline: str | int = "pad"
    """``pad``, ``eos``, ``unk`` or a token id: what every input token is replaced by."""
    batch_size: int = 16
    """Forward rows per pass in the association matrix (targets x steps)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ParameterError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.aggregation not in AGGREGATIONS:
            raise ParameterError(f"unknown aggregation {self.aggregation!r}: use l2 or sum")
        if not 1 <= self.n_steps <= 1024:
            raise ParameterError(f"steps must be between 1 and 1024, got {self.n_steps}")
        if self.batch_size < 1:
            raise ParameterError(f"batch size must be at least 1, got {self.batch_size}")
        if isinstance(self.baseline, str) and self.baseline not in BASELINES:
            raise ParameterError(f"unknown baseline {self.baseline!r}: use pad, eos, unk or a token id")

    @property
    def info(self) -> MethodInfo:
        return METHODS[self.method]

    @property
    def aggregation_name(self) -> str:
        return "attention weight" if self.info.kind == "attention" else self.aggregation

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "aggregation": self.aggregation_name}
        if self.method in ("integrated_gradients", "gradient_shap", "layer_deeplift"):
            out["baseline"] = self.baseline
        if self.method in ("integrated_gradients", "gradient_shap"):
            out["n_steps"] = self.n_steps
        return out


@dataclass(frozen=True, slots=True)
class TokenAttribution:
    """One target token's scores over every token before it."""

    method: str
    aggregation: str
    target_position: int
    """Index of the target in the sequence; ``scores`` cover positions ``0..target_position-1``."""
    target: Token
    tokens: tuple[Token, ...]
    scores: tuple[float, ...]
    target_logprob: float | None = None
    """f(input): log-probability of the target (gradient methods)."""
    baseline_logprob: float | None = None
    """f(baseline), integrated gradients and DeepLift only."""
    convergence_delta: float | None = None
    """sum(raw attributions) - (f(input) - f(baseline)), as captum reports it."""
    device: str = "cpu"
    note: str | None = None
    elapsed_ms: float = 0.0

    @property
    def normalized(self) -> tuple[float, ...]:
        return normalize_row(self.scores)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method, "aggregation": self.aggregation,
            "target_position": self.target_position, "target": self.target.to_json(),
            "tokens": [t.to_json() for t in self.tokens], "scores": list(self.scores),
            "normalized": list(self.normalized), "target_logprob": self.target_logprob,
            "baseline_logprob": self.baseline_logprob,
            "convergence_delta": self.convergence_delta, "device": self.device, "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class AssociationMatrix:
    """Every output token against every token before it (ragged rows, prompt first)."""

    config: AttributionConfig
    input_tokens: tuple[Token, ...]
    output_tokens: tuple[Token, ...]
    rows: tuple[tuple[float, ...], ...]
    """Row ``i`` has ``len(input_tokens) + i`` scores: the prompt, then outputs ``0..i-1``."""
    convergence_delta: tuple[float, ...] | None = None
    target_logprob: tuple[float, ...] | None = None
    device: str = "cpu"
    note: str | None = None
    elapsed_ms: float = 0.0

    @property
    def width(self) -> int:
        return len(self.input_tokens) + len(self.output_tokens)

    def padded(self) -> list[list[float]]:
        """Rows padded with 0 to the full width (the token itself and later tokens)."""
        return [list(row) + [0.0] * (self.width - len(row)) for row in self.rows]

    def normalized(self) -> list[list[float]]:
        """Each row's absolute scores over its maximum (0..1), padded like ``padded()``."""
        return [list(normalize_row(row)) + [0.0] * (self.width - len(row)) for row in self.rows]

    def to_json(self, *, llm_id: str = "", prompt: str = "",
                generation_params: dict[str, Any] | None = None,
                timestamp: str | None = None) -> dict[str, Any]:
        """The analyzer format: ``{"metadata": {...}, "data": {...}}``."""
        def token_json(tok: Token, position: int) -> dict[str, Any]:
            return {"token": tok.text, "token_id": tok.id, "clean_token": tok.text.strip(),
                    "special": tok.special, "position": position}

        n_in = len(self.input_tokens)
        return {
            "metadata": {
                "timestamp": timestamp or datetime.now(UTC).isoformat(timespec="seconds"),
                "llm_id": llm_id,
                "prompt": prompt,
                "attribution_method": self.config.method,
                "generation_params": generation_params or {},
                "attribution": {
                    **self.config.to_json(),
                    "target": "log-probability of the output token given every token before it",
                    "layout": "rows are output tokens; columns are input_tokens then output_tokens. "
                              "Row i covers the len(input_tokens)+i tokens before output i; the "
                              "columns at and after output i are 0 (padding: they cannot influence it)",
                    "row_lengths": [len(r) for r in self.rows],
                    "normalization": "abs(score) / max(abs(row)) over the row's own columns",
                    "convergence_delta": list(self.convergence_delta) if self.convergence_delta else None,
                    "target_logprob": list(self.target_logprob) if self.target_logprob else None,
                    "device": self.device,
                    "note": self.note,
                    "elapsed_ms": round(self.elapsed_ms, 1),
                },
            },
            "data": {
                "input_tokens": [token_json(t, i) for i, t in enumerate(self.input_tokens)],
                "output_tokens": [token_json(t, n_in + i) for i, t in enumerate(self.output_tokens)],
                "association_matrix": self.padded(),
                "normalized_association": self.normalized(),
            },
        }


def normalize_row(scores: Sequence[float]) -> tuple[float, ...]:
    """``|s| / max |s|`` (all zeros stay zeros)."""
    top = max((abs(s) for s in scores), default=0.0)
    return tuple(abs(s) / top if top > 0 else 0.0 for s in scores)


# ----- the differentiable target ----------------------------------------------------------
def target_logprob(model: Any, positions: torch.Tensor, targets: torch.Tensor, *,
                   input_ids: torch.Tensor | None = None,
                   inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """``(B,)`` log p(targets[b] | tokens before positions[b]) for each row.

    A single input row is shared by all ``B`` targets (a causal prefix serves them all).

    Only the query position of each row goes through the LM head, so a batch never
    materialises ``B x T x vocab`` logits.
    """
    hidden = model.base_model(input_ids=input_ids, inputs_embeds=inputs_embeds,
                              use_cache=False).last_hidden_state
    # One input row shared by every target (same prefix): broadcast it.
    rows = torch.arange(positions.shape[0], device=hidden.device) % hidden.shape[0]
    query = hidden[rows, positions.to(hidden.device) - 1]
    logits = model.get_output_embeddings()(query).float()
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits.log_softmax(-1).gather(1, targets.to(logits.device)[:, None]).squeeze(1)


def baseline_id(tokenizer: Any, baseline: str | int) -> int:
    """The token id every input token is replaced by in the baseline."""
    if isinstance(baseline, int) or (isinstance(baseline, str) and baseline.isascii()
                                      and baseline.isdigit()):
        given, vocab = int(baseline), len(tokenizer)
        if not 0 <= given < vocab:
            raise ParameterError(f"baseline token id {given} is outside the vocabulary (0..{vocab - 1})")
        return given
    name = {"pad": "pad_token_id", "eos": "eos_token_id", "unk": "unk_token_id"}[baseline]
    token_id = getattr(tokenizer, name, None)
    if token_id is None and baseline == "pad":
        token_id = tokenizer.eos_token_id
    if token_id is None:
        raise ParameterError(f"the tokenizer has no {baseline} token: give a token id as baseline")
    return int(token_id)


@dataclass(slots=True)
class _Batch:
    """Raw results of one batch of targets: per-token scores and the extras."""

    scores: torch.Tensor
    """``(B, T)`` on CPU."""
    delta: torch.Tensor | None
    f_input: torch.Tensor
    f_baseline: torch.Tensor | None


def _reduce(raw: torch.Tensor, aggregation: str) -> torch.Tensor:
    raw = raw.detach().float()
    return raw.norm(dim=-1) if aggregation == "l2" else raw.sum(dim=-1)


def _gradient_batch(model: Any, tokenizer: Any, ids: torch.Tensor, positions: torch.Tensor,
                    targets: torch.Tensor, cfg: AttributionConfig) -> _Batch:
    """Run one captum method over ``B`` rows of the same prefix (one target per row)."""
    import captum.attr as ca

    embed = model.get_input_embeddings()
    device = embed.weight.device
    ids, positions, targets = ids.to(device), positions.to(device), targets.to(device)
    extra = (positions, targets)
    base_ids = torch.full_like(ids, baseline_id(tokenizer, cfg.baseline))

    def from_embeds(e: torch.Tensor, pos: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        return target_logprob(model, pos, tgt, inputs_embeds=e)

    def from_ids(i: torch.Tensor, pos: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        return target_logprob(model, pos, tgt, input_ids=i)

    delta = f_base = None
    with torch.enable_grad():
        embeds = embed(ids).detach()
        if cfg.method == "saliency":
            raw = ca.Saliency(from_embeds).attribute(embeds, additional_forward_args=extra)
        elif cfg.method == "input_x_gradient":
            raw = ca.InputXGradient(from_embeds).attribute(embeds, additional_forward_args=extra)
        elif cfg.method == "integrated_gradients":
            lig = ca.LayerIntegratedGradients(from_ids, embed)
            raw, delta = lig.attribute(ids, baselines=base_ids, additional_forward_args=extra,
                                       n_steps=cfg.n_steps, return_convergence_delta=True)
        elif cfg.method == "gradient_shap":
            gen = torch.Generator().manual_seed(0)
            random_ids = torch.randint(0, embed.weight.shape[0], ids.shape[1:], generator=gen)
            baselines = torch.stack([embed(base_ids[0]), embed(random_ids.to(device))]).detach()
            with seeded(0, device):
                raw, delta = ca.GradientShap(from_embeds).attribute(
                    embeds, baselines=baselines, n_samples=cfg.n_steps,
                    additional_forward_args=extra, return_convergence_delta=True)
            delta = delta.view(ids.shape[0], -1).abs().mean(dim=1)
        else:  # layer_deeplift
            check_deeplift(model)
            wrapper = _LogProbModule(model)
            raw, delta = ca.LayerDeepLift(wrapper, embed).attribute(
                ids, baselines=base_ids, additional_forward_args=extra,
                return_convergence_delta=True)
    with torch.no_grad():  # every row holds the same prefix: one row gives f for all targets
        f_in = from_ids(ids[:1], positions, targets)
        if cfg.method in ("integrated_gradients", "layer_deeplift"):
            f_base = from_ids(base_ids[:1], positions, targets).float().cpu()
    return _Batch(scores=_reduce(raw, cfg.aggregation).cpu(),
                  delta=None if delta is None else delta.detach().float().cpu(),
                  f_input=f_in.float().cpu(), f_baseline=f_base)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch and numpy (captum draws from both) without disturbing anyone else's stream."""
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(state)


def check_deeplift(model: Any) -> None:
    """DeepLift's rules cover only some nonlinearity modules; elsewhere it is just a gradient."""
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR

    if not any(isinstance(m, tuple(SUPPORTED_NON_LINEAR)) for m in model.modules()):
        acts = sorted({type(m).__name__ for m in model.modules() if "Activation" in type(m).__name__
                       or type(m).__name__ in ("SiLU", "GELU")})
        raise ParameterError(
            f"layer_deeplift is not meaningful for this model: captum has no DeepLift rule for its "
            f"nonlinearities ({', '.join(acts) or 'functional ones'}); use integrated_gradients")


class _LogProbModule(torch.nn.Module):
    """An ``nn.Module`` around the target (DeepLift hooks the model's modules)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return target_logprob(self.model, positions, targets, input_ids=ids)


_CPU_COPIES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _cpu_copy(model: Any) -> Any:
    """A float32 CPU copy of the model (kept while the model lives) for the gradient fallback."""
    if model not in _CPU_COPIES:
        _CPU_COPIES[model] = copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()
    return _CPU_COPIES[model]


def _run_gradient(backend: Backend, work: Callable[[Any], _Batch]) -> tuple[_Batch, str, str | None]:
    """Run on the model's device; where that device cannot do it, on a CPU copy with a note."""
    if not backend.capabilities.gradients or backend.model is None:
        raise CapabilityError(f"{backend.capabilities.name} cannot compute gradients: "
                              f"{backend.capabilities.why_not('gradients') or 'no local model'}")
    model = backend.model
    device = model.get_input_embeddings().weight.device
    with backend.lock:
        try:
            return work(model), str(device), None
        except (RuntimeError, NotImplementedError) as exc:
            if device.type == "cpu" or "out of memory" in str(exc).lower():
                raise
            reason = str(exc).strip().splitlines()[0][:120]
            note = f"gradients failed on {device} ({reason}): computed on CPU in float32"
            return work(_cpu_copy(model)), "cpu", note


# ----- public API ----------------------------------------------------------------------------
def attribute_token(backend: Backend, context_ids: Sequence[int], target_position: int,
                    method: str | AttributionConfig = "saliency", **options: Any) -> TokenAttribution:
    """Scores of the token at ``target_position`` over every token before it.

    ``options`` are :class:`AttributionConfig` fields (``aggregation``, ``n_steps``,
    ``baseline``). Saliency on a short context takes a fraction of a second.
    """
    cfg = method if isinstance(method, AttributionConfig) else AttributionConfig(method=method, **options)
    ids = [int(i) for i in context_ids]
    if not 1 <= target_position < len(ids):
        raise ParameterError(f"target position {target_position} is out of range: it needs at least "
                             f"one token before it (1..{len(ids) - 1})")
    matrix = _compute(backend, ids, [target_position], cfg, None, None)
    table = TokenTable(backend.tokenizer)
    return TokenAttribution(
        method=cfg.method, aggregation=cfg.aggregation_name, target_position=target_position,
        target=table(ids[target_position]), tokens=tuple(table.tokens(ids[:target_position])),
        scores=matrix.rows[0],
        target_logprob=matrix.f_input[0] if matrix.f_input else None,
        baseline_logprob=matrix.f_baseline[0] if matrix.f_baseline else None,
        convergence_delta=matrix.delta[0] if matrix.delta else None,
        device=matrix.device, note=matrix.note, elapsed_ms=matrix.elapsed_ms)


def association_matrix(backend: Backend, ids: Sequence[int], n_input: int,
                       config: AttributionConfig | None = None, *,
                       progress: Progress | None = None,
                       cancel: threading.Event | None = None) -> AssociationMatrix:
    """Every token after the first ``n_input`` against every token before it.

    Targets are batched ``config.batch_size`` forward rows at a time; ``progress`` is
    called after each batch and ``cancel`` is checked between batches (raising
    :class:`AttributionCancelled`).
    """
    cfg = config or AttributionConfig()
    ids = [int(i) for i in ids]
    if not 1 <= n_input <= len(ids):
        raise ParameterError(f"the prompt length {n_input} does not fit a sequence of {len(ids)} tokens")
    if n_input == len(ids):
        raise ParameterError("there are no output tokens to attribute: generate some first")
    raw = _compute(backend, ids, list(range(n_input, len(ids))), cfg, progress, cancel)
    table = TokenTable(backend.tokenizer)
    return AssociationMatrix(
        config=cfg, input_tokens=tuple(table.tokens(ids[:n_input])),
        output_tokens=tuple(table.tokens(ids[n_input:])), rows=raw.rows,
        convergence_delta=raw.delta, target_logprob=raw.f_input, device=raw.device, note=raw.note,
        elapsed_ms=raw.elapsed_ms)


@dataclass(slots=True)
class _Rows:
    rows: tuple[tuple[float, ...], ...]
    delta: tuple[float, ...] | None
    f_input: tuple[float, ...] | None
    f_baseline: tuple[float, ...] | None
    device: str
    note: str | None
    elapsed_ms: float


def _compute(backend: Backend, ids: list[int], positions: list[int], cfg: AttributionConfig,
             progress: Progress | None, cancel: threading.Event | None) -> _Rows:
    t0 = time.perf_counter()
    backend.check_length(len(ids))
    if cfg.info.kind == "attention":
        if cancel is not None and cancel.is_set():
            raise AttributionCancelled("attribution cancelled")
        rows = _attention_rows(backend, ids, positions, cfg.method)
        if progress is not None:
            progress(len(positions), len(positions))
        device = str(backend.device)
        return _Rows(rows, None, None, None, device, None, (time.perf_counter() - t0) * 1000)

    per_target = cfg.info.rows_per_target(cfg.n_steps)
    chunk = max(1, cfg.batch_size // per_target)
    out_rows: list[tuple[float, ...]] = []
    deltas: list[float] = []
    f_in: list[float] = []
    f_base: list[float] = []
    device, note = "cpu", None
    for start in range(0, len(positions), chunk):
        if cancel is not None and cancel.is_set():
            raise AttributionCancelled(f"attribution cancelled after {start} of {len(positions)} tokens")
        group = positions[start:start + chunk]
        length = max(group)
        batch_ids = torch.tensor([ids[:length]] * len(group))
        pos = torch.tensor(group)
        tgt = torch.tensor([ids[p] for p in group])
        def run(model: Any, b: torch.Tensor = batch_ids, p: torch.Tensor = pos,
                t: torch.Tensor = tgt) -> _Batch:
            return _gradient_batch(model, backend.tokenizer, b, p, t, cfg)

        batch, device, batch_note = _run_gradient(backend, run)
        note = note or batch_note
        for k, p in enumerate(group):
            out_rows.append(tuple(float(v) for v in batch.scores[k, :p].tolist()))
            f_in.append(float(batch.f_input[k]))
            if batch.delta is not None:
                deltas.append(float(batch.delta[k]))
            if batch.f_baseline is not None:
                f_base.append(float(batch.f_baseline[k]))
        if progress is not None:
            progress(start + len(group), len(positions))
    return _Rows(tuple(out_rows), tuple(deltas) or None, tuple(f_in), tuple(f_base) or None,
                 device, note, (time.perf_counter() - t0) * 1000)


def _attention_rows(backend: Backend, ids: list[int], positions: list[int], method: str
                    ) -> tuple[tuple[float, ...], ...]:
    """One eager forward over the longest prefix; row ``p - 1`` scores target ``p``."""
    att = attn.full_attention(backend, ids[:max(positions)])
    if method == "attention_last":
        matrix = attn.select(att, -1, None)
    elif method == "attention_mean":
        matrix = attn.select(att, None, None)
    else:
        matrix = attn.rollout(att)
    return tuple(tuple(float(v) for v in matrix[p - 1, :p].tolist()) for p in positions)


def with_method(config: AttributionConfig, method: str) -> AttributionConfig:
    return replace(config, method=method)
