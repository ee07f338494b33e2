"""An inference server as a backend: top-N log-probabilities over HTTP.

A model too big for this machine already runs behind a server (vLLM with tensor
parallelism, llama.cpp's ``llama-server``, llama-cpp-python, TGI, SGLang). Each step is
one request for one token (``max_tokens=1``) with the top-N log-probabilities and
neutral sampling settings, so what comes back is the model's raw distribution over
its N most likely tokens. Servers cache shared prefixes, so a branch or a rewind costs
one request, like a step.

- llama.cpp's server: its native ``/completion`` endpoint with token-id prompts and
  ``n_probs`` (ids come back with every candidate: nothing to guess). Fastest path.
- vLLM, SGLang and other OpenAI-compatible servers: ``/v1/completions`` with token-id
  prompts (vLLM is asked for ``token_id:N`` names).
- llama-cpp-python's server takes text prompts only: the ids are decoded to text and
  the server tokenises again; each step checks through ``/extras/tokenize`` that it got
  the same ids back and records a note when it did not.

Attention, hidden states and gradients never leave a server: the capabilities say so
and the views that need them are greyed, never faked.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import numpy as np
import torch

from tokentui.engine.backends.base import BackendOutput, Capabilities
from tokentui.engine.backends.http_client import (
    BackendError,
    HTTPStatusError,
    JsonClient,
    RequestCancelledError,
    ServerTimeoutError,
    ServerUnreachableError,
)
from tokentui.engine.backends.token_map import TokenMap
from tokentui.engine.errors import ContextOverflowError, ModelLoadError
from tokentui.visible import one_line

__all__ = [
    "BackendError", "ModelMismatchError", "NoLogprobsError", "RemoteBackend",
    "RequestCancelledError", "ServerInfo", "ServerTimeoutError", "ServerUnreachableError",
    "from_options",
]

DEFAULT_TOP_N = 20
REASON = ("a remote server returns only its top-N log-probabilities and tokenization: attention, "
          "hidden states, attribution and the logit lens need the weights in this process "
          "(--backend local)")
LABELS = {"llama.cpp": "llama.cpp server", "llama-cpp-python": "llama-cpp-python server",
          "vllm": "vLLM", "openai": "OpenAI-compatible server"}
PROBE_TEXT = "Hello, world! 12 apples, naïve café."

Entry = tuple[str | None, int | None, bytes | None, float]
"""One returned candidate: its string, id and bytes (each when the server gives it), logprob."""


class NoLogprobsError(BackendError):
    """The server answered but gave no log-probabilities."""


class ModelMismatchError(BackendError):
    """The server serves another model than the one expected (name or tokenizer)."""


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What discovery learnt about a server."""

    flavour: str
    """``llama.cpp``, ``llama-cpp-python``, ``vllm`` or ``openai`` (anything else)."""
    model_id: str
    models: tuple[str, ...] = ()
    n_vocab: int | None = None
    max_context: int | None = None
    tokenize_path: str | None = None
    """``/tokenize`` (llama.cpp, vLLM) or ``/extras/tokenize`` (llama-cpp-python), if any."""

    @property
    def label(self) -> str:
        return LABELS.get(self.flavour, self.flavour)

    @property
    def display_id(self) -> str:
        """The served model id as it may be printed (a server's words are never shown raw)."""
        from tokentui.visible import one_line

        return one_line(self.model_id)

    @property
    def model_name(self) -> str:
        """The served model's name, a path shortened to its file name (terminal-safe)."""
        from tokentui.visible import one_line

        return one_line(PurePath(self.model_id).name if "/" in self.model_id and (
            self.model_id.startswith(("/", ".", "~")) or self.model_id.endswith(".gguf")
        ) else self.model_id)


