"""Exact branching for every cache kind, with the tokens fed counted.

A session generates past the sliding window, branches back before it, switches back to the
first branch and steps on; every step's ``p_base`` must equal transformers' softmax of an
uncached forward over the same ids (within 1e-4), and the tokens the backend fed say what the
branch cost.
"""

from __future__ import annotations

import pytest
import torch

from tests.architectures import zoo
from tokentui.engine.backends.local import LocalBackend
from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec
from tokentui.engine.session import Session

pytestmark = pytest.mark.architectures

CASES = {
    "llama": "attention", "mistral": "sliding", "gemma2": "sliding", "gemma3": "sliding",
    "bloom": "attention", "gpt2": "attention", "opt": "attention", "mamba": "recurrent",
    "mamba2": "recurrent", "jamba": "hybrid", "falcon_h1": "hybrid",
}
"""Plain rotary, sliding window, ALiBi (bloom), learned positions (gpt2, opt), recurrent, hybrid."""
GENERATE = 3 * zoo.WINDOW


def uncached_p(model, ids):
    with torch.no_grad():
        return torch.softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)


def check_steps(session, steps, model):
    ids = session.context_ids()
    worst = 0.0
    for step in steps:
        pos = len(session.prompt_ids) + step.index
        p = uncached_p(model, ids[:pos])
        assert step.token.id == ids[pos]
        worst = max(worst, abs(step.p_base - float(p[step.token.id])))
        for cand in step.distribution.candidates:
            worst = max(worst, abs(cand.p_base - float(p[cand.token.id])))
    assert worst < 1e-4, worst


@pytest.mark.parametrize("name", list(CASES))
def test_branch_back_past_the_window_is_exact(name, zoo_loaded):
    loaded = zoo_loaded(name)
    backend = LocalBackend(loaded)
    assert backend.cache_kind == CASES[name]
    session = Session(backend, PromptSpec("The cat sat", chat_template=False),
                      params=SamplingParams(greedy=True, max_new_tokens=GENERATE, ignore_eos=True))
    first = list(session.generate(GENERATE))
    assert len(session.context_ids()) > zoo.WINDOW + 8
    check_steps(session, first, loaded.model)
    main = session.current.id

    # Branch back before the window: 20 completion tokens back.
    fork = len(first) - 20
    alt = next(c.token.id for c in first[fork].distribution.candidates if c.token.id != first[fork].token.id)
    fed = backend.forward_tokens
    branched = [session.branch_from(fork, alt), *session.generate(4)]
    branch_cost = backend.forward_tokens - fed
    check_steps(session, branched, loaded.model)

    # Back to the first branch and on.
    session.switch(main)
    fed = backend.forward_tokens
    more = list(session.generate(4))
    back_cost = backend.forward_tokens - fed
    check_steps(session, more, loaded.model)

    n_prompt = len(session.prompt_ids)
    if CASES[name] in ("attention", "sliding"):
        # one token per step: the cache is cropped to the fork, nothing before it is fed again
        assert branch_cost == 5
        # back on the first branch: its tokens after the fork are fed once, then one per step
        assert back_cost == (len(first) - fork) + 3
    else:
        # a kept state at or before the fork: at most snapshot_every extra tokens per restore
        assert branch_cost <= 5 + backend.snapshot_every
        assert back_cost <= 4 + backend.snapshot_every
        assert backend.restores >= 2
    assert backend.forward_tokens < 3 * (n_prompt + GENERATE)


def test_recurrent_switch_back_restores_the_newest_state(zoo_loaded):
    """Re-rolling the newest token of a Mamba costs one step (a state kept at the last positions)."""
    loaded = zoo_loaded("mamba")
    backend = LocalBackend(loaded)
    session = Session(backend, PromptSpec("The cat sat", chat_template=False),
                      params=SamplingParams(greedy=True, ignore_eos=True))
    steps = list(session.generate(10))
    fed = backend.forward_tokens
    step = session.branch_from(9, next(c.token.id for c in steps[9].distribution.candidates
                                       if c.token.id != steps[9].token.id))
    assert backend.forward_tokens - fed == 1
    check_steps(session, [step], loaded.model)
