"""Where a branch could have gone otherwise: critical tokens and automatic exploration.

- :func:`critical_tokens` ranks the positions of a branch by how easily they could have
  gone otherwise (a small margin between the top two ``p_final``, then a high entropy).
- :func:`explore` branches at the most critical positions and generates each new branch
  a few tokens, reusing the backend's cached prefix.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokentui.engine.errors import ConstraintError
from tokentui.engine.results import Candidate, StepResult, Token

if TYPE_CHECKING:
    from tokentui.engine.session import Session


# ----- critical tokens --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CriticalToken:
    """A position that could easily have gone otherwise."""

    index: int
    token: Token
    p_final: float
    entropy: float
    margin: float
    """``p_final`` of the most likely token minus that of the second (0 = a coin toss)."""
    alternatives: tuple[Candidate, ...]
    """The other candidates worth taking, most likely first."""

    @property
    def score(self) -> float:
        """Higher = more critical: 1 - margin (the entropy breaks ties)."""
        return 1.0 - self.margin

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "token": self.token.to_json(), "p_final": self.p_final,
                "entropy": self.entropy, "margin": self.margin, "score": self.score,
                "alternatives": [c.to_json() for c in self.alternatives]}


def _by_final(c: Candidate) -> tuple[float, float]:
    return (c.p_final, c.p_base)


def criticality(step: StepResult, alternatives: int = 5) -> CriticalToken:
    """How easily this step could have gone otherwise."""
    ordered = sorted((c for c in step.distribution.candidates if c.valid), key=_by_final, reverse=True)
    top1 = ordered[0].p_final if ordered else 0.0
    top2 = ordered[1].p_final if len(ordered) > 1 else 0.0
    alts = tuple(c for c in ordered if c.token.id != step.token.id)[:alternatives]
    return CriticalToken(index=step.index, token=step.token, p_final=step.p_final,
                         entropy=step.distribution.entropy, margin=max(0.0, top1 - top2), alternatives=alts)


def critical_tokens(steps: Sequence[StepResult], *, top: int | None = None, alternatives: int = 5,
                    start: int = 0) -> list[CriticalToken]:
    """The positions of ``steps[start:]`` most critical first (smallest margin, then highest entropy)."""
    ranked = sorted((criticality(s, alternatives) for s in steps[start:]),
                    key=lambda c: (c.margin, -c.entropy, c.index))
    return ranked[:top] if top is not None else ranked


def next_critical(steps: Sequence[StepResult], after: int, *, top: int = 10) -> int | None:
    """The next of the ``top`` critical positions after ``after`` (wrapping), for a jump key."""
    positions = sorted(c.index for c in critical_tokens(steps, top=top))
    if not positions:
        return None
    return next((p for p in positions if p > after), positions[0])


# ----- exploring ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ExploredBranch:
    """A branch made by :func:`explore`."""

    branch_id: int
    parent: int
    fork_at: int
    token: Token
    """The alternative taken at ``fork_at``."""
    text: str
    """The completion text from ``fork_at`` on."""
    logprob: float
    """Natural log of the joint ``p_base`` of the whole completion (the model's own belief;
    ``p_final`` can be 0 for an alternative outside the sampling filters)."""
    finish_reason: str | None

    @property
    def joint_p(self) -> float:
        return math.exp(self.logprob)

    def to_json(self) -> dict[str, Any]:
        return {"branch": self.branch_id, "parent": self.parent, "fork_at": self.fork_at,
                "token": self.token.to_json(), "text": self.text, "logprob": self.logprob,
                "joint_p": self.joint_p, "finish_reason": self.finish_reason}


@dataclass(frozen=True, slots=True)
class ExploreProgress:
    """Sent after each new branch: how many of ``total`` are done."""

    done: int
    total: int
    branch: ExploredBranch | None


@dataclass(frozen=True, slots=True)
class ExploreResult:
    """The source branch and what grew from it (a tree of depth one)."""

    source: int
    source_logprob: float
    branches: tuple[ExploredBranch, ...]
    cancelled: bool

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "source_logprob": self.source_logprob,
                "branches": [b.to_json() for b in self.branches], "cancelled": self.cancelled}


def joint_logprob(steps: Sequence[StepResult]) -> float:
    """Sum of log ``p_base`` (``-inf`` if a token had probability 0)."""
    return sum(math.log(s.p_base) if s.p_base > 0 else -math.inf for s in steps)


def explore(session: Session, positions: int = 3, alternatives: int = 2, tokens: int = 8, *,
            progress: Callable[[ExploreProgress], None] | None = None,
            stop_event: threading.Event | None = None) -> ExploreResult:
    """Branch the current branch at its ``positions`` most critical positions with the
    ``alternatives`` best other tokens each, and generate each new branch ``tokens`` more.

    The backend keeps one cache cropped to the shared prefix, so each new branch costs only
    its own tokens. The current branch is current again afterwards; a set ``stop_event``
    ends the run between forward passes, keeping the branches made so far.
    """
    source = session.current
    plan = [(c.index, alt) for c in critical_tokens(source.steps, top=positions)
            for alt in c.alternatives[:alternatives]]
    plan.sort(key=lambda p: p[0])
    made: list[ExploredBranch] = []
    cancelled = False
    try:
        for index, alt in plan:
            if stop_event is not None and stop_event.is_set():
                cancelled = True
                break
            session.switch(source.id)
            try:
                session.branch_from(index, alt.token.id, name=f"explore {index}:{alt.token.text.strip()}")
            except ConstraintError:
                continue
            for _ in session.generate(tokens, stop_event):
                pass
            branch = session.current
            entry = ExploredBranch(branch_id=branch.id, parent=source.id, fork_at=index, token=alt.token,
                                   text="".join(s.token.text for s in branch.steps[index:]),
                                   logprob=joint_logprob(branch.steps), finish_reason=branch.finish_reason)
            made.append(entry)
            if progress is not None:
                progress(ExploreProgress(len(made), len(plan), entry))
        else:
            cancelled = bool(stop_event is not None and stop_event.is_set())
    finally:
        if source.id in session.branches:
            session.switch(source.id)
    return ExploreResult(source=source.id, source_logprob=joint_logprob(source.steps),
                         branches=tuple(made), cancelled=cancelled)