class RemoteBackend:
    """Next-token top-N log-probabilities from an inference server."""

    def __init__(self, client: JsonClient, tokenizer: Any, info: ServerInfo, *,
                 top_n: int = DEFAULT_TOP_N, prompt_mode: str | None = None) -> None:
        self.client = client
        self.tokenizer = tokenizer
        self.info = info
        self.top_n = top_n
        self.native = info.flavour == "llama.cpp"
        """llama.cpp's own ``/completion`` endpoint instead of ``/v1/completions``."""
        self.prompt_mode = prompt_mode or ("text" if info.flavour == "llama-cpp-python" else "ids")
        """``ids`` (token ids sent as they are) or ``text`` (decoded; the server retokenises)."""
        tok_len = len(tokenizer) if hasattr(tokenizer, "__len__") else 0
        self.vocab_size = max(tok_len, info.n_vocab or 0)
        eos = getattr(tokenizer, "eos_token_id", None)
        eos_list = eos if isinstance(eos, list | tuple) else [eos]
        self.eos_token_ids = frozenset(int(e) for e in eos_list if e is not None)
        self.bos_token_id: int | None = getattr(tokenizer, "bos_token_id", None)
        self.token_map = TokenMap(tokenizer, self.vocab_size, priority_ids=sorted(self.eos_token_ids))
        self.lock = threading.RLock()
        self.notes: list[str] = []
        """Things the user should know about this backend's numbers (each said once)."""
        self.requests = 0
        self.retokenized_steps = 0
        """Text prompts the server tokenised differently from the ids they came from."""
        self.unmapped = 0
        """Returned candidates no local token matched (their mass is left in "other")."""
        self._bias: dict[str, float] | None = None
        self.last_timings: dict[str, Any] | None = None
        """llama.cpp's ``timings`` for the last native request: ``prompt_n`` prompt tokens it
        evaluated, ``cache_n`` it took from its prompt cache (None for other servers)."""
        self.last_overhead_ms = 0.0
        """tokentui's own time in the last step: the step minus the HTTP round trips."""
        self._update_capabilities()

    def _update_capabilities(self) -> None:
        self.capabilities = Capabilities(
            name=f"{self.info.label} · {self.info.model_name}", full_vocab=False, attention=False,
            hidden_states=False, gradients=False, tokenizer=True,
            max_context=self.info.max_context, top_n=self.top_n, reason=REASON)

    def __repr__(self) -> str:
        return f"RemoteBackend({self.client.display_url!r}, {self.info.model_id!r})"

    # ----- the Backend protocol --------------------------------------------------------
    def reset(self) -> None:
        """Nothing is cached here: the server keeps its own prefix cache."""

    def cancel(self) -> None:
        """Abort the request in flight (from any thread); the step raises RequestCancelledError."""
        self.client.cancel()

    def close(self) -> None:
        self.client.close()

    loaded = None
    """No local model: a server's weights are out of reach."""
    model = None
    device = torch.device("cpu")

    def check_length(self, n: int) -> None:
        limit = self.info.max_context
        if limit is not None and n > limit:
            raise ContextOverflowError(f"the sequence has {n} tokens but the server's context is {limit}")

    def attention_matrix(self, ids: Sequence[int]) -> torch.Tensor:
        from tokentui.engine.errors import CapabilityError

        raise CapabilityError(f"attention unavailable: {self.capabilities.why_not('attention')}")

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def read_ahead(self, ids: Sequence[int], start: int) -> bool:
        """A server answers one prefix per request: nothing to read ahead."""
        return False

    def next_logits(self, ids: Sequence[int], *, attention: bool = False,
                    hidden_states: bool = False) -> BackendOutput:
        """``(vocab,)`` log-probabilities: the top N at their ids, ``-inf`` elsewhere.

        ``attention`` and ``hidden_states`` cannot be had from a server: they stay None.
        """
        ids = [int(i) for i in ids]
        if not ids:
            raise ValueError("next_logits needs at least one token")
        limit = self.info.max_context
        if limit is not None and len(ids) >= limit:
            raise ContextOverflowError(
                f"the sequence has {len(ids)} tokens but the server's context is {limit}")
        with self.lock:
            t0 = time.perf_counter()
            entries, http_ms, retokenized = self._entries(ids)
            if entries and not any(math.isfinite(e[3]) or e[3] == -math.inf for e in entries):
                raise BackendError(
                    f"the server at {self.client.display_url} returned log-probabilities that are all "
                    "NaN or +inf (a broken model or server, not a tokenizer mismatch)")
            entries = [e for e in entries if not math.isnan(e[3])]
            seen: set[int] = set()
            index: list[int] = []
            values: list[float] = []
            # Best first, and only N: llama-cpp-python adds the sampled token when it lies
            # outside the top N, which would make the support depend on a random draw.
            entries = sorted(entries, key=lambda e: -e[3])
            for text, tid, raw, logprob in entries:
                if len(index) == self.top_n:
                    break
                found = self.token_map.lookup(text, token_id=tid, raw=raw)
                if found is None or found >= self.vocab_size:
                    self.unmapped += 1
                    continue
                if found in seen or not math.isfinite(logprob):
                    continue
                seen.add(found)
                index.append(found)
                values.append(min(0.0, logprob))
            if not index:
                raise ModelMismatchError(
                    f"none of the tokens the server at {self.client.display_url} returned is in the "
                    "local tokenizer's vocabulary: pass --tokenizer with the served model's tokenizer")
            # numpy, not torch.full: torch's thread pool costs milliseconds on a busy CPU.
            scores = np.full(self.vocab_size, -np.inf, dtype=np.float32)
            scores[index] = values
            logits = torch.from_numpy(scores)
            self.requests += 1
            self.last_overhead_ms = (time.perf_counter() - t0) * 1000.0 - http_ms
            extra: dict[str, Any] = {"top_n": len(index), "http_ms": http_ms}
            if retokenized:
                extra["retokenized"] = True
            return BackendOutput(logits=logits, logits_are_logprobs=True, extra=extra)

    # ----- requests ----------------------------------------------------------------------
    def _entries(self, ids: list[int]) -> tuple[list[Entry], float, bool]:
        """The returned candidates of one request, the HTTP time, and whether text retokenised."""
        if self.native:
            data = self._post("/completion", self._native_body(ids))
            timings = data.get("timings") if isinstance(data, dict) else None
            self.last_timings = timings if isinstance(timings, dict) else None
            return parse_native(data, self.client.display_url), self.client.last_request_ms, False
        http_ms = 0.0
        retokenized = False
        if self.prompt_mode == "ids":
            prompt: Any = ids
        else:
            prompt = self.tokenizer.decode(ids, skip_special_tokens=False,
                                           clean_up_tokenization_spaces=False)
            if self.info.tokenize_path:
                back = self.server_tokenize(prompt)
                http_ms += self.client.last_request_ms
                if back != ids:
                    retokenized = True
                    self.retokenized_steps += 1
                    self.note("text prompts: the server tokenised the text differently from the ids it "
                              "came from, so some distributions are for its own tokenisation")
        body = self._openai_body(prompt)
        data = self._post("/v1/completions", body)
        http_ms += self.client.last_request_ms
        if _stopped_empty(data) and "logit_bias" not in body:
            # The one sampled token ended the text and took the log-probabilities with it:
            # ask again with the end tokens barred from sampling (the log-probabilities stay raw).
            data = self._post("/v1/completions", {**body, "logit_bias": self._end_bias()})
            http_ms += self.client.last_request_ms
        return parse_openai(data, self.client.display_url), http_ms, retokenized

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            return self.client.post(path, body)
        except HTTPStatusError as exc:
            lowered = exc.detail.lower()
            if "context" in lowered and any(w in lowered for w in ("exceed", "maximum", "length")):
                raise ContextOverflowError(
                    f"the server at {self.client.display_url} refused the sequence: {exc.detail}"
                ) from None
            raise

    def _native_body(self, ids: list[int]) -> dict[str, Any]:
        return {"prompt": ids, "n_predict": 1, "n_probs": self.top_n, "cache_prompt": True,
                "post_sampling_probs": False, "temperature": 1.0, "top_k": 0, "top_p": 1.0,
                "min_p": 0.0, "repeat_penalty": 1.0, "seed": 0, "stream": False}

    def _openai_body(self, prompt: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.info.model_id, "prompt": prompt, "max_tokens": 1, "logprobs": self.top_n,
            "temperature": 1.0, "top_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
            "seed": 0, "echo": False, "stream": False,
        }
        if self.info.flavour == "vllm":
            body.update(return_tokens_as_token_ids=True, repetition_penalty=1.0, min_p=0.0)
        elif self.info.flavour in ("llama.cpp", "llama-cpp-python"):
            body.update(top_k=0, min_p=0.0, repeat_penalty=1.0)
        if self.info.flavour == "llama-cpp-python":
            # It drops the log-probabilities when the sampled token ends the text; barring the
            # end tokens from sampling changes only the (ignored) sample: its logprobs are raw.
            body["logit_bias"] = self._end_bias()
        return body

    def _end_bias(self) -> dict[str, float]:
        """``logit_bias`` that keeps every end-of-sequence and special token from being sampled."""
        if self._bias is None:
            ids = set(self.eos_token_ids) | {int(i) for i in getattr(self.tokenizer, "all_special_ids", [])}
            self._bias = {str(i): -100.0 for i in sorted(ids)}
        return self._bias

    def server_tokenize(self, text: str) -> list[int]:
        """The server's own token ids for ``text`` (special tokens parsed, BOS left out)."""
        path = self.info.tokenize_path
        if path is None:
            raise BackendError(f"the server at {self.client.display_url} has no tokenize endpoint")
        if self.info.flavour == "vllm":
            body: dict[str, Any] = {"model": self.info.model_id, "prompt": text,
                                    "add_special_tokens": False}
        elif path == "/extras/tokenize":
            body = {"input": text}
        else:
            body = {"content": text, "add_special": False, "parse_special": True}
        tokens = [int(t if isinstance(t, int) else t["id"]) for t in self.client.post(path, body)["tokens"]]
        if tokens and self.bos_token_id is not None and tokens[0] == self.bos_token_id and not (
                text.startswith(str(getattr(self.tokenizer, "bos_token", "") or "\0"))):
            tokens = tokens[1:]
        return tokens

    # ----- connecting --------------------------------------------------------------------
    def check(self) -> None:
        """Check the tokenizer against the server's and make one real request.

        Learns whether the server takes token-id prompts (else text) and how many
        log-probabilities it allows; raises a one-line error for a server that returns
        none or a tokenizer that is not the model's.
        """
        from tokentui.engine.prompts import encode_text

        probe = encode_text(self.tokenizer, PROBE_TEXT)
        if self.info.tokenize_path:
            theirs = self.server_tokenize(PROBE_TEXT)
            if theirs != probe:
                raise ModelMismatchError(
                    f"the local tokenizer does not match the model at {self.client.display_url} "
                    f"({len(probe)} vs {len(theirs)} tokens for a test sentence): pass --tokenizer "
                    "with the served model's tokenizer")
        try:
            self.next_logits(probe)
        except HTTPStatusError as exc:
            if exc.status in (400, 422) and "logprob" in exc.detail.lower():
                self.top_n = min(self.top_n, _allowed_logprobs(exc.detail) or 5)
                self._update_capabilities()
                self.note(f"the server allows {self.top_n} log-probabilities per step")
                self.next_logits(probe)
            elif self.prompt_mode == "ids" and not self.native and exc.status in (400, 422, 500):
                self.prompt_mode = "text"
                self.note("the server refused token-id prompts: prefixes are sent as text and "
                          "retokenised by the server")
                self.next_logits(probe)
            else:
                raise
        self.requests = 0


