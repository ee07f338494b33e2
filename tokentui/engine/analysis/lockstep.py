"""Two models in lockstep: the same prefix through two backends, where they disagree and by how much.

A :class:`Lockstep` holds two sessions, one per backend (A and B), over the same prompt ids.
Every step asks both for the next-token distribution of the same prefix (one forward each:
the session keeps the output for the step that follows), measures how far apart they are
(:class:`StepDivergence`), lets the driver (A or B) pick the token through its own sampling
pipeline and forces that token into the other session. Branching, truncating and switching
go to both sessions, so their branch trees stay identical; each backend reuses its own cache
(the local backend crops its KV cache to the common prefix by itself).

Per step only ids, the top-10 of each side and a few scalars are kept, never a distribution
tensor, so memory stays flat over long runs.

Divergences are in bits. When both backends return the whole vocabulary they are exact; when
one is a server (top-N log-probabilities only) they are computed over the union of both top-N
(a local side brings its own top-N) plus one bucket for every other token, and marked
``estimated``: a token the server did not list gets an equal share of its leftover mass, capped
by its smallest listed probability (the rule of :mod:`tokentui.engine.analysis.compare`); a local
side gives its exact probability for every id of the union and the rest to its bucket.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from tokentui.engine.analysis.compare import FLOOR, LN2
from tokentui.engine.backends.base import Backend, BackendOutput
from tokentui.engine.errors import SessionError, TokentuiError
from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec, TokenTable, encode_text
from tokentui.engine.results import StepResult, Token
from tokentui.engine.session import Session, read_ahead_blocks

TOP = 10
"""Candidates shown per side, and the size of the overlap."""
DRIVERS = ("a", "b")


class TokenizerMismatchError(TokentuiError):
    """The two models do not share one vocabulary, so they cannot step by token id."""


# ----- results ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SideCandidate:
    """One of a model's top candidates, with where the other model puts it."""

    token: Token
    p: float
    """This model's probability (``p_base``)."""
    rank: int
    """This model's rank, from 1."""
    p_other: float | None
    """The other model's probability; None when a top-N server did not list the token."""
    rank_other: int | None
    """The other model's rank; None when a top-N server did not list the token."""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.token.id, "text": self.token.text, "p": self.p, "rank": self.rank,
                "p_other": self.p_other, "rank_other": self.rank_other}


@dataclass(frozen=True, slots=True)
class StepDivergence:
    """How two models' next-token distributions differ at one completion position."""

    index: int
    """Completion position (0 = first token after the prompt)."""
    token: Token
    """The token taken there."""
    driver: str
    """``a`` or ``b``: which model drove (picked it, unless it was forced)."""
    how: str
    """``greedy``, ``sampled``, ``forced`` or ``alternative`` (as the driver's step says)."""
    p_a: float | None
    """A's probability of the token taken (None: a server that did not list it)."""
    p_b: float | None
    rank_a: int | None
    """The token's rank under A, from 1 (None: a server that did not list it)."""
    rank_b: int | None
    kl_ab: float
    """KL(A || B) in bits."""
    kl_ba: float
    """KL(B || A) in bits."""
    js: float
    """Jensen-Shannon divergence in bits (0 to 1)."""
    overlap: int
    """How many of A's top-10 are in B's top-10."""
    top_a: tuple[SideCandidate, ...]
    top_b: tuple[SideCandidate, ...]
    estimated: bool = False
    """True when a side is a top-N server: the divergences are over the union of the top-N."""
    finish_reason: str | None = None

    @property
    def rank_other(self) -> int | None:
        """The taken token's rank under the model that did not drive (A's pick under B)."""
        return self.rank_b if self.driver == "a" else self.rank_a

    def to_json(self, *, with_candidates: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": self.index, "token": self.token.to_json(), "driver": self.driver, "how": self.how,
            "p_a": self.p_a, "p_b": self.p_b, "rank_a": self.rank_a, "rank_b": self.rank_b,
            "kl_ab": self.kl_ab, "kl_ba": self.kl_ba, "js": self.js, "overlap": self.overlap,
            "estimated": self.estimated,
        }
        if self.finish_reason:
            out["finish_reason"] = self.finish_reason
        if with_candidates:
            out["top_a"] = [c.to_json() for c in self.top_a]
            out["top_b"] = [c.to_json() for c in self.top_b]
        return out


