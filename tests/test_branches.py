"""The branch tree: regeneration equivalence, cache reuse, delete, force, switch."""

from __future__ import annotations

import pytest
import torch

from tokentui.engine.errors import ContextOverflowError, SessionError
from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec
from tokentui.engine.session import Session

PROMPT = PromptSpec("Write one sentence about rivers.")


def fresh_run(backend, params, forced, n):
    session = Session(backend, PROMPT, params=params)
    for tid in forced:
        session.force_token(tid)
    return [s.token.id for s in session.generate(n)]


@pytest.mark.parametrize("params", [
    SamplingParams(greedy=True, max_new_tokens=64),
    SamplingParams(seed=21, temperature=1.2, top_p=0.95, max_new_tokens=64),
], ids=["greedy", "seeded"])
@pytest.mark.parametrize("which", ["tiny", "real"])
def test_branch_regenerates_exactly_like_a_fresh_run(request, params, which):
    backend = request.getfixturevalue("tiny_backend" if which == "tiny" else "real_backend")
    session = Session(backend, PROMPT, params=params)
    original = list(session.generate(8))
    k = 3
    alternative = next(c.id for c in original[k].candidates if c.id != original[k].token.id)
    session.branch_from(k, alternative)
    continued = [s.token.id for s in session.generate(5)]
    prefix = [s.token.id for s in original[:k]]
    assert session.current.ids == [*prefix, alternative, *continued]
    assert continued == fresh_run(backend, params, [*prefix, alternative], 5)
    assert len(session.branches) == 2
    assert session.branches[0].ids == [s.token.id for s in original]


def test_branching_reuses_the_cached_prefix(tiny_backend):
    session = Session(tiny_backend, PROMPT, params=SamplingParams(seed=2, max_new_tokens=30))
    steps = list(session.generate(10))
    before = tiny_backend.forward_tokens
    session.branch_from(6, steps[6].candidates[1].id)
    # Only the token before the fork position is fed again (its logits are needed).
    assert tiny_backend.forward_tokens - before == 1
    before = tiny_backend.forward_tokens
    list(session.generate(3))
    assert tiny_backend.forward_tokens - before == 3


def test_cropped_cache_logits_match_a_full_forward(tiny_loaded, tiny_backend):
    session = Session(tiny_backend, PROMPT, params=SamplingParams(seed=2))
    list(session.generate(8))
    session.truncate(4)  # rewind: the next request crops the cache
    dist = session.peek()
    with torch.no_grad():
        logits = tiny_loaded.model(input_ids=torch.tensor([session.context_ids()])).logits[0, -1]
    p = torch.softmax(logits, -1)
    for cand in dist.candidates:
        assert cand.p_base == pytest.approx(p[cand.id].item(), abs=5e-5)


def test_forcing_a_text_reads_it_in_one_pass_with_the_models_numbers(tiny_session, tiny_loaded):
    """A forced text is known in advance: the backend reads it in one forward (not one per token),
    and every step's probabilities are still transformers' own for its prefix."""
    s = tiny_session
    list(s.generate(2))
    before = s.backend.forward_calls
    forced = s.force_text(" The cat sat on the mat and told a story about a lighthouse keeper.")
    assert len(forced) > 10
    assert s.backend.forward_calls - before <= 2  # the read-ahead pass (and at most one peek)
    ids = s.context_ids()
    with torch.no_grad():
        logits = tiny_loaded.model(input_ids=torch.tensor([ids])).logits[0]
    p = torch.softmax(logits.double(), -1)
    first = len(ids) - len(forced)
    for k, step in enumerate(forced):
        assert step.p_base == pytest.approx(p[first + k - 1, step.token.id].item(), abs=1e-5)
    s.step()  # stepping on after the text continues from the cache the pass left
    assert s.context_ids()[:-1] == ids


def test_delete_force_fork_switch_rename(tiny_session):
    list(tiny_session.generate(4))
    ids = tiny_session.current.ids
    removed = tiny_session.delete_last()
    assert removed.token.id == ids[-1] and tiny_session.current.ids == ids[:-1]
    forced = tiny_session.force_text(" hello world")
    assert [s.how for s in forced] == ["forced"] * len(forced)
    assert tiny_session.completion_text().endswith(" hello world")
    root = tiny_session.current_id
    fork = tiny_session.fork("copy")
    assert tiny_session.current_id == fork.id and fork.ids == tiny_session.branches[root].ids
    tiny_session.step()
    assert len(fork) == len(tiny_session.branches[root]) + 1
    tiny_session.switch(root)
    tiny_session.rename(fork.id, "explored")
    infos = {i.id: i for i in tiny_session.branch_info()}
    assert infos[fork.id].name == "explored" and infos[root].current
    tiny_session.delete_branch(fork.id)
    assert fork.id not in tiny_session.branches
    with pytest.raises(SessionError):
        tiny_session.delete_branch(root)
    with pytest.raises(SessionError):
        tiny_session.switch(99)


