"""Sampling parameters and the one-step filter pipeline.

The order and the formulas are transformers' own (``generation/logits_process.py``):
repetition penalty over prompt + completion, then the OpenAI presence/frequency
penalties over the completion, temperature, top-k, top-p, min-p, and last the
constraint mask. ``p_base`` is the softmax of the raw logits, ``p_final`` the softmax
of what survives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from tokentui.engine.params import SamplingParams
from tokentui.engine.results import Candidate, Distribution, Token

LN2 = math.log(2.0)


@dataclass(slots=True)
class Processed:
    """One step's full-vocabulary tensors, kept only while the step is being decided."""

    logits: torch.Tensor
    p_base: torch.Tensor
    scores: torch.Tensor
    """The processed scores (``-inf`` where cut)."""
    p_final: torch.Tensor
    kept: torch.Tensor
    valid: torch.Tensor | None
    no_valid_kept: bool = False
    log_p_base: torch.Tensor = field(default=None)  # type: ignore[assignment]


def penalize(
    logits: torch.Tensor,
    context_ids: Sequence[int],
    completion_ids: Sequence[int],
    params: SamplingParams,
) -> torch.Tensor:
    """The pipeline's first stage alone: a new float tensor with the repetition penalty
    (prompt + completion) and the presence/frequency penalties (completion) applied."""
    scores = logits.float().clone()
    device = scores.device
    if params.repetition_penalty != 1.0 and len(context_ids):
        ids = torch.as_tensor(list(context_ids), device=device, dtype=torch.long)
        score = scores.gather(0, ids)
        score = torch.where(score < 0, score * params.repetition_penalty,
                            score / params.repetition_penalty)
        scores = scores.scatter(0, ids, score)
    if (params.presence_penalty or params.frequency_penalty) and len(completion_ids):
        uniq, counts = np.unique(np.asarray(completion_ids, dtype=np.int64), return_counts=True)
        idx = torch.as_tensor(uniq, device=device)
        cnt = torch.as_tensor(counts, device=device, dtype=scores.dtype)
        scores[idx] -= params.frequency_penalty * cnt + params.presence_penalty
    return scores


def process(
    logits: torch.Tensor,
    context_ids: Sequence[int],
    completion_ids: Sequence[int],
    params: SamplingParams,
    valid: torch.Tensor | None = None,
    *,
    logits_are_logprobs: bool = False,
) -> Processed:
    """Run the filter pipeline on one logits vector ``(vocab,)``.

    ``context_ids`` is prompt + completion (repetition penalty), ``completion_ids`` the
    generated part alone (presence/frequency penalties). ``valid`` is an optional boolean
    mask from a constraint. ``logits_are_logprobs`` marks log-probabilities already
    normalised over the whole vocabulary (a top-N server), so ``p_base`` is not renormalised.
    """
    logits = logits.float()
    log_p_base = logits if logits_are_logprobs else torch.log_softmax(logits, dim=-1)
    p_base = log_p_base.exp()
    scores = penalize(logits, context_ids, completion_ids, params)
    device = scores.device
    if params.temperature not in (0.0, 1.0):
        scores = scores / params.temperature
    finite_before = torch.isfinite(scores)
    if params.top_k:
        top_k = min(params.top_k, scores.shape[-1])
        threshold = torch.topk(scores, top_k)[0][..., -1, None]
        scores = scores.masked_fill(scores < threshold, -math.inf)
    if params.top_p < 1.0:
        scores = scores.masked_fill(top_p_removed(scores, params.top_p), -math.inf)
    if params.min_p > 0:
        probs = torch.softmax(scores, dim=-1)
        remove = probs < params.min_p * probs.amax(dim=-1, keepdim=True)
        remove[torch.topk(probs, 1).indices] = False
        scores = scores.masked_fill(remove, -math.inf)
    kept = torch.isfinite(scores) & finite_before
    no_valid_kept = False
    final_scores = scores
    if valid is not None:
        valid = valid.to(device)
        allowed = kept & valid
        if bool(allowed.any()):
            final_scores = scores.masked_fill(~valid, -math.inf)
        else:
            # The filters left nothing the constraint allows: fall back to the best valid
            # token by p_base (the step records a note).
            no_valid_kept = True
            best = torch.where(valid, p_base, torch.full_like(p_base, -1.0)).argmax()
            final_scores = torch.full_like(scores, -math.inf)
            final_scores[best] = 0.0
    p_final = torch.softmax(final_scores, dim=-1)
    return Processed(logits=logits, p_base=p_base, scores=final_scores, p_final=p_final,
                     kept=kept, valid=valid, no_valid_kept=no_valid_kept, log_p_base=log_p_base)