@dataclass(frozen=True, slots=True)
class LockstepSummary:
    """A whole run at a glance."""

    steps: int
    mean_kl_ab: float
    mean_kl_ba: float
    mean_js: float
    max_js: float
    max_js_at: int | None
    """Completion position of the largest Jensen-Shannon divergence (None without steps)."""
    mean_overlap: float
    agreement: float
    """Share of steps where the taken token is the other model's top choice too."""
    estimated: bool

    def to_json(self) -> dict[str, Any]:
        return {"steps": self.steps, "mean_kl_ab": self.mean_kl_ab, "mean_kl_ba": self.mean_kl_ba,
                "mean_js": self.mean_js, "max_js": self.max_js, "max_js_at": self.max_js_at,
                "mean_overlap": self.mean_overlap, "agreement": self.agreement,
                "estimated": self.estimated}


def summarize(divs: Sequence[StepDivergence]) -> LockstepSummary:
    if not divs:
        return LockstepSummary(0, 0.0, 0.0, 0.0, 0.0, None, 0.0, 0.0, False)
    n = len(divs)
    worst = max(divs, key=lambda d: d.js)
    return LockstepSummary(
        steps=n, mean_kl_ab=sum(d.kl_ab for d in divs) / n, mean_kl_ba=sum(d.kl_ba for d in divs) / n,
        mean_js=sum(d.js for d in divs) / n, max_js=worst.js, max_js_at=worst.index,
        mean_overlap=sum(d.overlap for d in divs) / n,
        agreement=sum(1 for d in divs if d.rank_other == 1) / n,
        estimated=any(d.estimated for d in divs))


# ----- tokenizers ---------------------------------------------------------------------------------
def check_tokenizers(a: Any, b: Any) -> None:
    """Raise TokenizerMismatchError naming the first id where two vocabularies differ."""
    va, vb = a.get_vocab(), b.get_vocab()
    if va == vb:
        return
    ia = {int(i): t for t, i in va.items()}
    ib = {int(i): t for t, i in vb.items()}
    for i in range(max(max(ia, default=-1), max(ib, default=-1)) + 1):
        ta, tb = ia.get(i), ib.get(i)
        if ta != tb:
            raise TokenizerMismatchError(
                f"the two models have different tokenizers ({len(va)} and {len(vb)} tokens): "
                f"they first differ at id {i}, {_show(ta)} in A and {_show(tb)} in B; "
                "lockstep needs one vocabulary")
    raise TokenizerMismatchError("the two models' tokenizers differ")  # same ids, never here


def _show(piece: str | None) -> str:
    return "nothing" if piece is None else repr(piece)


# ----- the numbers ----------------------------------------------------------------------------------
def log_probs(out: BackendOutput, vocab: int) -> torch.Tensor:
    """Float64 log p_base over the first ``vocab`` ids (a top-N server: ``-inf`` where unlisted)."""
    logits = out.logits.detach().to("cpu", torch.float64)[:vocab]
    if out.logits_are_logprobs:
        return logits
    return torch.log_softmax(logits, dim=-1)


def _kl(p: torch.Tensor, log_p: torch.Tensor, log_q: torch.Tensor) -> float:
    """KL(p || q) in bits; terms where p is 0 count 0; where q is exactly 0 (a token the other
    side did not list) it counts as FLOOR, so a missing entry is a large finite penalty."""
    log_q = torch.where(torch.isfinite(log_q), log_q, torch.full_like(log_q, math.log(FLOOR)))
    terms = p * (log_p - log_q)
    return max(0.0, float(torch.where(p > 0, terms, torch.zeros_like(p)).sum()) / LN2)


def _js(pa: torch.Tensor, pb: torch.Tensor) -> float:
    """Jensen-Shannon in bits. The logarithms are taken of the very values averaged, so two
    identical distributions give exactly 0."""
    m = 0.5 * (pa + pb)
    la, lb, lm = torch.log(pa), torch.log(pb), torch.log(m)
    ta = torch.where(pa > 0, pa * (la - lm), torch.zeros_like(pa))
    tb = torch.where(pb > 0, pb * (lb - lm), torch.zeros_like(pb))
    return min(1.0, max(0.0, float(0.5 * (ta.sum() + tb.sum())) / LN2))


def _completed(log_p: torch.Tensor, union: torch.Tensor, full: bool) -> torch.Tensor:
    """p over ``union`` ids plus a last bucket for every other token.

    A full-vocabulary side gives its exact values. A top-N side (``-inf`` where unlisted) gives
    each unlisted id of the union an equal share of its leftover mass, capped by its smallest
    listed probability; what remains goes to the bucket."""
    p = log_p[union].exp()
    if full:
        return torch.cat([p, (1.0 - p.sum()).clamp_min(0.0).reshape(1)])
    listed = torch.isfinite(log_p)
    rest = max(0.0, 1.0 - float(log_p[listed].exp().sum()))
    missing = ~torch.isfinite(log_p[union])
    n_missing = int(missing.sum())
    share = 0.0
    if n_missing:
        smallest = float(log_p[listed].exp().min()) if bool(listed.any()) else rest
        share = min(smallest, rest / (n_missing + 1))
    p = torch.where(missing, torch.full_like(p, share), p)
    return torch.cat([p, torch.tensor([max(0.0, rest - share * n_missing)], dtype=p.dtype)])


