"""Scoring a text over servers: llama-cpp-python's real server (echo with logprobs), vLLM's
``prompt_logprobs`` shape from a small stdlib server, and llama.cpp's refusal in one line."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tokentui.engine.analysis.score import score_text
from tokentui.engine.backends import remote
from tokentui.engine.errors import CapabilityError
from tokentui.engine.prompts import encode_text

TEXT = "The capital of France is Paris. One, two, three, four, five."


@pytest.fixture
def server(llama_cpp_python_server):
    """The shared llama-cpp-python server (tests/conftest.py)."""
    return llama_cpp_python_server


def test_llama_cpp_python_is_refused_because_its_echo_is_one_token_off(server, real_backend,
                                                                       tokenizer) -> None:
    backend = remote.from_options(base_url=server.base_url)
    ids = encode_text(tokenizer, "The capital of France is Paris.")
    with pytest.raises(CapabilityError) as err:
        score_text(backend, ids)
    assert "cannot score a text" in str(err.value) and "\n" not in str(err.value)
    # Why: the server's own echo gives " of" (token 2) the probability read *after* it, and
    # lists the probability it has after "The capital" one row early.
    data = backend.client.post("/v1/completions", {
        "model": backend.info.model_id, "prompt": tokenizer.decode(ids), "max_tokens": 1,
        "echo": True, "logprobs": 5, "temperature": 1.0, "logit_bias": backend._end_bias()})
    lp = data["choices"][0]["logprobs"]
    assert lp["tokens"][:3] == ["The", " capital", " of"]
    local = score_text(real_backend, ids).tokens[2]
    assert local.text == " of" and local.p > 0.3
    assert math.exp(lp["top_logprobs"][1][" of"]) == pytest.approx(local.p, abs=0.06)  # one row early
    assert math.exp(lp["token_logprobs"][2]) < local.p / 100  # the row after the token


class VllmLike:
    """A real HTTP server on 127.0.0.1 answering as vLLM does (discovery, tokenize, logprobs)."""

    def __init__(self, tokenizer: Any, *, prompt_logprobs: bool = True, owner: str = "vllm") -> None:
        outer = self
        self.bodies: list[Any] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path != "/v1/models":
                    return self.send_error(404)
                self._send({"data": [{"id": "smol", "owned_by": owner, "max_model_len": 2048}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                if self.path != "/v1/completions" and not (self.path == "/tokenize" and owner == "vllm"):
                    return self.send_error(404)
                if self.path == "/tokenize":
                    return self._send({"tokens": encode_text(tokenizer, body["prompt"])})
                ids = body["prompt"]
                tops = {f"token_id:{ids[-1]}": -0.5, f"token_id:{ids[0]}": -1.5}
                answer: dict[str, Any] = {"choices": [{"text": "x", "logprobs": {
                    "tokens": ["x"], "token_logprobs": [-0.5], "top_logprobs": [tops]}}]}
                if body.get("prompt_logprobs") and prompt_logprobs:
                    rows: list[Any] = [None]
                    for pos in range(1, len(ids)):  # top 2 are ids 10 and 11; the actual one too
                        row = {"10": {"logprob": -0.3, "rank": 1}, "11": {"logprob": -1.9, "rank": 2}}
                        if ids[pos] not in (10, 11):
                            row[str(ids[pos])] = {"logprob": -4.0 - pos / 10, "rank": 100 + pos}
                        rows.append(row)
                    answer["choices"][0]["prompt_logprobs"] = rows
                if body.get("echo"):  # OpenAI's legacy shape: row i is the distribution before token i
                    tokens = [f"token_id:{i}" for i in ids] + ["token_id:10"]
                    token_lps: list[Any] = [None]
                    top_rows: list[Any] = [None]
                    for pos in range(1, len(ids)):
                        token_lps.append(-4.0 - pos / 10)
                        top_rows.append({"token_id:10": -0.3, "token_id:11": -1.9,
                                         f"token_id:{ids[pos]}": -4.0 - pos / 10})
                    token_lps.append(-0.3)
                    top_rows.append({"token_id:10": -0.3})
                    answer = {"choices": [{"text": "x", "logprobs": {
                        "tokens": tokens, "token_logprobs": token_lps, "top_logprobs": top_rows}}]}
                return self._send(answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> VllmLike:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_vllm_prompt_logprobs_are_read_with_their_ranks(tokenizer) -> None:
    ids = encode_text(tokenizer, "One two three")
    with VllmLike(tokenizer) as fake:
        backend = remote.from_options(base_url=fake.base_url, tokenizer="bundled")
        assert backend.info.flavour == "vllm"
        result = score_text(backend, ids, top_n=2)
        sent = fake.bodies[-1]
    assert sent["prompt"] == ids and sent["prompt_logprobs"] == 2 and sent["max_tokens"] == 1
    assert result.tokens[0].p is None
    for tok in result.tokens[1:]:
        assert tok.p == pytest.approx(math.exp(-4.0 - tok.position / 10))
        assert tok.rank == 100 + tok.position and tok.entropy_bits is None
        assert [c.id for c in tok.top] == [10, 11]
        assert tok.top[0].p_base == pytest.approx(math.exp(-0.3))


def test_other_servers_score_through_echo(tokenizer) -> None:
    ids = encode_text(tokenizer, "One two three")
    with VllmLike(tokenizer, owner="sglang") as fake:
        backend = remote.from_options(base_url=fake.base_url, tokenizer="bundled")
        assert backend.info.flavour == "openai" and backend.prompt_mode == "ids"
        result = score_text(backend, ids, top_n=2)
        sent = fake.bodies[-1]
    assert sent["echo"] is True and sent["prompt"] == ids and sent["logprobs"] == 2
    assert result.top_n_only and result.tokens[0].p is None
    for tok in result.tokens[1:]:
        assert tok.p == pytest.approx(math.exp(-4.0 - tok.position / 10))
        assert tok.rank is None and [c.id for c in tok.top] == [10, 11]  # beyond the top 2


def test_a_server_without_prompt_logprobs_is_one_line(tokenizer) -> None:
    with VllmLike(tokenizer, prompt_logprobs=False) as fake:
        backend = remote.from_options(base_url=fake.base_url, tokenizer="bundled")
        with pytest.raises(CapabilityError) as err:
            score_text(backend, encode_text(tokenizer, "One two three"))
    assert "cannot score a text" in str(err.value) and "\n" not in str(err.value)


def test_llama_cpp_native_server_says_it_cannot_score(tokenizer, tmp_path: Path) -> None:
    info = remote.ServerInfo("llama.cpp", "smol", max_context=2048, tokenize_path="/tokenize")
    from tokentui.engine.backends.http_client import JsonClient

    backend = remote.RemoteBackend(JsonClient("http://127.0.0.1:9"), tokenizer, info)
    with pytest.raises(CapabilityError) as err:
        score_text(backend, encode_text(tokenizer, "One two three"))
    assert str(err.value).startswith("the llama.cpp server at") and "cannot score a text" in str(err.value)