def _allowed_logprobs(detail: str) -> int | None:
    """The cap a server names in its refusal ("... max allowed: 5"), if any."""
    import re

    numbers = [int(n) for n in re.findall(r"\b(\d+)\b", detail)]
    return min(numbers) if numbers else None


def _no_logprobs(where: str) -> NoLogprobsError:
    return NoLogprobsError(
        f"the server at {where} returned no log-probabilities: tokentui needs a server that honours "
        "`logprobs` (vLLM: --max-logprobs 20; llama-cpp-python: logits_all)")


class _Shape(ValueError):
    """A server answer of an unexpected shape (caught and turned into one BackendError line)."""


def _logprob(v: Any) -> float:
    """A log-probability from a server: a number (or null for -inf); anything else is refused."""
    if v is None:
        return -math.inf
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Shape(f"a logprob is {type(v).__name__}, not a number")
    return float(v)


def _entry(e: Any, text_key: str = "token") -> Entry:
    if not isinstance(e, dict):
        raise _Shape(f"a candidate is {type(e).__name__}, not an object")
    raw = e.get("bytes")
    text = e.get(text_key)
    tid = e.get("id")
    if text is not None and not isinstance(text, str):
        raise _Shape("a candidate's token is not text")
    if tid is not None and (isinstance(tid, bool) or not isinstance(tid, int)):
        raise _Shape("a candidate's id is not an integer")
    if isinstance(raw, list) and not all(isinstance(b, int) and 0 <= b < 256 for b in raw):
        raise _Shape("a candidate's bytes are not bytes")
    return (text, tid, bytes(raw) if isinstance(raw, list) else None, _logprob(e.get("logprob")))


