"""Branch comparison, critical tokens and explore, on the tiny model."""

from __future__ import annotations

import math
import threading

import pytest

from tokentui.engine.analysis import compare, forks
from tokentui.engine.results import Candidate, Distribution, Token


def dist(probs: dict[int, float]) -> Distribution:
    cands = tuple(Candidate(Token(i, f"t{i}"), p, p, 0.0, True, rank=r + 1)
                  for r, (i, p) in enumerate(sorted(probs.items(), key=lambda kv: -kv[1])))
    return Distribution(cands, 1.0, 1.0, len(cands), 100, 100)


def test_kl_top_n_is_exact_when_the_top_n_hold_all_the_mass():
    a, b = {1: 0.5, 2: 0.3, 3: 0.2}, {1: 0.2, 2: 0.3, 3: 0.5}
    exact = sum(p * math.log2(p / b[t]) for t, p in a.items())
    assert compare.kl_top_n(dist(a), dist(b)) == pytest.approx(exact)
    assert compare.kl_top_n(dist(a), dist(a)) == pytest.approx(0.0, abs=1e-12)


def test_kl_top_n_estimates_tokens_one_side_did_not_list():
    a, b = dist({1: 0.6, 2: 0.3}), dist({1: 0.6, 3: 0.3})
    kl = compare.kl_top_n(a, b)
    assert 0 < kl < 10
    shifts = {s.token.id: s for s in compare.mass_shifts(a, b)}
    assert shifts[2].estimated and shifts[3].estimated and not shifts[1].estimated
    assert shifts[2].p_b <= 0.1 and shifts[3].p_a <= 0.1  # bounded by the leftover mass
    assert shifts[1].delta == pytest.approx(0.0)


def test_compare_aligns_at_the_fork(two_branches):
    s = two_branches
    cmp = compare.compare_branches(s, 0, 1)
    assert cmp.fork_at == 2 and [t.id for t in cmp.shared] == s.branches[0].ids[:2]
    picked_a = [f.candidate.token.id for f in cmp.fork if f.picked_by_a]
    picked_b = [f.candidate.token.id for f in cmp.fork if f.picked_by_b]
    assert picked_a == [s.branches[0].ids[2]] and picked_b == [s.branches[1].ids[2]]
    assert [r.index for r in cmp.steps] == [2, 3, 4, 5]
    first = cmp.steps[0]
    assert first.kl == pytest.approx(0.0, abs=1e-9)  # the same context gives the same distribution
    assert all(r.kl is not None and r.kl >= 0 for r in cmp.steps)
    assert cmp.steps[1].shifts and cmp.kl_method == "top-n"
    assert cmp.to_json()["fork_at"] == 2


def test_exact_kl_recomputes_full_distributions(two_branches, tiny_loaded):
    import torch

    s = two_branches
    approx = compare.compare_branches(s, 0, 1)
    exact = compare.compare_branches(s, 0, 1, exact=True)
    assert exact.kl_method == "exact"
    assert exact.steps[0].kl == pytest.approx(0.0, abs=1e-5)

    def log_p(ids):  # the model itself, no cache: the reference
        with torch.no_grad():
            out = tiny_loaded.model(input_ids=torch.tensor([list(ids)]), use_cache=False)
        return torch.log_softmax(out.logits[0, -1].double(), -1)

    a, b = s.branches[0].ids, s.branches[1].ids
    for row in exact.steps:
        i = row.index
        la, lb = log_p(s.prompt_ids + a[:i]), log_p(s.prompt_ids + b[:i])
        assert row.kl == pytest.approx(float((la.exp() * (la - lb)).sum()) / math.log(2),
                                       rel=1e-4, abs=1e-4)
    for e, a_ in zip(exact.steps[1:], approx.steps[1:], strict=True):
        assert e.kl >= 0 and a_.kl >= 0


def test_exact_kl_refuses_top_n_backends(two_branches, monkeypatch):
    from dataclasses import replace

    from tokentui.engine.errors import SessionError

    backend = two_branches.backend
    monkeypatch.setattr(backend, "capabilities", replace(backend.capabilities, full_vocab=False))
    with pytest.raises(SessionError, match="exact KL needs full distributions"):
        compare.compare_branches(two_branches, 0, 1, exact=True)