def test_branch_info_names_the_fork_tokens(tiny_session):
    steps = list(tiny_session.generate(5))
    alt = steps[2].candidates[1]
    if alt.id == steps[2].token.id:
        alt = steps[2].candidates[0]
    tiny_session.branch_from(2, alt.id)
    info = next(i for i in tiny_session.branch_info() if i.current)
    assert info.fork_at == 2 and info.parent == 0
    assert info.token.id == alt.id and info.parent_token.id == steps[2].token.id
    assert info.p_final == pytest.approx(tiny_session.current.steps[2].p_final)
    assert info.parent_p_final == pytest.approx(steps[2].p_final)


def test_delete_on_empty_branch_and_bad_branch_index(tiny_session):
    with pytest.raises(SessionError, match="nothing to delete"):
        tiny_session.delete_last()
    with pytest.raises(SessionError, match="cannot branch"):
        tiny_session.branch_from(5, 10)


def test_context_overflow_is_a_clear_error(tiny_backend):
    limit = tiny_backend.max_context
    with pytest.raises(ContextOverflowError, match="context"):
        Session(tiny_backend, PromptSpec("word " * (limit + 10), chat_template=False))
    session = Session(tiny_backend, PromptSpec("word " * (limit - 3), chat_template=False),
                      params=SamplingParams(max_new_tokens=50, seed=1))
    steps = list(session.generate())  # the run ends at the limit, with what it made kept
    assert len(session.context_ids()) == limit and steps[-1].finish_reason == "context"
    with pytest.raises(ContextOverflowError, match="context full"):  # one more is one clear line
        session.step()
    assert len(session.context_ids()) == limit


def test_prompt_token_view_is_the_models_distribution_from_the_prefix(tiny_session, tiny_loaded):
    """Nothing chose a prompt token; the model's distribution before it says how expected it was."""
    import torch

    from tokentui.engine.errors import SessionError

    s = tiny_session
    ids = s.prompt_ids
    i = len(ids) - 2
    view = s.prompt_token(i)
    with torch.no_grad():
        logits = tiny_loaded.model(input_ids=torch.tensor([ids[:i]]), use_cache=False).logits[0, -1]
    p = torch.softmax(logits.double(), -1)
    assert view.token.id == ids[i]
    assert view.p_base == pytest.approx(float(p[ids[i]]), abs=1e-6)
    assert view.rank == int((p > p[ids[i]]).sum()) + 1
    assert view.distribution.candidates[0].id == int(p.argmax())
    assert view.to_json()["rank"] == view.rank
    # the session goes on as before: the backend's cache is re-fed past the prompt prefix
    s.prompt_token(1)
    s._peeked = None  # no kept result: the next peek must run the model on the whole context
    with torch.no_grad():
        fresh = tiny_loaded.model(input_ids=torch.tensor([s.context_ids()]), use_cache=False).logits[0, -1]
    top = s.peek().candidates[0]
    assert top.id == int(fresh.argmax())
    assert top.p_base == pytest.approx(float(torch.softmax(fresh.double(), -1).max()), abs=1e-5)
    for bad in (0, len(ids)):
        with pytest.raises(SessionError, match="has no distribution"):
            s.prompt_token(bad)


def test_prompt_token_outside_a_servers_top_n_is_unknown(tiny_backend):
    """A top-N backend that does not list the prompt's token: probability and rank are unknown,
    not 0 and N+1."""
    from dataclasses import replace

    import torch

    from tokentui.engine.backends.base import BackendOutput
    from tokentui.engine.prompts import PromptSpec
    from tokentui.engine.session import Session

    class TopThree:
        """The tiny backend seen through a server that returns only the top 3 log-probabilities."""

        def __init__(self, inner):
            self.inner = inner
            self.capabilities = replace(inner.capabilities, full_vocab=False)

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def next_logits(self, ids, **kw):
            logp = torch.log_softmax(self.inner.next_logits(ids).logits, -1)
            keep = torch.topk(logp, 3).indices
            out = torch.full_like(logp, -torch.inf)
            out[keep] = logp[keep]
            return BackendOutput(logits=out, logits_are_logprobs=True)

    s = Session(TopThree(tiny_backend), PromptSpec("Tell me a story about a cat.", chat_template=False))
    ids = s.prompt_ids
    views = [s.prompt_token(i) for i in range(1, len(ids))]
    listed = [v for v in views if v.rank is not None]
    unknown = [v for v in views if v.rank is None]
    assert unknown, "a random model ranks some prompt token outside its top 3"
    assert all(v.p_base is None for v in unknown)
    assert all(1 <= v.rank <= 3 and v.p_base > 0 for v in listed)


def test_prompt_token_views_are_remembered(tiny_session):
    """Walking back over the prompt runs each prefix once (until the prompt or parameters change)."""
    s = tiny_session
    first = s.prompt_token(2)
    before = s.backend.forward_tokens
    assert s.prompt_token(2) is first and s.backend.forward_tokens == before
    s.set_params(s.params.with_changes(temperature=1.3))  # p_final depends on them: computed again
    again = s.prompt_token(2)
    assert again is not first and again.p_base == pytest.approx(first.p_base)
    from tokentui.engine.prompts import PromptSpec

    s.set_prompt(PromptSpec("An entirely different prompt here", chat_template=False))
    assert s.prompt_token(2).token.id == s.prompt_ids[2]  # a new prompt: nothing stale