def _shaped(parse: Any) -> Any:
    """Turn a server answer of the wrong shape into one BackendError line (no traceback)."""
    import functools

    @functools.wraps(parse)
    def wrapper(data: Any, where: str) -> list[Entry]:
        try:
            return parse(data, where)
        except BackendError:
            raise
        except RecursionError:
            raise BackendError(f"the server at {where} answered JSON nested too deeply") from None
        except (_Shape, KeyError, IndexError, TypeError, AttributeError, ValueError, OverflowError) as exc:
            detail = str(exc) if isinstance(exc, _Shape) else "an unexpected structure"
            raise BackendError(f"the server at {where} answered in a shape tokentui cannot read "
                               f"({detail})") from None
    return wrapper


@_shaped
def parse_native(data: Any, where: str) -> list[Entry]:
    """Candidates from llama.cpp's ``/completion`` (``completion_probabilities``)."""
    probs = data.get("completion_probabilities") if isinstance(data, dict) else None
    if not probs:
        raise _no_logprobs(where)
    first = probs[0]
    if "top_logprobs" in first:
        return [_entry(e) for e in first["top_logprobs"]]
    if "probs" in first:  # llama.cpp before late 2024: probabilities, not logprobs
        return [(e.get("tok_str"), e.get("id"), None, math.log(_logprob(e["prob"])))
                for e in first["probs"] if e.get("prob")]
    raise _no_logprobs(where)