@dataclass(frozen=True, slots=True)
class Divergence:
    """The numbers of one position, before a token is taken."""

    kl_ab: float
    kl_ba: float
    js: float
    overlap: int
    estimated: bool
    top_a: tuple[tuple[int, float, int, float | None, int | None], ...]
    """``(id, p, rank, p_other, rank_other)`` of A's top ``TOP``."""
    top_b: tuple[tuple[int, float, int, float | None, int | None], ...]
    log_p: tuple[torch.Tensor, torch.Tensor] = field(repr=False, compare=False)
    """(log p_a, log p_b): kept only until the token is known (see :func:`token_stats`)."""


def divergence(la: torch.Tensor, lb: torch.Tensor, *, full_a: bool = True, full_b: bool = True,
               top: int = TOP) -> Divergence:
    """KL both ways, Jensen-Shannon, top-``top`` overlap and both top lists with cross ranks,
    from two log-probability vectors over one vocabulary (``-inf`` where a top-N side is silent)."""
    pa, pb = la.exp(), lb.exp()
    estimated = not (full_a and full_b)
    if not estimated:
        kl_ab, kl_ba, js = _full_numbers(la, lb, pa, pb)
    else:
        n = max(int(torch.isfinite(lp).sum()) for lp, full in ((la, full_a), (lb, full_b)) if not full)
        union = torch.unique(torch.cat([_listed(la, full_a, n), _listed(lb, full_b, n)]))
        ca, cb = _completed(la, union, full_a), _completed(lb, union, full_b)
        lca, lcb = torch.log(ca), torch.log(cb)
        kl_ab, kl_ba, js = _kl(ca, lca, lcb), _kl(cb, lcb, lca), _js(ca, cb)
    top_a, top_b = _top(pa, pb, full_b, top), _top(pb, pa, full_a, top)
    overlap = len({t[0] for t in top_a} & {t[0] for t in top_b})
    return Divergence(kl_ab, kl_ba, js, overlap, estimated, top_a, top_b, (la, lb))


def _full_numbers(la: torch.Tensor, lb: torch.Tensor, pa: torch.Tensor, pb: torch.Tensor
                  ) -> tuple[float, float, float]:
    """KL(A||B), KL(B||A) and JS over the whole vocabulary: three dot products on the fast path
    (every log-probability finite), the careful per-term rules of ``_kl``/``_js`` otherwise."""
    if torch.equal(la, lb):
        return 0.0, 0.0, 0.0
    diff = la - lb
    kl_ab = float(torch.linalg.vecdot(pa, diff)) / LN2
    kl_ba = -float(torch.linalg.vecdot(pb, diff)) / LN2
    lm = torch.logaddexp(la, lb) - math.log(2.0)
    js = 0.5 * float(torch.linalg.vecdot(pa, la - lm) + torch.linalg.vecdot(pb, lb - lm)) / LN2
    if not all(math.isfinite(x) for x in (kl_ab, kl_ba, js)):
        return _kl(pa, la, lb), _kl(pb, lb, la), _js(pa, pb)
    return max(0.0, kl_ab), max(0.0, kl_ba), min(1.0, max(0.0, js))


def _listed(log_p: torch.Tensor, full: bool, n: int) -> torch.Tensor:
    """The ids a side returned: a server's listed ones, or a full side's top ``n`` (so both
    sides bring the same number of ids to the union)."""
    if full:
        return torch.topk(log_p, min(n, log_p.shape[0])).indices
    return torch.nonzero(torch.isfinite(log_p)).squeeze(-1)


def _rank(p: torch.Tensor, ids: torch.Tensor) -> list[int]:
    """Ranks (from 1) of ``ids`` under ``p``: how many tokens are strictly more likely, plus 1."""
    return ((p.unsqueeze(0) > p[ids].unsqueeze(1)).sum(dim=1) + 1).tolist()


