"""The remote backend against llama.cpp's own ``llama-server``.

The server is built once from the llama.cpp tree vendored in the llama-cpp-python sdist
(``ensure_llama_server``: minutes on a cold cache, then cached under
``<tokentui cache>/llama-server/<version>/``) and serves the bundled GGUF. tokentui must
recognise it and use its native ``/completion`` endpoint (token-id prompts, ``n_probs``),
agree with transformers within quantisation, and lean on the server's prompt cache: a
branch far back costs about one step. That last claim is checked by the server's own
counts of evaluated prompt tokens (``timings.prompt_n`` / ``cache_n``), never by time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from remote_server import LLAMA_CPP_PYTHON_VERSION, LlamaServer, ensure_llama_server

from tokentui.engine.backends import remote
from tokentui.engine.launch import ModelConfig, open_backend
from tokentui.engine.models import bundled_gguf_path, cache_dir
from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec, encode_prompt, encode_text
from tokentui.engine.session import Session

pytestmark = pytest.mark.slow

AGREEMENT = [
    PromptSpec("Name a colour of the sky."),
    PromptSpec("List three prime numbers."),
    PromptSpec("The capital of France is", chat_template=False),
    PromptSpec("One, two, three, four,", chat_template=False),
]
"""Prompts checked for agreement; the top-1 is compared only where it is clear locally
(p1 - p2 > 0.1): on near-ties the server's Q4_1 arithmetic may swap the two leaders."""
GREEDY = SamplingParams(temperature=0.0, top_p=1.0, repetition_penalty=1.0, greedy=True,
                        max_new_tokens=16)
LONG = "Write a short story about a lighthouse keeper who finds a message in a bottle."


@pytest.fixture(scope="module")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llama-server-logs")


@pytest.fixture(scope="module")
def server(server_logs: Path) -> Iterator[LlamaServer]:
    binary = ensure_llama_server(server_logs / "build.log")
    srv = LlamaServer(binary, bundled_gguf_path(), server_logs / "server.log")
    try:
        yield srv.start()
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def backend(server: LlamaServer) -> remote.RemoteBackend:
    opened = open_backend(ModelConfig(backend="openai", base_url=server.base_url,
                                      tokenizer=str(bundled_gguf_path())))
    assert isinstance(opened, remote.RemoteBackend)
    return opened


def test_the_cached_binary_is_reused(server: LlamaServer, server_logs: Path) -> None:
    again = ensure_llama_server(server_logs / "again.log")
    assert again == server.binary and again.is_file()
    assert not (server_logs / "again.log").exists()  # nothing was built or even logged
    assert again.parent.name == LLAMA_CPP_PYTHON_VERSION
    assert again.parent.parent.parent == cache_dir()  # respects $TOKENTUI_CACHE


def test_recognised_as_llama_cpp_with_the_native_path(backend: remote.RemoteBackend) -> None:
    assert backend.info.flavour == "llama.cpp"
    assert backend.native and backend.prompt_mode == "ids"
    assert backend.info.max_context == 2048
    assert "llama.cpp server" in backend.capabilities.name
    assert backend.vocab_size == 49152
    # A token-id prompt the local tokenizer made: the server evaluates exactly those tokens
    # (a text prompt would be retokenised by the server, with its own BOS rules).
    ids = encode_prompt(backend.tokenizer, PromptSpec("Say one word."))
    out = backend.next_logits(ids)
    timings = backend.last_timings
    assert timings is not None
    assert timings["prompt_n"] + timings["cache_n"] == len(ids)
    # n_probs: the top N candidates, each with its id.
    assert int(torch.isfinite(out.logits).sum()) == remote.DEFAULT_TOP_N
    assert out.logits_are_logprobs and out.extra["top_n"] == remote.DEFAULT_TOP_N


