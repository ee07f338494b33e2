"""Lockstep with a server as model B: llama-cpp-python's server on the bundled Q4_1 GGUF
(built on the first run, then taken from uv's cache) against the local float32 model."""

from __future__ import annotations

import math

import pytest
import torch

from tokentui.engine.analysis.lockstep import Lockstep, divergence
from tokentui.engine.backends import remote
from tokentui.engine.backends.local import LocalBackend
from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec


@pytest.fixture
def server(llama_cpp_python_server):
    """The shared llama-cpp-python server (tests/conftest.py)."""
    return llama_cpp_python_server


def test_local_against_a_server_is_estimated_over_the_top_n(server, bundled) -> None:
    b = remote.from_options(base_url=server.base_url)
    ls = Lockstep(LocalBackend(bundled), b, PromptSpec("What is the capital of France?"),
                  params=SamplingParams(greedy=True, max_new_tokens=5))
    assert ls.estimated
    steps = list(ls.generate(5))
    assert len(steps) == 5 and ls.a.current.ids == ls.b.current.ids
    for d in steps:
        assert d.estimated
        assert all(math.isfinite(x) and x >= 0 for x in (d.kl_ab, d.kl_ba, d.js))
        # the server's top-N names at most its own candidates; unlisted ones have no rank under B
        assert len(d.top_b) <= b.top_n
        assert all(c.p_other is not None and c.rank_other is not None for c in d.top_b)
    # The same numbers from the server's own answer and transformers' full distribution,
    # recomputed here for the last prefix.
    ids = ls.prompt_ids + ls.ids[:-1]
    with torch.no_grad():
        la = torch.log_softmax(bundled.model(input_ids=torch.tensor([ids])).logits[0, -1].double(), -1)
    lb = b.next_logits(ids).logits.double()
    again = divergence(la, lb, full_a=True, full_b=False)
    assert steps[-1].kl_ab == pytest.approx(again.kl_ab, rel=1e-3, abs=1e-4)
    assert steps[-1].js == pytest.approx(again.js, rel=1e-3, abs=1e-4)
    # Q4_1 on the server against float32 here: close on a clear prompt
    assert sum(d.overlap for d in steps) / len(steps) >= 5
    for d in steps:  # the taken token's rank under the server is its place in the server's list
        listed = {c.token.id: c for c in d.top_b}
        if d.token.id in listed:
            assert (d.rank_b, d.p_b) == (listed[d.token.id].rank, listed[d.token.id].p)
        else:
            assert d.rank_b is None or d.rank_b > len(d.top_b)
    print("local fp32 vs server Q4_1:",
          [(d.token.text, d.rank_b, round(d.kl_ab, 4), d.overlap) for d in steps])