def _top(p: torch.Tensor, other: torch.Tensor, other_full: bool, top: int
         ) -> tuple[tuple[int, float, int, float | None, int | None], ...]:
    ids = torch.topk(p, min(top, p.shape[0])).indices
    if not bool(p[ids[-1]] > 0):  # a server that listed fewer than ``top``
        ids = ids[p[ids] > 0]
    ranks_other = _rank(other, ids)
    rows = []
    for r, (tid, pv, po, ro) in enumerate(zip(ids.tolist(), p[ids].tolist(), other[ids].tolist(),
                                               ranks_other, strict=True), start=1):
        listed = other_full or po > 0
        rows.append((tid, pv, r, po if listed else None, ro if listed else None))
    return tuple(rows)


def token_stats(div: Divergence, token_id: int, *, full_a: bool, full_b: bool
                ) -> tuple[float | None, float | None, int | None, int | None]:
    """``(p_a, p_b, rank_a, rank_b)`` of one token (None where a top-N side did not list it)."""
    for tid, p, rank, p_other, rank_other in div.top_a:  # usually the token is in a top-10
        if tid == token_id:
            return p, p_other, rank, rank_other
    for tid, p, rank, p_other, rank_other in div.top_b:
        if tid == token_id:
            return p_other, p, rank_other, rank
    la, lb = div.log_p
    ids = torch.tensor([token_id])
    out: list[Any] = []
    for lp, full in ((la, full_a), (lb, full_b)):
        probs = lp.exp()
        listed = full or bool(torch.isfinite(lp[token_id]))
        out.append((float(probs[token_id]), _rank(probs, ids)[0]) if listed else (None, None))
    return out[0][0], out[1][0], out[0][1], out[1][1]