@_shaped
def parse_openai(data: Any, where: str) -> list[Entry]:
    """Candidates from ``/v1/completions``: legacy ``top_logprobs`` dicts or the ``content`` list."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices:
        raise BackendError(f"the server at {where} answered without choices (not a completions API?)")
    lp = choices[0].get("logprobs")
    if not lp:
        raise _no_logprobs(where)
    if lp.get("content"):  # llama.cpp's server and chat-style shapes
        return [_entry(e) for e in lp["content"][0].get("top_logprobs") or []] or _raise(where)
    tops = lp.get("top_logprobs")
    if not tops or not tops[0]:
        raise _no_logprobs(where)
    first = tops[0]
    if isinstance(first, dict):
        return [(str(k), None, None, _logprob(v)) for k, v in first.items()]
    return [_entry(e) for e in first]


def _stopped_empty(data: Any) -> bool:
    """A completion that stopped at once and so carries no log-probabilities."""
    try:
        choice = data["choices"][0]
        lp = choice.get("logprobs") or {}
        return choice.get("finish_reason") == "stop" and not (lp.get("top_logprobs") or lp.get("content"))
    except (KeyError, IndexError, TypeError, AttributeError):
        return False


def _raise(where: str) -> list[Entry]:
    raise _no_logprobs(where)


# ----- discovery --------------------------------------------------------------------------
def discover(client: JsonClient, served_model: str | None = None) -> ServerInfo:
    """Ask the server what it serves and what kind of server it is."""
    try:
        listing = client.get("/v1/models")
    except HTTPStatusError as exc:
        if exc.status in (401, 403):
            raise BackendError(f"the server at {client.display_url} refused the request (HTTP "
                               f"{exc.status}): check the key named by --api-key-env") from None
        raise BackendError(f"no OpenAI-compatible API at {client.display_url}: GET /v1/models "
                           f"answered HTTP {exc.status}") from None
    data = listing.get("data") if isinstance(listing, dict) else None
    if not data:
        raise BackendError(f"the server at {client.display_url} lists no models at /v1/models")
    if not isinstance(data, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str)
                                             for m in data):
        raise BackendError(f"the server at {client.display_url} answered /v1/models in a shape "
                           "tokentui cannot read (a list of objects with an \"id\" was expected)")
    ids = tuple(m["id"] for m in data)
    if served_model is not None and served_model not in ids:
        served = ", ".join(map(one_line, ids))
        raise ModelMismatchError(f"the server at {client.display_url} serves {served}, "
                                 f"not {served_model!r}")
    model = data[ids.index(served_model)] if served_model is not None else data[0]
    owner = str(model.get("owned_by", "")).lower()
    meta = model.get("meta") or {}
    if owner == "vllm":
        return ServerInfo("vllm", model["id"], ids, max_context=_count(model.get("max_model_len")),
                          tokenize_path="/tokenize")
    props = _optional(client, "GET", "/props")
    if not isinstance(meta, dict):
        meta = {}
    if owner == "llamacpp" or (isinstance(props, dict) and "default_generation_settings" in props):
        props = props if isinstance(props, dict) else {}
        settings = props.get("default_generation_settings")
        settings = settings if isinstance(settings, dict) else {}
        n_ctx = _count(settings.get("n_ctx")) or _count(props.get("n_ctx")) or _count(meta.get("n_ctx_train"))
        return ServerInfo("llama.cpp", model["id"], ids, n_vocab=_count(meta.get("n_vocab")),
                          max_context=n_ctx, tokenize_path="/tokenize")
    if _optional(client, "POST", "/extras/tokenize", {"input": "a"}) is not None:
        return ServerInfo("llama-cpp-python", model["id"], ids, tokenize_path="/extras/tokenize")
    return ServerInfo("openai", model["id"], ids, max_context=_count(model.get("max_model_len")))


def _count(v: Any) -> int | None:
    """A positive integer a server reports (a context length, a vocabulary size), else None:
    a string, a float or a negative number is ignored, not trusted."""
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        return None
    return v


def _optional(client: JsonClient, method: str, path: str, body: Any = None) -> Any:
    """The answer to a probe, or None when the server does not have that endpoint."""
    try:
        return client.request(method, path, body, retry=False)
    except (HTTPStatusError, BackendError) as exc:
        if isinstance(exc, ServerUnreachableError | ServerTimeoutError):
            raise
        return None


_TOKENIZERS: dict[str, Any] = {}
"""Tokenizers already loaded in this process (reconnecting should not reload one)."""


def resolve_tokenizer(spec: str | None, info: ServerInfo) -> Any:
    """``--tokenizer``, else the served model's own name when it is a local path or cached hub id."""
    from tokentui.engine import models

    name = spec or info.model_id
    try:
        if name not in _TOKENIZERS:
            _TOKENIZERS[name] = models.load_tokenizer(name, light=False)
        return _TOKENIZERS[name]
    except ModelLoadError as exc:
        if spec:
            raise
        raise BackendError(f"no local tokenizer for the served model {info.display_id!r} ({exc}): "
                           "pass --tokenizer with its hub id or folder") from None


