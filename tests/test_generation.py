"""Greedy agreement with transformers' generate, and the session's stopping rules."""

from __future__ import annotations

import pytest
import torch

from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec, encode_prompt
from tokentui.engine.session import Session


@pytest.mark.parametrize("penalty", [1.0, 1.2])
def test_greedy_matches_transformers_generate(bundled, real_backend, penalty):
    spec = PromptSpec("Name three colours.")
    params = SamplingParams(greedy=True, repetition_penalty=penalty, max_new_tokens=12, ignore_eos=True)
    session = Session(real_backend, spec, params=params)
    ours = [s.token.id for s in session.generate()]
    ids = encode_prompt(bundled.tokenizer, spec)
    with torch.no_grad():
        out = bundled.model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=12,
                                     repetition_penalty=penalty, min_new_tokens=12,
                                     attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    assert ours == out[0, len(ids):].tolist()


def test_probabilities_of_each_step_match_a_fresh_forward(bundled, real_backend):
    session = Session(real_backend, PromptSpec("Count: one, two,"),
                      params=SamplingParams(seed=3, max_new_tokens=6))
    steps = list(session.generate())
    ids = session.prompt_ids
    for step in steps:
        with torch.no_grad():
            logits = bundled.model(input_ids=torch.tensor([ids])).logits[0, -1]
        p = torch.softmax(logits.float(), -1)
        assert step.p_base == pytest.approx(p[step.token.id].item(), abs=5e-5)
        assert step.candidates[0].id == int(p.argmax())
        ids = [*ids, step.token.id]


def test_eos_stops_unless_ignored(tiny_backend):
    eos = next(iter(tiny_backend.eos_token_ids))
    session = Session(tiny_backend, PromptSpec("hi"), params=SamplingParams(max_new_tokens=5))
    session.force_token(eos)
    assert session.current.finish_reason == "eos"
    assert list(session.generate()) == []
    session2 = Session(tiny_backend, PromptSpec("hi"),
                       params=SamplingParams(max_new_tokens=5, ignore_eos=True))
    assert session2.force_token(eos).finish_reason is None


def test_max_new_tokens_ends_with_length(tiny_session):
    steps = list(tiny_session.generate())
    assert len(steps) == tiny_session.params.max_new_tokens
    assert steps[-1].finish_reason == "length"
    assert all(s.finish_reason is None for s in steps[:-1])


def test_stop_sequence_ends_generation(tiny_backend):
    session = Session(tiny_backend, PromptSpec("hi"), params=SamplingParams(max_new_tokens=20, seed=1))
    first = list(session.generate(4))
    stop_text = first[2].token.text
    session.truncate(0)
    session.set_params(session.params.with_changes(stop=(stop_text,)))
    again = list(session.generate())
    assert again[-1].finish_reason == "stop"
    assert stop_text in session.completion_text()
    assert len(again) <= 3


def test_seeded_runs_repeat_and_differ_by_seed(tiny_backend):
    def run(seed):
        s = Session(tiny_backend, PromptSpec("Once upon a time"),
                    params=SamplingParams(seed=seed, temperature=1.5, top_p=1.0, max_new_tokens=15))
        return [st.token.id for st in s.generate()]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_steps_hold_no_tensors(tiny_session):
    """Memory stays flat: a step keeps ids, top-N candidates and scalars only."""
    steps = list(tiny_session.generate())

    def walk(obj, depth=0):
        assert not isinstance(obj, torch.Tensor)
        if depth > 6:
            return
        if hasattr(obj, "__slots__"):
            for name in obj.__slots__:
                walk(getattr(obj, name), depth + 1)
        elif isinstance(obj, tuple | list):
            for item in obj:
                walk(item, depth + 1)

    for step in steps:
        walk(step)
        assert len(step.candidates) == tiny_session.top_n


def test_a_run_that_fills_the_context_ends_there_and_keeps_its_tokens(tiny_backend):
    """The tiny model's context is 256: a long run stops at it with reason 'context', every
    step kept, instead of failing half-way."""
    from tokentui.engine.params import SamplingParams
    from tokentui.engine.prompts import PromptSpec
    from tokentui.engine.session import Session

    s = Session(tiny_backend, PromptSpec("Tell me a story"),
                params=SamplingParams(seed=3, max_new_tokens=100000, ignore_eos=True))
    limit = tiny_backend.capabilities.max_context
    steps = list(s.generate())
    assert len(s.prompt_ids) + len(s.current) == limit
    assert steps[-1].finish_reason == "context" and len(steps) == len(s.current)
    assert all(step.finish_reason is None for step in steps[:-1])
