"""Replaying a session file with a model: every branch rebuilt, every recorded number checked.

Forced and alternative tokens are forced again; greedy and sampled tokens are chosen again
by the pipeline with each step's recorded parameters and seed (a sampled draw is keyed by seed and
position, so the same settings pick the same token). A check compares the chosen token, its
``p_base`` and ``p_final`` and every recorded top-N candidate's probabilities, and reports
the first difference per branch: a prompt's behaviour becomes a regression test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tokentui.engine.errors import SessionError
from tokentui.engine.persist.session_file import SessionFile
from tokentui.engine.prompts import encode_prompt
from tokentui.engine.results import StepResult

if TYPE_CHECKING:
    from tokentui.engine.backends.base import Backend
    from tokentui.engine.session import Session


@dataclass(frozen=True, slots=True)
class Difference:
    """The first place a replay disagrees with the file."""

    branch_id: int | None
    """None for the prompt itself."""
    branch_name: str
    index: int
    """Completion position (-1 for the prompt)."""
    what: str
    """``token``, ``p_base``, ``p_final``, ``candidate`` or ``prompt``."""
    recorded: str
    replayed: str

    @property
    def message(self) -> str:
        where = ("the prompt tokens" if self.branch_id is None
                 else f"branch {self.branch_id} ({self.branch_name}) position {self.index}")
        return f"{where}: {self.what} {self.recorded} recorded, {self.replayed} replayed"

    def to_json(self) -> dict[str, Any]:
        return {"branch": self.branch_id, "name": self.branch_name, "position": self.index,
                "what": self.what, "recorded": self.recorded, "replayed": self.replayed,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class BranchReplay:
    """How one branch fared: the steps replayed (its own, past the inherited prefix)."""

    branch_id: int
    name: str
    checked: int
    difference: Difference | None
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"branch": self.branch_id, "name": self.name, "checked": self.checked,
                "ok": self.difference is None,
                "difference": self.difference.to_json() if self.difference else None,
                "text": self.text}


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """The outcome of a replay; ``session`` is the rebuilt live session."""

    branches: tuple[BranchReplay, ...]
    prompt_difference: Difference | None
    tolerance: float
    session: Session | None = None

    @property
    def ok(self) -> bool:
        return self.prompt_difference is None and all(b.difference is None for b in self.branches)

    @property
    def differences(self) -> list[Difference]:
        out = [self.prompt_difference] if self.prompt_difference else []
        return out + [b.difference for b in self.branches if b.difference]

    @property
    def checked(self) -> int:
        return sum(b.checked for b in self.branches)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "tolerance": self.tolerance, "checked": self.checked,
                "prompt_difference": self.prompt_difference.to_json() if self.prompt_difference else None,
                "branches": [b.to_json() for b in self.branches]}


def _tok(step: StepResult) -> str:
    return f"{_q(step.token.text)} (id {step.token.id})"


def _q(text: str) -> str:
    """A token's text quoted for a message: exactly as it is (spaces stay spaces), with
    unsafe characters as escapes."""
    from tokentui.visible import one_line

    return f"'{one_line(text)}'"


def _differs(a: float, b: float, tolerance: float) -> bool:
    """True when two numbers disagree by more than ``tolerance``; NaN never matches anything."""
    return not (abs(a - b) <= tolerance)


def compare_step(recorded: StepResult, replayed: StepResult, tolerance: float
                 ) -> tuple[str, str, str] | None:
    """``(what, recorded, replayed)`` for the first mismatch of two steps, or None."""
    if recorded.token.id != replayed.token.id:
        return "token", _tok(recorded), _tok(replayed)
    for name in ("p_base", "p_final"):
        a, b = getattr(recorded, name), getattr(replayed, name)
        if _differs(a, b, tolerance):
            return f"{name} of {_q(recorded.token.text)}", f"{a:.8g}", f"{b:.8g}"
    new = {c.token.id: c for c in replayed.distribution.candidates}
    for c in recorded.distribution.candidates:
        other = new.get(c.token.id)
        if other is None:
            if not c.p_base <= tolerance:
                return (f"candidate {_q(c.token.text)} (id {c.token.id})", f"p_base {c.p_base:.8g}",
                        "not in the top-N")
            continue
        for name in ("p_base", "p_final"):
            a, b = getattr(c, name), getattr(other, name)
            if _differs(a, b, tolerance):
                return f"{name} of candidate {_q(c.token.text)} (id {c.token.id})", f"{a:.8g}", f"{b:.8g}"
    return None


def replay(
    sf: SessionFile,
    backend: Backend,
    *,
    check: bool = True,
    tolerance: float = 1e-4,
    progress: Callable[[int, int], None] | None = None,
    stop_event: threading.Event | None = None,
) -> ReplayReport:
    """Rebuild every branch of ``sf`` over ``backend``; with ``check``, compare as it goes.

    Past a branch's first difference its recorded tokens are forced, so its children are
    still rebuilt on the recorded prefix and checked on their own steps.
    """
    from tokentui.engine.launch import session_for_file
    from tokentui.engine.session import Branch

    prompt_diff = None
    if check:
        try:
            fresh = encode_prompt(backend.tokenizer, sf.prompt)
        except Exception as exc:  # a prompt this tokenizer cannot encode is a difference too
            fresh = [f"error: {exc}"]  # type: ignore[list-item]
        if list(fresh) != list(sf.prompt_ids):
            prompt_diff = Difference(None, "", -1, "prompt", f"{len(sf.prompt_ids)} ids",
                                     f"{len(fresh)} ids (first change at "
                                     f"{_first_change(fresh, list(sf.prompt_ids))})")
    session = session_for_file(sf, backend)
    total = sum(len(b.steps) - b.inherit for b in sf.branches)
    done = 0
    results = []
    with session.lock:
        session.branches.clear()
        for rec in sf.branches:
            parent = session.branches.get(rec.parent) if rec.parent is not None else None
            inherited = list(parent.steps[:rec.inherit]) if parent else []
            if len(inherited) != rec.inherit:
                raise SessionError(f"branch {rec.id} inherits steps its parent does not have")
            session.branches[rec.id] = Branch(id=rec.id, name=rec.name, parent=rec.parent,
                                              fork_at=rec.fork_at, steps=inherited)
            session.current_id = rec.id
            difference = None
            for want in rec.steps[rec.inherit:]:
                if stop_event is not None and stop_event.is_set():
                    break
                got = _replay_step(session, sf, want)
                if check and difference is None:
                    bad = compare_step(want, got, tolerance)
                    if bad:
                        difference = Difference(rec.id, rec.name, want.index, *bad)
                if got.token.id != want.token.id:
                    session.current.steps.pop()
                    session._peeked = None
                    got = session.step(force_id=want.token.id, how=want.how)
                if want.finish_reason != got.finish_reason:
                    session.current.steps[-1] = replace(got, finish_reason=want.finish_reason)
                done += 1
                if progress is not None:
                    progress(done, total)
            results.append(BranchReplay(rec.id, rec.name, len(rec.steps) - rec.inherit, difference,
                                        session.completion_text()))
        session.current_id = sf.current if sf.current in session.branches else min(session.branches)
        session.next_branch_id = sf.next_id
        session.params = sf.params
        session._peeked = None
    return ReplayReport(tuple(results), prompt_diff, tolerance, session)


def _replay_step(session: Session, sf: SessionFile, want: StepResult) -> StepResult:
    """One step chosen the way the recorded one was, with the parameters it was computed with.

    Each step carries its own parameters (the user may change them mid-session); steps from
    files that predate that fall back to the file's parameters.
    """
    recorded = want.params if want.params is not None else sf.params
    if want.how in ("forced", "alternative"):
        session.params = recorded
        return session.step(force_id=want.token.id, how=want.how)
    if want.how == "greedy":
        params = recorded if recorded.is_greedy else recorded.with_changes(greedy=True)
    else:
        params = recorded.with_changes(seed=want.seed, greedy=False)
        if params.temperature == 0:
            raise SessionError(f"position {want.index} was sampled but the recorded temperature is 0")
    session.params = params
    return session.step()


def _first_change(a: list[Any], b: list[Any]) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))