def from_options(*, base_url: str | None, served_model: str | None = None,
                 api_key_env: str | None = None, tokenizer: str | None = None,
                 top_n: int = DEFAULT_TOP_N, timeout: float = 60.0, retries: int = 3) -> RemoteBackend:
    """Connect to the server the CLI options name, check it, and return the backend."""
    if not base_url:
        raise BackendError("--backend openai needs --base-url, e.g. http://127.0.0.1:8080")
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise BackendError(f"--api-key-env names {api_key_env}, which is not set")
    root = base_url.rstrip("/")
    if root.endswith("/v1"):
        root = root[:-3]
    client = JsonClient(root, api_key=api_key, timeout=timeout, retries=retries)
    info = discover(client, served_model)
    backend = RemoteBackend(client, resolve_tokenizer(tokenizer, info), info, top_n=top_n)
    backend.check()
    return backend


# ----- scoring a given text (prompt log-probabilities) ---------------------------------------
ScoreRow = tuple[float, float | None, int | None, float | None, list[tuple[int, float, float]]]
"""One scored position, as ``analysis.score`` reads it: log p of the actual token, its logit
(None: a server gives none), its rank (None beyond the top N), the entropy (None: unknown from a
top N) and the top N as ``(id, log p, logit)`` (the logit NaN), best first."""