# ----- the two sessions ------------------------------------------------------------------------
class Lockstep:
    """Two sessions over one prompt, stepped together: A and B see the same ids at every step.

    ``driver`` (``a`` or ``b``) picks each token with its own session's sampling parameters;
    the other session is forced to it. All methods hold ``lock``; call them from one thread
    (the CLI's, or a screen's worker)."""

    def __init__(self, a: Backend, b: Backend, prompt: PromptSpec | None = None, *,
                 prompt_ids: Sequence[int] | None = None, params: SamplingParams | None = None,
                 params_b: SamplingParams | None = None, top_n: int = TOP, driver: str = "a") -> None:
        check_tokenizers(a.tokenizer, b.tokenizer)
        if driver not in DRIVERS:
            raise SessionError(f"unknown driver {driver!r}: use a or b")
        self.a = Session(a, prompt, prompt_ids=prompt_ids, params=params, top_n=top_n)
        self.b = Session(b, self.a.prompt, prompt_ids=self.a.prompt_ids,
                         params=params_b or self.a.params, top_n=top_n)
        self.b.default_seed = self.a.default_seed
        self.driver = driver
        self.tokens = TokenTable(a.tokenizer)
        self.vocab = min(int(a.vocab_size), int(b.vocab_size))
        """The ids compared: the shorter of the two output layers (the rest is padding)."""
        self.full_a = a.capabilities.full_vocab
        self.full_b = b.capabilities.full_vocab
        self.lock = threading.RLock()
        self._divs: dict[int, list[StepDivergence]] = {self.a.current_id: []}

    # ----- reading --------------------------------------------------------------------
    @property
    def estimated(self) -> bool:
        return not (self.full_a and self.full_b)

    @property
    def prompt_ids(self) -> list[int]:
        return self.a.prompt_ids

    @property
    def divergences(self) -> list[StepDivergence]:
        """The current branch's steps, position by position."""
        return list(self._divs[self.a.current_id])

    @property
    def ids(self) -> list[int]:
        return self.a.current.ids

    def summary(self) -> LockstepSummary:
        return summarize(self._divs[self.a.current_id])

    def peek(self) -> Divergence:
        """The numbers for the next position (both forwards are kept for the step that follows)."""
        with self.lock:
            out_a, out_b = self.a.next_output(), self.b.next_output()
            return divergence(log_probs(out_a, self.vocab), log_probs(out_b, self.vocab),
                              full_a=self.full_a, full_b=self.full_b)

    # ----- stepping ----------------------------------------------------------------------
    def swap_driver(self) -> str:
        self.driver = "b" if self.driver == "a" else "a"
        return self.driver

    def step(self, *, force_id: int | None = None) -> StepDivergence:
        """One token: both models read the prefix, the driver picks (or ``force_id`` is taken)."""
        with self.lock:
            div = self.peek()
            drive, follow = (self.a, self.b) if self.driver == "a" else (self.b, self.a)
            if force_id is not None:
                if not 0 <= force_id < self.vocab:
                    raise SessionError(f"token id {force_id} is outside the vocabulary (0..{self.vocab - 1})")
                taken = drive.step(force_id=int(force_id), how="forced")
            else:
                taken = drive.step()
            try:
                follow.step(force_id=taken.token.id, how=taken.how)
            except BaseException:
                drive.delete_last()
                raise
            return self._record(div, taken)

    def _record(self, div: Divergence, taken: StepResult) -> StepDivergence:
        p_a, p_b, rank_a, rank_b = token_stats(div, taken.token.id, full_a=self.full_a,
                                               full_b=self.full_b)
        result = StepDivergence(
            index=taken.index, token=taken.token, driver=self.driver,
            how=taken.how, p_a=p_a, p_b=p_b, rank_a=rank_a, rank_b=rank_b, kl_ab=div.kl_ab,
            kl_ba=div.kl_ba, js=div.js, overlap=div.overlap,
            top_a=self._side(div.top_a), top_b=self._side(div.top_b), estimated=div.estimated,
            finish_reason=taken.finish_reason)
        self._divs[self.a.current_id].append(result)
        return result

    def _side(self, rows: Sequence[tuple[int, float, int, float | None, int | None]]
              ) -> tuple[SideCandidate, ...]:
        return tuple(SideCandidate(self.tokens(t), p, r, po, ro) for t, p, r, po, ro in rows)

    def generate(self, max_new_tokens: int | None = None,
                 stop_event: threading.Event | None = None) -> Iterator[StepDivergence]:
        """Step until the driver's end (EOS, stop sequence) or ``max_new_tokens`` (default: the
        driver's ``params.max_new_tokens``); ``stop_event`` is checked between steps."""
        drive = self.a if self.driver == "a" else self.b
        budget = drive.params.max_new_tokens if max_new_tokens is None else max_new_tokens
        for _ in range(budget):
            if stop_event is not None and stop_event.is_set():
                return
            div = self.step()
            yield div
            if div.finish_reason is not None:
                return

    def force_ids(self, ids: Sequence[int], stop_event: threading.Event | None = None
                  ) -> Iterator[StepDivergence]:
        """Read given tokens (a text, or the app's branch) position by position in both models.

        The tokens are known in advance, so each model reads a block of them in one forward
        (``Backend.read_ahead``) and the steps take their logits from it: a text costs a few
        batched passes instead of one pass per token (a server still answers each prefix)."""
        for block in read_ahead_blocks(ids, self.vocab):
            self.a.read_ahead(block)
            self.b.read_ahead(block)
            for token_id in block:
                if stop_event is not None and stop_event.is_set():
                    return
                yield self.step(force_id=token_id)

    def force_text(self, text: str, stop_event: threading.Event | None = None
                   ) -> Iterator[StepDivergence]:
        ids = encode_text(self.a.tokenizer, text)
        if not ids:
            raise SessionError("nothing to read: the text has no tokens")
        return self.force_ids(ids, stop_event)

    # ----- branching (both sessions, so their trees stay the same) ---------------------------
    def branch_from(self, index: int, token_id: int) -> StepDivergence:
        """A new branch in both: the current one up to ``index``, then ``token_id``; made current."""
        with self.lock:
            if not 0 <= index <= len(self.a.current):
                raise SessionError(f"cannot branch at {index}: the branch has {len(self.a.current)} tokens")
            kept = self._divs[self.a.current_id][:index]
            for s in (self.a, self.b):
                s.fork()
                s.truncate(index)
            self._divs[self.a.current_id] = kept
            try:
                return self.step(force_id=token_id)
            except BaseException:
                self._divs.pop(self.a.current_id, None)
                self.a.delete_branch(self.a.current_id)
                self.b.delete_branch(self.b.current_id)
                raise

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` tokens of the current branch in both."""
        with self.lock:
            self.a.truncate(length)
            self.b.truncate(length)
            del self._divs[self.a.current_id][length:]

    def delete_last(self) -> None:
        with self.lock:
            if not self.a.current.steps:
                raise SessionError("nothing to delete: the branch has no completion tokens")
            self.truncate(len(self.a.current) - 1)

    def switch(self, branch_id: int) -> None:
        with self.lock:
            self.a.switch(branch_id)
            self.b.switch(branch_id)

    @property
    def branch_ids(self) -> list[int]:
        return list(self.a.branches)


def over_session(session: Session, b: Backend, *, driver: str = "a") -> Lockstep:
    """A lockstep of ``session``'s backend (A) and ``b`` on the session's prompt ids and
    parameters; the caller then reads the current branch's ids with :meth:`Lockstep.force_ids`."""
    return Lockstep(session.backend, b, session.prompt, prompt_ids=session.prompt_ids,
                    params=session.params, top_n=session.top_n, driver=driver)
