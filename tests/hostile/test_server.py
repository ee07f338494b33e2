"""A server's words are data: real HTTP servers on 127.0.0.1 that misbehave."""

from __future__ import annotations

import math
import time

import pytest

from tokentui.engine.backends import remote
from tokentui.engine.backends.http_client import BackendError, JsonClient, ServerTimeoutError

from .conftest import HOSTILE, BadServer, one_error_line, send

pytestmark = pytest.mark.hostile
SECRET = "sk-hostile-0123456789abcdef"


def _models(model_id="fake-model", **extra):
    return {"object": "list", "data": [{"id": model_id, "object": "model", "owned_by": "x", **extra}]}


def _openai_answer(req, logprob=-0.5):
    tops = {"token_id:1": logprob, "token_id:2": logprob}
    send(req, 200, {"choices": [{"index": 0, "text": "a", "logprobs": {
        "tokens": ["token_id:1"], "token_logprobs": [logprob], "top_logprobs": [tops]}}]})


def _server(models=None, completions=None, status=None):
    def handle(req):
        if status is not None:
            return status(req)
        if req.path == "/v1/models":
            return send(req, 200, models if models is not None else _models())
        if req.path == "/v1/completions":
            return completions(req) if completions else _openai_answer(req)
        return send(req, 404, {"detail": "Not Found"})
    return BadServer(handle)


def _next(cli, server, *extra):
    return cli("next", "Hi", "--backend", "openai", "--base-url", server.base_url,
               "--tokenizer", "bundled", *extra)


def test_a_500_body_with_escapes_is_printed_inert(cli):
    with _server(status=lambda req: send(req, 500, {"error": {"message": HOSTILE}})) as srv:
        r = _next(cli, srv)
    assert r.rc == 2
    assert "HTTP 500" in one_error_line(r.err)


def test_a_served_model_id_with_escapes_is_printed_inert(cli):
    with _server(models=_models(HOSTILE)) as srv:
        r = _next(cli, srv, "--served-model", "other")
    assert r.rc == 2
    assert "\\x1b]2;PWNED" in one_error_line(r.err)


def test_a_401_that_echoes_the_key_never_prints_it(cli, monkeypatch):
    monkeypatch.setenv("TOKENTUI_HOSTILE_KEY", SECRET)

    def echo_auth(req):
        send(req, 401, {"error": {"message": f"bad key: {req.headers.get('Authorization')}"}})

    for status in (echo_auth, lambda req: send(req, 500, {"detail": req.headers.get("Authorization")})):
        with _server(status=status) as srv:
            r = _next(cli, srv, "--api-key-env", "TOKENTUI_HOSTILE_KEY")
            assert srv.seen and srv.seen[0]["Authorization"] == f"Bearer {SECRET}"  # it was sent
        assert r.rc == 2
        one_error_line(r.err)
        assert SECRET.encode() not in r.err + r.out
    client = JsonClient("http://127.0.0.1:1", api_key=SECRET)
    with _server(status=echo_auth) as srv:
        client = JsonClient(srv.base_url, api_key=SECRET, retries=0)
        with pytest.raises(BackendError) as err:
            client.get("/v1/models")
    assert SECRET not in str(err.value) and "[redacted]" in str(err.value)


@pytest.mark.parametrize("completions", [
    lambda req: _openai_answer(req, logprob="-0.5"),                       # a string logprob
    lambda req: send(req, 200, {"choices": {"0": "x"}}),                   # choices not a list
    lambda req: send(req, 200, {"choices": [{"logprobs": {"top_logprobs": [[1, 2]]}}]}),
    lambda req: send(req, 200, {"choices": [{"logprobs": {"content": "nope"}}]}),
    lambda req: send(req, 200, {"choices": [{"logprobs": ["x"]}]}),
])
def test_answers_of_the_wrong_shape_are_one_line(cli, completions):
    with _server(completions=completions) as srv:
        r = _next(cli, srv)
    assert r.rc == 2, r
    assert "the server at" in one_error_line(r.err)


@pytest.mark.parametrize("models", [
    {"data": "fake-model"}, {"data": [1, 2]}, {"data": [{"id": 5}]}, [1, 2, 3],
])
def test_model_lists_of_the_wrong_shape_are_one_line(cli, models):
    with _server(models=models) as srv:
        r = _next(cli, srv)
    assert r.rc == 2, r
    one_error_line(r.err)


def test_a_non_numeric_max_model_len_is_ignored(tokenizer):
    with _server(models={"object": "list", "data": [
            {"id": "m", "owned_by": "vllm", "max_model_len": "lots"}]},
            completions=lambda req: _openai_answer(req)) as srv:
        info = remote.discover(JsonClient(srv.base_url))
    assert info.max_context is None


def test_all_nan_logprobs_do_not_blame_the_tokenizer(cli):
    with _server(completions=lambda req: send(req, 200, None, raw=(
            b'{"choices":[{"logprobs":{"top_logprobs":[{"token_id:1":NaN,"token_id:2":NaN}]}}]}'))) as srv:
        r = _next(cli, srv)
    assert r.rc == 2
    line = one_error_line(r.err)
    assert "NaN" in line and "--tokenizer" not in line and "local tokenizer" not in line


def test_a_huge_body_is_capped():
    def huge(req):
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Connection", "close")
        req.end_headers()
        chunk = b"[" * (1024 * 1024)
        try:
            for _ in range(300):
                req.wfile.write(chunk)
        except OSError:
            pass  # the client hung up: what we want

    with _server(status=huge) as srv:
        client = JsonClient(srv.base_url, retries=0, max_body=8 * 1024 * 1024)
        t0 = time.monotonic()
        with pytest.raises(BackendError, match="more than the 8 MiB"):
            client.get("/v1/models")
        assert time.monotonic() - t0 < 30
    deep = b"[" * 5000 + b"]" * 5000
    with _server(status=lambda req: send(req, 200, None, raw=deep)) as srv, \
            pytest.raises(BackendError, match="did not answer with JSON"):
        JsonClient(srv.base_url, retries=0).get("/v1/models")


def test_a_server_that_trickles_meets_a_total_deadline():
    def trickle(req):
        req.send_response(200)
        req.send_header("Content-Length", "1000")
        req.end_headers()
        try:
            for _ in range(1000):
                req.wfile.write(b" ")
                req.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass

    with _server(status=trickle) as srv:
        client = JsonClient(srv.base_url, retries=0, timeout=2.0)  # each byte comes well within 2 s
        t0 = time.monotonic()
        with pytest.raises(ServerTimeoutError, match="within 2 s"):
            client.get("/v1/models")
        assert time.monotonic() - t0 < 6
    assert math.isfinite(t0)