def prompt_logprobs(backend: RemoteBackend, ids: Sequence[int], first: int, top_n: int) -> list[ScoreRow]:
    """Rows for positions ``first .. len(ids) - 1`` of ``ids``, from one request.

    - vLLM: ``prompt_logprobs`` (token ids as keys, each with its true rank);
    - other OpenAI-compatible servers (SGLang and the like): ``echo`` with ``logprobs`` on
      ``/v1/completions`` (the legacy shape: the actual token's log-probability, and a rank
      only when it is in the top N);
    - llama.cpp's own server gives no prompt probabilities, and llama-cpp-python's echoed ones
      are shifted by a token (checked against its real server in the tests): one
      CapabilityError line each.
    """
    from tokentui.engine.errors import CapabilityError

    ids = [int(i) for i in ids]
    n = max(1, min(top_n, backend.top_n))
    where = backend.client.display_url
    if backend.native:
        raise CapabilityError(
            f"the llama.cpp server at {where} cannot score a text: its API returns no "
            "log-probabilities for the prompt (use --backend local, or a vLLM or SGLang server)")
    if backend.info.flavour == "llama-cpp-python":
        raise CapabilityError(
            f"the llama-cpp-python server at {where} cannot score a text: its echoed prompt "
            "log-probabilities are one token off (each token is read against the distribution "
            "after it), so tokentui does not use them (use --backend local with the same model)")
    limit = backend.info.max_context
    if limit is not None and len(ids) > limit:
        raise ContextOverflowError(f"the text has {len(ids)} tokens but the server's context is {limit}")
    with backend.lock:
        if backend.info.flavour == "vllm":
            body = {"model": backend.info.model_id, "prompt": ids, "max_tokens": 1,
                    "prompt_logprobs": n, "temperature": 1.0, "echo": False, "stream": False}
            data = backend._post("/v1/completions", body)
            backend.requests += 1
            return _vllm_prompt_rows(data, ids, first, n, where)
        prompt: Any = ids
        if backend.prompt_mode == "text":
            prompt = backend.tokenizer.decode(ids, skip_special_tokens=False,
                                              clean_up_tokenization_spaces=False)
            if backend.info.tokenize_path and backend.server_tokenize(prompt) != ids:
                raise BackendError(
                    f"the server at {where} tokenises this text differently from the local "
                    "tokenizer, so its scores cannot be matched to the tokens: pass --tokenizer "
                    "with the served model's tokenizer")
        body = {"model": backend.info.model_id, "prompt": prompt, "max_tokens": 1, "echo": True,
                "logprobs": n, "temperature": 1.0, "top_p": 1.0, "seed": 0, "stream": False}
        try:
            data = backend._post("/v1/completions", body)
        except HTTPStatusError as exc:
            raise CapabilityError(f"the server at {where} cannot score a text: it refused prompt "
                                  f"log-probabilities (echo with logprobs): {exc.detail}") from None
        backend.requests += 1
        return _echo_rows(backend, data, ids, first, n, where)


