"""The remote backend against real servers: llama-cpp-python's, and small stdlib ones.

The main server is llama-cpp-python's OpenAI-compatible server on the bundled GGUF
(built from source on the first run, then taken from uv's cache). Faults that a healthy
server cannot show (no log-probabilities, a slow answer, 503s, a key check) come from
tiny ``http.server`` servers written here: real HTTP on 127.0.0.1, no client mocks.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch
from remote_server import LlamaCppPythonServer, ensure_llama_cpp_python, free_port

from tokentui.engine.backends import remote
from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec, encode_prompt, encode_text
from tokentui.engine.session import Session

PROMPTS = [
    "Name a colour of the sky.",
    "Write a haiku about the sea.",
    "List three prime numbers.",
]
AGREEMENT = [PromptSpec(text) for text in PROMPTS] + [
    PromptSpec("The capital of France is", chat_template=False),
    PromptSpec("One, two, three, four,", chat_template=False),
]
"""Prompts whose top-1 is clear. On near-ties the server's Q4_1 arithmetic (8-bit activations)
moves probabilities by up to ~0.05 (e.g. the chat prompt "What is the capital of France?":
"The" 0.152 here, 0.101 on the server), so such prompts are not used to check agreement."""
GREEDY = SamplingParams(temperature=0.0, top_p=1.0, repetition_penalty=1.0, greedy=True,
                        max_new_tokens=16)


# ----- servers -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llama-server-logs")


@pytest.fixture(scope="module")
def built(server_logs: Path) -> float:
    """llama-cpp-python in its own uv environment (a cold first build takes minutes)."""
    return ensure_llama_cpp_python(server_logs / "build.log")


@pytest.fixture(scope="module")
def server(built: float, server_logs: Path) -> Iterator[LlamaCppPythonServer]:
    from tokentui.engine.models import bundled_gguf_path

    srv = LlamaCppPythonServer(bundled_gguf_path(), server_logs / "server.log")
    try:
        yield srv.start()
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def backend(server: LlamaCppPythonServer) -> remote.RemoteBackend:
    # No --tokenizer: the served model's name is the GGUF's path, which resolves locally.
    return remote.from_options(base_url=server.base_url)


class FakeServer:
    """A real HTTP server on 127.0.0.1 whose answers each test chooses."""

    def __init__(self, completions: Any = None, *, delay: float = 0.0, fail_first: int = 0,
                 status: int = 200) -> None:
        self.completions = completions
        self.delay = delay
        self.fail_first = fail_first
        self.status = status
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                outer.requests.append((method, self.path, dict(self.headers), body))
                if outer.status != 200:
                    return self._send(outer.status, {"error": {"message": "invalid api key"}})
                if self.path == "/v1/models":
                    return self._send(200, {"object": "list", "data": [
                        {"id": "fake-model", "object": "model", "owned_by": "someone"}]})
                if self.path == "/v1/completions":
                    if outer.fail_first > 0:
                        outer.fail_first -= 1
                        return self._send(503, {"error": {"message": "loading"}})
                    if outer.delay:
                        time.sleep(outer.delay)
                    return self._send(200, outer.completions(body) if callable(outer.completions)
                                      else outer.completions)
                return self._send(404, {"detail": "Not Found"})

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _no_logprobs(body: Any) -> Any:
    return {"id": "x", "object": "text_completion", "model": "fake-model",
            "choices": [{"index": 0, "text": " Paris", "logprobs": None, "finish_reason": "length"}]}


def _id_logprobs(tokenizer: Any) -> Any:
    """A server that takes token ids and names candidates as vLLM does (``token_id:N``)."""
    paris = encode_text(tokenizer, " Paris")[0]
    london = encode_text(tokenizer, " London")[0]

    def answer(body: Any) -> Any:
        assert isinstance(body["prompt"], list) and all(isinstance(i, int) for i in body["prompt"])
        tops = {f"token_id:{paris}": math.log(0.6), f"token_id:{london}": math.log(0.3)}
        return {"choices": [{"index": 0, "text": " Paris", "logprobs": {
            "tokens": [f"token_id:{paris}"], "token_logprobs": [math.log(0.6)],
            "top_logprobs": [tops], "text_offset": [0]}}]}

    return answer


# ----- agreement with the local backend ------------------------------------------------------
def test_discovers_llama_cpp_python_and_its_limits(backend: remote.RemoteBackend) -> None:
    caps = backend.capabilities
    assert backend.info.flavour == "llama-cpp-python"
    assert backend.prompt_mode == "text"  # this server refuses token-id prompts
    assert "SmolLM2-135M-Instruct" in caps.name
    assert not caps.full_vocab and not caps.attention and not caps.hidden_states
    assert not caps.gradients and caps.tokenizer
    assert caps.top_n == remote.DEFAULT_TOP_N and "top-N" in caps.reason
    assert backend.vocab_size == 49152


@pytest.mark.parametrize("spec", AGREEMENT, ids=lambda spec: spec.text)
def test_next_agrees_with_local(backend: remote.RemoteBackend, real_backend: Any,
                                spec: PromptSpec) -> None:
    ids = encode_prompt(backend.tokenizer, spec)
    out = backend.next_logits(ids)
    assert out.logits_are_logprobs and out.attention is None
    assert int(torch.isfinite(out.logits).sum()) >= remote.DEFAULT_TOP_N
    server_p = out.logits.exp()
    local_p = torch.softmax(real_backend.next_logits(ids).logits, dim=-1)
    top5 = torch.topk(server_p, 5).indices
    local_top2 = torch.topk(local_p, 2)
    if float(local_top2.values[0] - local_top2.values[1]) > 0.1:  # a clear top-1: the same token
        assert int(top5[0]) == int(local_p.argmax())
    else:  # a near-tie: Q4_1 arithmetic in llama.cpp may swap the two leaders, nothing else
        assert int(top5[0]) in local_top2.indices.tolist()
    assert torch.allclose(server_p[top5], local_p[top5], atol=0.03), (server_p[top5], local_p[top5])
    assert float(server_p.sum()) <= 1.0 + 1e-4


def test_session_steps_branches_and_forces(backend: remote.RemoteBackend, real_backend: Any) -> None:
    spec = PromptSpec(PROMPTS[0])
    session = Session(backend, spec, params=GREEDY, top_n=10)
    steps = list(session.generate(max_new_tokens=6))
    assert len(steps) == len(session.current) == 6
    first = steps[0].distribution
    assert first.top_n_only and len(first.candidates) == 10
    returned = sum(c.p_base for c in first.candidates)  # the top 10 of the 20 returned
    assert 0.0 <= first.other_mass <= 1.0 - returned + 1e-6
    assert steps[0].token.id == first.candidates[0].id  # greedy takes the top candidate
    # The same prompt locally: same first tokens (the server computes with the Q4_1 weights).
    local = Session(real_backend, spec, params=GREEDY, top_n=10)
    local_ids = [s.token.id for s in local.generate(max_new_tokens=3)]
    assert session.current.ids[:3] == local_ids

    # Branch at position 1 with the second candidate: one request, the prefix is kept.
    alt = steps[1].distribution.candidates[1]
    branched = session.branch_from(1, alt.id)
    assert branched.how == "alternative" and branched.token.id == alt.id
    assert session.current.ids == [steps[0].token.id, alt.id]
    assert abs(branched.p_base - alt.p_base) < 1e-6

    # Rewind and step again: the same greedy token as before.
    main = session.branches[0]
    session.switch(main.id)
    session.truncate(3)
    again = session.step()
    assert again.token.id == steps[3].token.id
    # Not bit-identical: the server evaluates a cached prefix in other batches than a fresh one.
    assert abs(again.p_base - steps[3].p_base) < 0.03

    # Forcing text appends its tokens and reports their probabilities (0 outside the top N).
    forced = session.force_text(" Paris")
    assert [s.how for s in forced] == ["forced"] * len(forced)
    assert session.current.ids[-len(forced):] == encode_text(backend.tokenizer, " Paris")
    assert all(0.0 <= s.p_base <= 1.0 for s in forced)
    assert backend.retokenized_steps == 0


def test_sampled_steps_use_p_final_within_the_top_n(backend: remote.RemoteBackend) -> None:
    params = SamplingParams(temperature=0.7, top_p=0.8, seed=11, max_new_tokens=4)
    session = Session(backend, PromptSpec(PROMPTS[1]), params=params, top_n=20)
    for step in session.generate():
        dist = step.distribution
        kept = [c for c in dist.candidates if c.kept]
        assert kept and abs(sum(c.p_final for c in kept) - 1.0) < 1e-4
        assert step.p_final > 0 and step.how == "sampled"
        assert math.isclose(dist.other_mass, 1.0 - sum(c.p_base for c in dist.candidates),
                            abs_tol=1e-5)


def test_text_prompts_that_retokenise_are_noted(backend: remote.RemoteBackend) -> None:
    tok = backend.tokenizer
    whole = encode_text(tok, " apple")
    assert len(whole) == 1
    # " app" + "le" decodes to " apple", which the server tokenises as one token.
    split = encode_text(tok, " app") + encode_text(tok, "le")
    assert len(split) == 2
    before = backend.retokenized_steps
    out = backend.next_logits(encode_prompt(tok, PromptSpec("Say a fruit.")) + split)
    assert out.extra.get("retokenized") is True
    assert backend.retokenized_steps == before + 1
    assert any("tokenised the text differently" in n for n in backend.notes)


def test_served_model_mismatch_is_one_line(server: LlamaCppPythonServer) -> None:
    with pytest.raises(remote.ModelMismatchError) as err:
        remote.from_options(base_url=server.base_url, served_model="llama-70b")
    assert "not 'llama-70b'" in str(err.value) and "\n" not in str(err.value)


def test_cli_next_over_the_server(server: LlamaCppPythonServer) -> None:
    from typer.testing import CliRunner

    from tokentui.cli import app

    result = CliRunner().invoke(app, ["next", "The capital of France is", "--no-chat-template",
                                      "--backend", "openai", "--base-url", server.base_url, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["candidates"][0]["text"] == " Paris"
    assert abs(data["candidates"][0]["p_base"] - 0.77) < 0.03


# ----- faults -------------------------------------------------------------------------------
def test_killing_the_server_mid_generation(built: float, server_logs: Path) -> None:
    from tokentui.engine.models import bundled_gguf_path

    srv = LlamaCppPythonServer(bundled_gguf_path(), server_logs / "doomed.log")
    try:
        srv.start()
        backend = remote.from_options(base_url=srv.base_url, retries=2)
        session = Session(backend, PromptSpec(PROMPTS[2]), params=GREEDY)
        taken = []
        with pytest.raises(remote.ServerUnreachableError) as err:
            for step in session.generate(max_new_tokens=10):
                taken.append(step)
                if len(taken) == 3:
                    srv.stop()
        message = str(err.value)
        assert message.startswith("cannot reach the server at http://127.0.0.1:")
        assert "\n" not in message
        # The session is consistent: the three steps taken, nothing half-added.
        assert len(session.current) == 3 and session.current.ids == [s.token.id for s in taken]
        with pytest.raises(remote.ServerUnreachableError):
            session.peek()
        session.truncate(1)
        assert len(session.current) == 1
    finally:
        srv.stop()


def test_wrong_url_is_one_line() -> None:
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(remote.ServerUnreachableError) as err:
        remote.from_options(base_url=f"http://127.0.0.1:{port}/v1")
    assert time.monotonic() - t0 < 10  # bounded retries with backoff
    assert str(err.value) == (f"cannot reach the server at http://127.0.0.1:{port}: "
                              "connection refused (is the server running?)")


def test_wrong_url_in_the_cli_is_one_line() -> None:
    from typer.testing import CliRunner

    from tokentui.cli import app

    port = free_port()
    result = CliRunner().invoke(app, ["next", "hi", "--backend", "openai", "--base-url",
                                      f"http://127.0.0.1:{port}"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the server")


def test_server_without_logprobs_is_one_line() -> None:
    with FakeServer(_no_logprobs) as fake, pytest.raises(remote.NoLogprobsError) as err:
        remote.from_options(base_url=fake.base_url, tokenizer="bundled")
    message = str(err.value)
    assert message.startswith(f"the server at {fake.base_url} returned no log-probabilities")
    assert "\n" not in message


def test_token_id_prompts_and_transient_503s(tokenizer: Any) -> None:
    with FakeServer(_id_logprobs(tokenizer), fail_first=2) as fake:
        backend = remote.from_options(base_url=fake.base_url, tokenizer="bundled")
        assert backend.info.flavour == "openai" and backend.prompt_mode == "ids"
        session = Session(backend, PromptSpec("Capital of France?"), params=GREEDY)
        dist = session.peek()
    assert [c.text for c in dist.candidates[:2]] == [" Paris", " London"]
    assert math.isclose(dist.candidates[0].p_base, 0.6, rel_tol=1e-5)
    assert math.isclose(dist.other_mass, 0.1, abs_tol=1e-5)
    # p_final is computed within the returned top N: 0.6 / (0.6 + 0.3).
    assert dist.candidates[0].p_final == pytest.approx(0.6 / 0.9, rel=1e-5)
    assert sum(1 for r in fake.requests if r[1] == "/v1/completions") >= 4  # 2 x 503, then OK


def test_cancel_while_a_request_is_in_flight(tokenizer: Any) -> None:
    with FakeServer(_id_logprobs(tokenizer)) as fake:
        backend = remote.from_options(base_url=fake.base_url, tokenizer="bundled")
        fake.delay = 30.0
        outcome: list[BaseException] = []

        def run() -> None:
            try:
                backend.next_logits(encode_text(tokenizer, "Hello"))
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=run)
        t0 = time.monotonic()
        worker.start()
        time.sleep(0.3)
        backend.cancel()
        worker.join(timeout=5)
        assert not worker.is_alive() and time.monotonic() - t0 < 5
        assert isinstance(outcome[0], remote.RequestCancelledError)
        fake.delay = 0.0
        assert backend.next_logits(encode_text(tokenizer, "Hello")).logits_are_logprobs  # usable again


def test_api_key_is_sent_but_never_shown(monkeypatch: pytest.MonkeyPatch, tokenizer: Any) -> None:
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("TOKENTUI_TEST_KEY", secret)
    with FakeServer(_id_logprobs(tokenizer)) as fake:
        backend = remote.from_options(base_url=fake.base_url, api_key_env="TOKENTUI_TEST_KEY",
                                      tokenizer="bundled")
        assert fake.requests[0][2].get("Authorization") == f"Bearer {secret}"
        shown = " ".join([repr(backend), repr(backend.client), json.dumps(backend.capabilities.to_json()),
                          backend.capabilities.name, *backend.notes])
        assert secret not in shown
    with FakeServer(status=401) as fake, pytest.raises(remote.BackendError) as err:
        remote.from_options(base_url=fake.base_url.replace("http://", f"http://user:{secret}@"),
                            api_key_env="TOKENTUI_TEST_KEY", tokenizer="bundled")
    assert secret not in str(err.value) and "HTTP 401" in str(err.value)
    monkeypatch.delenv("TOKENTUI_TEST_KEY")
    with pytest.raises(remote.BackendError, match="TOKENTUI_TEST_KEY, which is not set"):
        remote.from_options(base_url="http://127.0.0.1:1", api_key_env="TOKENTUI_TEST_KEY")


def test_llama_cpp_native_and_chat_shapes_parse() -> None:
    """The two response shapes llama.cpp's server uses (ids and bytes come with each candidate)."""
    native = {"completion_probabilities": [{"id": 5, "token": " a", "logprob": -0.1, "top_logprobs": [
        {"id": 5, "token": " a", "bytes": [32, 97], "logprob": -0.1},
        {"id": 9, "token": "\ufffd", "bytes": [226], "logprob": -2.5}]}]}
    assert remote.parse_native(native, "x") == [(" a", 5, b" a", -0.1), ("\ufffd", 9, b"\xe2", -2.5)]
    chat = {"choices": [{"logprobs": {"content": [{"id": 5, "token": " a", "logprob": -0.1,
                                                   "top_logprobs": [{"id": 5, "token": " a",
                                                                     "logprob": -0.1}]}]}}]}
    assert remote.parse_openai(chat, "x") == [(" a", 5, None, -0.1)]
    with pytest.raises(remote.NoLogprobsError):
        remote.parse_native({"content": "a"}, "x")