def test_compare_unknown_branch(two_branches):
    from tokentui.engine.errors import SessionError

    with pytest.raises(SessionError, match="no branch 9"):
        compare.compare_branches(two_branches, 0, 9)


def test_critical_tokens_rank_by_margin_then_entropy(tiny_session):
    steps = list(tiny_session.generate(8))
    ranked = forks.critical_tokens(steps)
    assert sorted(c.index for c in ranked) == list(range(8))
    margins = [c.margin for c in ranked]
    assert margins == sorted(margins)
    for c in ranked:
        finals = sorted((x.p_final for x in steps[c.index].candidates), reverse=True)
        assert c.margin == pytest.approx(finals[0] - finals[1])
        assert all(a.token.id != c.token.id for a in c.alternatives)
    top3 = forks.critical_tokens(steps, top=3)
    assert top3 == ranked[:3]
    positions = sorted(c.index for c in top3)
    assert forks.next_critical(steps, -1, top=3) == positions[0]
    assert forks.next_critical(steps, positions[0], top=3) == positions[1]
    assert forks.next_critical(steps, positions[-1], top=3) == positions[0]  # wraps
    assert forks.next_critical([], 0) is None


def test_explore_branches_at_critical_positions_reusing_the_cache(tiny_session):
    s = tiny_session
    list(s.generate(8))
    source = s.current_id
    backend = s.backend
    before = backend.forward_tokens
    seen = []
    result = forks.explore(s, positions=2, alternatives=2, tokens=3, progress=seen.append)
    assert s.current_id == source and not result.cancelled
    assert len(result.branches) == 4 and [p.done for p in seen] == [1, 2, 3, 4]
    critical = {c.index for c in forks.critical_tokens(s.branches[source].steps, top=2)}
    assert {b.fork_at for b in result.branches} == critical
    for b in result.branches:
        branch = s.branches[b.branch_id]
        assert branch.parent == source and branch.ids[:b.fork_at] == s.branches[source].ids[:b.fork_at]
        assert branch.steps[b.fork_at].how == "alternative" and branch.ids[b.fork_at] == b.token.id
        assert len(branch) <= b.fork_at + 1 + 3
        assert b.logprob == pytest.approx(sum(math.log(x.p_base) for x in branch.steps))
        assert 0 <= b.joint_p <= 1
    # one cached prefix: each new branch costs its own tokens (plus at most one pass over the
    # source's completion, as the cache walks back from one fork to the next), never the prompt
    own = sum(len(s.branches[b.branch_id]) - b.fork_at for b in result.branches)
    budget = own + len(result.branches) + len(s.branches[source])
    assert backend.forward_tokens - before <= budget < len(s.prompt_ids) * len(result.branches)


def test_explore_stops_when_asked(tiny_session):
    list(tiny_session.generate(6))
    stop = threading.Event()
    stop.set()
    result = forks.explore(tiny_session, positions=2, alternatives=2, tokens=3, stop_event=stop)
    assert result.cancelled and result.branches == ()
    assert len(tiny_session.branches) == 1


def test_exact_kl_stops_when_cancelled(two_branches):
    import threading

    from tokentui.engine.errors import Cancelled

    cancel = threading.Event()
    cancel.set()
    before = two_branches.backend.forward_tokens
    with pytest.raises(Cancelled, match="stopped"):
        compare.compare_branches(two_branches, 0, 1, exact=True, cancel=cancel)
    assert two_branches.backend.forward_tokens == before  # nothing ran
    assert two_branches.lock.acquire(blocking=False)  # and the lock is free again
    two_branches.lock.release()


def test_exact_kl_in_small_blocks_is_the_same(two_branches, monkeypatch):
    """Blocks bound the memory; re-feeding A after a block of B changes no number."""
    whole = compare.compare_branches(two_branches, 0, 1, exact=True)
    monkeypatch.setattr(compare, "KL_BLOCK", 1)
    blocked = compare.compare_branches(two_branches, 0, 1, exact=True)
    assert [r.kl for r in blocked.steps] == pytest.approx([r.kl for r in whole.steps], rel=1e-4, abs=1e-5)
    assert sum(r.kl is not None for r in blocked.steps) >= 3  # several blocks ran