@pytest.mark.parametrize("spec", AGREEMENT, ids=lambda spec: spec.text)
def test_distribution_agrees_with_local(backend: remote.RemoteBackend, real_backend: Any,
                                        spec: PromptSpec) -> None:
    ids = encode_prompt(backend.tokenizer, spec)
    assert ids == encode_prompt(real_backend.tokenizer, spec)
    server_p = backend.next_logits(ids).logits.exp()
    local_p = torch.softmax(real_backend.next_logits(ids).logits.float(), dim=-1)
    top5 = torch.topk(server_p, 5).indices
    local_top2 = torch.topk(local_p, 2)
    if float(local_top2.values[0] - local_top2.values[1]) > 0.1:
        assert int(top5[0]) == int(local_p.argmax())
    else:
        assert int(top5[0]) in local_top2.indices.tolist()
    assert torch.allclose(server_p[top5], local_p[top5], atol=0.03), (server_p[top5], local_p[top5])
    assert float(server_p.sum()) <= 1.0 + 1e-4


def test_session_steps_branches_and_forces(backend: remote.RemoteBackend, real_backend: Any) -> None:
    spec = PromptSpec("Name a colour of the sky.")
    session = Session(backend, spec, params=GREEDY, top_n=10)
    steps = list(session.generate(max_new_tokens=6))
    assert len(steps) == len(session.current) == 6
    first = steps[0].distribution
    assert first.top_n_only and len(first.candidates) == 10
    assert steps[0].token.id == first.candidates[0].id
    local = Session(real_backend, spec, params=GREEDY, top_n=10)
    assert session.current.ids[:3] == [s.token.id for s in local.generate(max_new_tokens=3)]

    alt = steps[1].distribution.candidates[1]
    branched = session.branch_from(1, alt.id)
    assert branched.how == "alternative" and branched.token.id == alt.id
    assert session.current.ids == [steps[0].token.id, alt.id]
    assert abs(branched.p_base - alt.p_base) < 0.03  # recomputed at the same position

    session.switch(session.branches[0].id)
    session.truncate(3)
    again = session.step()
    assert again.token.id == steps[3].token.id

    forced = session.force_text(" Paris")
    assert [s.how for s in forced] == ["forced"] * len(forced)
    assert session.current.ids[-len(forced):] == encode_text(backend.tokenizer, " Paris")
    assert all(0.0 <= s.p_base <= 1.0 for s in forced)


def test_a_branch_30_back_costs_about_one_step(backend: remote.RemoteBackend) -> None:
    """Counted by the server: the branch evaluates the tokens after the common prefix only."""
    params = SamplingParams(temperature=0.0, top_p=1.0, repetition_penalty=1.0, greedy=True,
                            max_new_tokens=40, ignore_eos=True)
    # A request that shares no prefix with the cache is evaluated whole: the counts are real.
    plain = encode_text(backend.tokenizer, LONG)
    backend.next_logits(plain)
    assert backend.last_timings is not None
    assert backend.last_timings["prompt_n"] == len(plain) and backend.last_timings["cache_n"] == 0

    session = Session(backend, PromptSpec(LONG), params=params, top_n=10)
    n_prompt = len(session.context_ids())
    session.step()
    assert backend.last_timings["prompt_n"] + backend.last_timings["cache_n"] == n_prompt
    for _ in range(39):
        session.step()
    assert len(session.current) == 40
    # Each greedy step evaluates about one new token: the rest comes from the server's cache.
    assert backend.last_timings["prompt_n"] <= 2
    assert backend.last_timings["cache_n"] >= n_prompt + 38

    index = len(session.current) - 30
    alt = session.current.steps[index].distribution.candidates[1].id
    requests = backend.requests
    branched = session.branch_from(index, alt)
    assert branched.token.id == alt and len(session.current) == index + 1
    assert backend.requests == requests + 1
    timings = backend.last_timings
    assert timings["prompt_n"] <= 2, timings  # not the whole context (prompt + 10 tokens)
    assert timings["cache_n"] + timings["prompt_n"] == n_prompt + index
    # The step after the branch: one more token past the (now shorter) cached prefix.
    session.step()
    timings = backend.last_timings
    assert timings["prompt_n"] <= 2 and timings["cache_n"] >= n_prompt + index