def _vllm_prompt_rows(data: Any, ids: list[int], first: int, n: int, where: str) -> list[ScoreRow]:
    from tokentui.engine.errors import CapabilityError

    try:
        per_position = data["choices"][0]["prompt_logprobs"]
    except (KeyError, IndexError, TypeError):
        per_position = None
    if not per_position or len(per_position) < len(ids):
        raise CapabilityError(f"the server at {where} returned no prompt log-probabilities: it "
                              "cannot score a text")
    rows: list[ScoreRow] = []
    for pos in range(max(1, first), len(ids)):
        entries = per_position[pos] or {}
        listed = sorted(((int(k), float(v["logprob"]), v.get("rank")) for k, v in entries.items()
                         if v.get("logprob") is not None), key=lambda e: (-e[1], e[0]))
        actual = next((e for e in listed if e[0] == ids[pos]), None)
        if actual is None:
            raise BackendError(f"the server at {where} did not return the text's own token at "
                               f"position {pos}")
        # vLLM adds the actual token to the top N when it lies outside (with its true rank)
        top = [(tid, lp, math.nan) for tid, lp, rank in listed if rank is None or rank <= n][:n]
        rank = int(actual[2]) if actual[2] is not None else None
        rows.append((actual[1], None, rank, None, top))
    return rows


def _echo_rows(backend: RemoteBackend, data: Any, ids: list[int], first: int, n: int,
               where: str) -> list[ScoreRow]:
    from tokentui.engine.errors import CapabilityError

    try:
        lp = data["choices"][0]["logprobs"]
        token_logprobs = lp["token_logprobs"]
        tops = lp["top_logprobs"]
    except (KeyError, IndexError, TypeError):
        lp = token_logprobs = tops = None
    if not token_logprobs or not tops or len(token_logprobs) < len(ids):
        raise CapabilityError(f"the server at {where} cannot score a text: it returned no "
                              "log-probabilities for the prompt (echo with logprobs)")
    offset = len(token_logprobs) - len(ids) - 1  # what the server put before the text (a BOS)
    if offset < 0:
        offset = 0
    rows: list[ScoreRow] = []
    for pos in range(max(1, first), len(ids)):
        at = pos + offset
        actual = token_logprobs[at]
        if actual is None:
            raise CapabilityError(f"the server at {where} gave no log-probability for prompt "
                                  f"token {pos}: it cannot score a text")
        top: list[tuple[int, float, float]] = []
        seen: set[int] = set()
        listed = tops[at] or {}
        items = listed.items() if isinstance(listed, dict) else (
            (e.get("token"), e.get("logprob")) for e in listed)
        for text, value in sorted(items, key=lambda kv: -(kv[1] if kv[1] is not None else -math.inf)):
            if value is None:
                continue
            found = backend.token_map.lookup(text)
            if found is None or found in seen:
                continue
            seen.add(found)
            top.append((found, min(0.0, float(value)), math.nan))
        top = top[:n]  # a server may add the actual token past the N: its rank is unknown
        rank = next((i for i, (tid, _, _) in enumerate(top, start=1) if tid == ids[pos]), None)
        rows.append((min(0.0, float(actual)), None, rank, None, top))
    return rows
