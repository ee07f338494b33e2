"""Where two branches part: :func:`compare_branches` aligns them at their fork and sets
their distributions side by side with the mass that moved and a KL divergence per position
(estimated from the recorded top-N, or exact from the full distributions)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokentui.engine.errors import Cancelled, SessionError
from tokentui.engine.results import Candidate, Distribution, StepResult, Token

if TYPE_CHECKING:
    from tokentui.engine.persist.session_file import SessionFile
    from tokentui.engine.session import Branch, Session

LN2 = math.log(2.0)
FLOOR = 1e-12


# ----- comparing two branches -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MassShift:
    """One token's probability in both distributions (``p_base``) and the change a -> b."""

    token: Token
    p_a: float
    p_b: float
    estimated: bool = False
    """At least one side is estimated (the token was outside that side's recorded top-N)."""

    @property
    def delta(self) -> float:
        return self.p_b - self.p_a

    def to_json(self) -> dict[str, Any]:
        return {"id": self.token.id, "text": self.token.text, "p_a": self.p_a, "p_b": self.p_b,
                "delta": self.delta, "estimated": self.estimated}


@dataclass(frozen=True, slots=True)
class ForkChoice:
    """A candidate at the fork, with which branch took it."""

    candidate: Candidate
    picked_by_a: bool
    picked_by_b: bool

    def to_json(self) -> dict[str, Any]:
        return {**self.candidate.to_json(), "picked_by_a": self.picked_by_a, "picked_by_b": self.picked_by_b}


@dataclass(frozen=True, slots=True)
class ComparedStep:
    """One completion position after the fork: each branch's step (None past its end)."""

    index: int
    a: StepResult | None
    b: StepResult | None
    kl: float | None
    """KL(a || b) in bits over ``p_base``; None when a side is missing."""
    shifts: tuple[MassShift, ...]
    """The union of both top-N, by largest |delta| first."""

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index,
                "a": self.a.to_json() if self.a else None, "b": self.b.to_json() if self.b else None,
                "kl": self.kl, "shifts": [s.to_json() for s in self.shifts]}


@dataclass(frozen=True, slots=True)
class BranchComparison:
    """Two branches aligned at their fork."""

    a: int
    b: int
    fork_at: int
    """The first completion position where their tokens differ."""
    shared: tuple[Token, ...]
    """The common prefix of completion tokens."""
    fork: tuple[ForkChoice, ...]
    """The shared top-N at the fork with each branch's pick marked (empty past both ends)."""
    steps: tuple[ComparedStep, ...]
    """From the fork on, position by position."""
    kl_method: str
    """``top-n``: approximate, from the recorded top-N (see :func:`kl_top_n`); ``exact``: the
    full vocabulary recomputed through the backend."""

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "fork_at": self.fork_at,
                "shared": [t.to_json() for t in self.shared],
                "fork": [f.to_json() for f in self.fork],
                "steps": [s.to_json() for s in self.steps], "kl_method": self.kl_method}


def _completed(dist: Distribution, other: Distribution) -> tuple[dict[int, float], set[int]]:
    """``dist``'s p_base over the union of both top-N plus a ``-1`` bucket for the rest.

    Tokens ``dist`` does not list get an equal share of its leftover mass, capped by its
    smallest listed probability (they ranked below it); what remains goes to the bucket.
    """
    listed = {c.token.id: c.p_base for c in dist.candidates}
    missing = [c.token.id for c in other.candidates if c.token.id not in listed]
    rest = max(0.0, 1.0 - sum(listed.values()))
    share = 0.0
    if missing:
        smallest = min(listed.values()) if listed else rest
        share = min(smallest, rest / (len(missing) + 1))
    out = dict(listed)
    for tid in missing:
        out[tid] = share
    out[-1] = max(0.0, rest - share * len(missing))
    return out, set(missing)


def kl_top_n(a: Distribution, b: Distribution) -> float:
    """Approximate KL(a || b) in bits from two recorded top-N distributions.

    The support is the union of both top-N plus one bucket for every other token; a token
    one side did not record is estimated from that side's leftover mass (see ``_completed``).
    Exact when both top-N hold all the mass; otherwise the bucket merges the tails, which
    can only lower the divergence (data-processing inequality).
    """
    pa, _ = _completed(a, b)
    pb, _ = _completed(b, a)
    total = 0.0
    for tid, p in pa.items():
        if p > 0:
            total += p * (math.log(p) - math.log(max(pb.get(tid, 0.0), FLOOR)))
    return max(0.0, total / LN2)


def mass_shifts(a: Distribution, b: Distribution, limit: int = 10) -> tuple[MassShift, ...]:
    """How ``p_base`` moved between two distributions on the union of their top-N."""
    pa, est_a = _completed(a, b)
    pb, est_b = _completed(b, a)
    tokens = {c.token.id: c.token for c in (*a.candidates, *b.candidates)}
    shifts = [MassShift(tokens[t], pa[t], pb[t], t in est_a or t in est_b) for t in tokens]
    shifts.sort(key=lambda s: -abs(s.delta))
    return tuple(shifts[:limit])


KL_BLOCK = 64
"""Positions whose full distributions the exact KL holds at once (memory: KL_BLOCK x vocab floats)."""