def top_p_removed(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """The tokens transformers' ``TopPLogitsWarper`` removes from ``scores (vocab,)``.

    Its rule: sort ascending, softmax the sorted values, and remove the prefix whose cumulative
    probability is ``<= 1 - top_p`` (never the most likely token). The cumulative sums depend only
    on the sorted values, which any sort gives identically, so on the CPU the values come from
    numpy's sort (about 4x faster than ``torch.sort`` here) and the cut is a threshold. Only where
    tied values straddle the cut does the answer depend on the order among equals: then this runs
    the warper's own ``torch.sort`` code so the same tokens go.
    """
    if scores.device.type == "cpu" and scores.dtype == torch.float32:
        values = torch.from_numpy(np.sort(scores.detach().numpy()))
        sorted_remove = values.softmax(dim=-1).cumsum(dim=-1) <= 1 - top_p
        n_removed = min(int(sorted_remove.sum()), values.shape[-1] - 1)
        if n_removed == 0:
            return torch.zeros_like(scores, dtype=torch.bool)
        threshold = values[n_removed - 1]
        if values[n_removed] != threshold and bool(sorted_remove[:n_removed].all()):
            return scores <= threshold
    sorted_logits, sorted_indices = torch.sort(scores, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    sorted_remove = cumulative <= (1 - top_p)
    sorted_remove[..., -1:] = False
    return sorted_remove.scatter(0, sorted_indices, sorted_remove)


def entropy_of_log(p: torch.Tensor, log_p: torch.Tensor) -> float:
    """Shannon entropy in bits from ``p`` and its logarithm (one dot product; where ``p`` is 0
    its ``-inf`` logarithm counts as 0)."""
    return float(-torch.linalg.vecdot(p, log_p.clamp_min(torch.finfo(log_p.dtype).min)) / LN2)


def draw_uniform(seed: int, index: int) -> float:
    """The uniform draw for completion position ``index`` of a branch seeded with ``seed``.

    Keyed by position, not by a running stream, so a branch regenerated from position k
    draws exactly what a fresh run with the same prefix would, on any device.
    """
    return float(np.random.Generator(np.random.PCG64([seed, index])).random())


def select(processed: Processed, *, greedy: bool, seed: int | None, index: int) -> int:
    """Pick a token id from ``p_final``: argmax, or an inverse-CDF draw keyed by seed and index."""
    if greedy or seed is None:
        return int(processed.p_final.argmax())
    nonzero = torch.nonzero(processed.p_final > 0).squeeze(-1)
    probs = processed.p_final[nonzero].double().cpu().numpy()
    ids = nonzero.cpu().numpy()
    order = np.lexsort((ids, -probs))  # descending probability, ties by id
    cdf = np.cumsum(probs[order])
    u = draw_uniform(seed, index) * cdf[-1]
    pick = int(np.searchsorted(cdf, u, side="right"))
    return int(ids[order[min(pick, len(order) - 1)]])


def summarize(
    processed: Processed,
    token_of: Callable[[int], Token],
    top_n: int,
    *,
    extra_ids: Sequence[int] = (),
    top_n_only: bool = False,
) -> tuple[Distribution, dict[int, tuple[float, float, float]]]:
    """Reduce a processed step to its top-N candidates (by ``p_base``) and scalars.

    Returns the distribution and ``{id: (p_base, p_final, logit)}`` for ``extra_ids``
    (the chosen token, which may lie outside the top N).
    """
    vocab = processed.p_base.shape[-1]
    n = min(top_n, vocab)
    top_ids = torch.topk(processed.p_base, n).indices
    ids = torch.cat([top_ids, torch.as_tensor(list(extra_ids), dtype=torch.long,
                                              device=top_ids.device)])
    valid = processed.valid if processed.valid is not None else torch.ones_like(processed.kept)
    table = torch.stack([
        processed.p_base[ids], processed.p_final[ids], processed.logits[ids],
        processed.kept[ids].float(), valid[ids].float(),
    ]).T.tolist()
    id_list = ids.tolist()
    candidates = []
    for rank, (tid, row) in enumerate(zip(id_list[:n], table[:n], strict=True), start=1):
        pb, pf, lg, kp, vd = row
        candidates.append(Candidate(token=token_of(tid), p_base=pb, p_final=pf, logit=lg,
                                    kept=bool(kp), valid=bool(vd), rank=rank))
    extras = {tid: (row[0], row[1], row[2])
              for tid, row in zip(id_list[n:], table[n:], strict=True)}
    dist = Distribution(
        candidates=tuple(candidates),
        entropy=entropy_of_log(processed.p_base, processed.log_p_base),
        entropy_final=entropy_of_log(processed.p_final, torch.log_softmax(processed.scores, dim=-1)),
        n_kept=int(processed.kept.sum()),
        n_valid=int(valid.sum()),
        vocab_size=vocab,
        top_n_only=top_n_only,
        other_mass=max(0.0, 1.0 - float(processed.p_base.sum())) if top_n_only else 0.0,
    )
    return dist, extras