def _exact_log_probs(session: Session, branch: Branch, start: int, stop: int,
                     cancel: threading.Event | None) -> Iterator[Any]:
    """Full-vocabulary log p_base for positions ``start..stop-1`` of ``branch``, one at a time
    (the backend's cache makes each a one-token forward). The caller holds ``session.lock``."""
    import torch

    ctx = session.prompt_ids
    for i in range(start, stop):
        if cancel is not None and cancel.is_set():
            raise Cancelled("exact KL stopped")
        logits = session.backend.next_logits(ctx + branch.ids[:i]).logits
        yield torch.log_softmax(logits.float(), dim=-1).cpu()


def exact_kl_bits(session: Session, a: Any, b: Any, start: int, stop: int,
                  cancel: threading.Event | None = None) -> list[float]:
    """``KL(p_A || p_B)`` in bits of the full next-token distributions at ``start..stop-1``.

    Positions go in blocks of ``KL_BLOCK``: branch A's distributions for one block are held
    (a vocabulary-sized vector each), B's are streamed against them, so memory stays bounded
    however long the branches are. Going back to A after a block of B re-feeds A's tokens
    since the fork in one batched forward (the backend keeps one cached sequence; batched and
    one-token forwards agree to about 1e-5 in float32). Needs a
    backend that returns the whole vocabulary; ``cancel`` stops it between positions
    (``Cancelled``)."""
    if not session.backend.capabilities.full_vocab:
        raise SessionError("exact KL needs full distributions; this backend returns only the top-N")
    out: list[float] = []
    with session.lock:
        try:
            for lo in range(start, stop, KL_BLOCK):
                hi = min(stop, lo + KL_BLOCK)
                la = list(_exact_log_probs(session, a, lo, hi, cancel))
                out += [float((x.exp() * (x - y)).sum()) / LN2
                        for x, y in zip(la, _exact_log_probs(session, b, lo, hi, cancel), strict=True)]
        finally:
            session._peeked = None
    return out


def compare_branches(session: Session, a: int, b: int, *, exact: bool = False,
                     top: int = 10, cancel: threading.Event | None = None) -> BranchComparison:
    """Align branches ``a`` and ``b`` at their fork and compare them position by position.

    With ``exact`` the full next-token distributions are recomputed through the backend (two
    forward passes per position, the shared prefix cached) and KL is exact; otherwise KL
    comes from the recorded top-N (``kl_top_n``).
    """
    if a not in session.branches or b not in session.branches:
        raise SessionError(f"no branch {a if a not in session.branches else b}")
    ba, bb = session.branches[a], session.branches[b]
    exact_kl = None
    if exact:
        def exact_kl(fork: int, both: int) -> list[float]:
            return exact_kl_bits(session, ba, bb, fork, both, cancel)
    return align(a, b, ba, bb, exact_kl, top=top)


def compare_recorded(sf: SessionFile, a: int, b: int, *, top: int = 10) -> BranchComparison:
    """Compare two branches of a session file without a model (KL from the recorded top-N)."""
    records = {r.id: r for r in sf.branches}
    if a not in records or b not in records:
        known = ", ".join(str(i) for i in records)
        raise SessionError(f"no branch {a if a not in records else b} in the file (it has {known})")
    return align(a, b, records[a], records[b], None, top=top)


def align(a: int, b: int, ba: Any, bb: Any,
          exact_kl: Callable[[int, int], list[float]] | None, *, top: int = 10) -> BranchComparison:
    """The comparison of two step lists (``.steps``): fork, shared top-N, then each position.

    ``exact_kl(fork, both)`` gives exact KL for positions ``fork..both-1``; without it KL is
    estimated from the recorded top-N."""
    sa_all, sb_all = list(ba.steps), list(bb.steps)
    fork = 0
    while fork < min(len(sa_all), len(sb_all)) and sa_all[fork].token.id == sb_all[fork].token.id:
        fork += 1
    longest = max(len(sa_all), len(sb_all))
    fork_choices: tuple[ForkChoice, ...] = ()
    at = sa_all[fork] if fork < len(sa_all) else sb_all[fork] if fork < len(sb_all) else None
    if at is not None:
        pick_a = sa_all[fork].token.id if fork < len(sa_all) else None
        pick_b = sb_all[fork].token.id if fork < len(sb_all) else None
        fork_choices = tuple(ForkChoice(c, c.token.id == pick_a, c.token.id == pick_b)
                             for c in at.distribution.candidates[:top])
    both = min(len(sa_all), len(sb_all))
    exact: list[float] = exact_kl(fork, both) if exact_kl is not None and both > fork else []
    rows = []
    for i in range(fork, longest):
        sa = sa_all[i] if i < len(sa_all) else None
        sb = sb_all[i] if i < len(sb_all) else None
        kl = None
        shifts: tuple[MassShift, ...] = ()
        if sa is not None and sb is not None:
            kl = exact[i - fork] if exact else kl_top_n(sa.distribution, sb.distribution)
            shifts = mass_shifts(sa.distribution, sb.distribution, top)
        rows.append(ComparedStep(i, sa, sb, kl, shifts))
    return BranchComparison(a=a, b=b, fork_at=fork, shared=tuple(s.token for s in sa_all[:fork]),
                            fork=fork_choices, steps=tuple(rows),
                            kl_method="exact" if exact_kl is not None else "top-n")
