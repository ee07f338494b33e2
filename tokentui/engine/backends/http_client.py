"""A small JSON-over-HTTP client for inference servers (standard library only).

One keep-alive connection per client, so a step costs one round trip and no TCP
handshake. Transient faults (refused or dropped connections, 429/502/503/504) are
retried a bounded number of times with exponential backoff; everything else becomes
one readable line. ``cancel()`` from another thread aborts the request in flight.
The API key goes into the ``Authorization`` header and nowhere else: error messages
name the server by :attr:`JsonClient.display_url`, which drops any credentials.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from tokentui.engine.errors import TokentuiError

TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
MAX_BODY_BYTES = 32 * 1024 * 1024
"""The largest response body read: a step's answer is a few KB, a model list a few hundred."""
MAX_JSON_DEPTH = 64
"""Deeper JSON than any inference API answers is refused before it is parsed."""


class BackendError(TokentuiError):
    """A remote backend failed: unreachable, refused the request, or answered nonsense."""


class ServerUnreachableError(BackendError):
    """No connection could be made (or kept) to the server."""


class ServerTimeoutError(BackendError):
    """The server did not answer within the timeout."""


class HTTPStatusError(BackendError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, status: int, detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class RequestCancelledError(BackendError):
    """The request in flight was cancelled by the user."""


def display_url(url: str) -> str:
    """The URL without user, password, query or fragment (safe to print)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


def _too_deep(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests deeper than ``limit`` (brackets inside strings are skipped)."""
    depth = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def parse_json_body(data: bytes) -> Any:
    """A server's JSON body, or ValueError (also for nesting no API uses)."""
    if _too_deep(data):
        raise ValueError("nested too deeply")
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret (an API key) replaced by ``[redacted]``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _server_message(body: bytes, secrets: tuple[str, ...] = ()) -> str:
    """The error text a server put in its JSON body (OpenAI, vLLM, llama.cpp shapes), one line,
    terminal-safe and without the API key (a server may echo the request's headers)."""
    from tokentui.visible import one_line

    text = redact(body[:64 * 1024].decode("utf-8", errors="replace").strip(), secrets)
    try:
        data = parse_json_body(text.encode("utf-8"))
    except ValueError:
        return one_line(" ".join(text.split())[:200])
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message", data)))
        if isinstance(err, dict):
            err = err.get("message", err)
        if isinstance(err, list) and err and isinstance(err[0], dict):
            err = err[0].get("msg", err[0])
        text = redact(str(err), secrets)
    return one_line(" ".join(text.split())[:200])


class JsonClient:
    """POST/GET JSON against one server root, with retries, timeouts and cancellation."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 3, backoff: float = 0.25, deadline: float | None = None,
                 max_body: int = MAX_BODY_BYTES) -> None:
        parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"--base-url must look like http://HOST:PORT, got {display_url(base_url)!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.display_url = display_url(f"{parts.scheme}://{parts.netloc}{parts.path}")
        self.timeout = timeout
        self.deadline = timeout if deadline is None else deadline
        """Total seconds one attempt may take, body included (a server trickling bytes)."""
        self.max_body = max_body
        self.retries = retries
        self.backoff = backoff
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        self._secrets: tuple[str, ...] = ()
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
            self._secrets = (api_key,)
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self.last_request_ms = 0.0
        """Wall time of the last successful round trip (send to parsed body)."""

    def __repr__(self) -> str:  # never shows the key
        return f"JsonClient({self.display_url!r})"

    # ----- connection ---------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def cancel(self) -> None:
        """Abort the request in flight (safe from any thread); the caller gets RequestCancelledError."""
        self._cancelled.set()
        conn = self._conn
        sock = getattr(conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # ----- requests -----------------------------------------------------------------
    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, None, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.request("POST", path, body, **kwargs)

    def request(self, method: str, path: str, body: Any = None, *, retry: bool = True,
                timeout: float | None = None) -> Any:
        """Send one request and return the parsed JSON body; raise a BackendError subclass."""
        payload = None if body is None else json.dumps(body).encode("utf-8")
        attempts = 1 + (self.retries if retry else 0)
        with self._lock:
            self._cancelled.clear()
            for attempt in range(attempts):
                try:
                    return self._once(method, path, payload, timeout)
                except (ServerUnreachableError, HTTPStatusError) as exc:
                    transient = (isinstance(exc, ServerUnreachableError)
                                 or exc.status in TRANSIENT_STATUS)
                    if not transient or attempt == attempts - 1:
                        raise
                    # Interruptible sleep: cancel() ends the wait at once.
                    if self._cancelled.wait(self.backoff * (2 ** attempt)):
                        raise RequestCancelledError("cancelled") from None
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, payload: bytes | None, timeout: float | None) -> Any:
        where = f"{self.display_url}{path}"
        t0 = time.perf_counter()
        conn = self._connection()
        limit = timeout or self.deadline
        expired = threading.Event()

        def expire() -> None:  # the total deadline: headers and body, however slowly they come
            expired.set()
            sock = getattr(conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(limit, expire)
        timer.daemon = True
        timer.start()
        try:
            if timeout is not None:
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
            conn.request(method, self.prefix + path, body=payload, headers=self._headers)
            response = conn.getresponse()
            data = self._read_body(response, t0 + limit, where)
        except TimeoutError:
            self.close()
            if self._cancelled.is_set():
                raise RequestCancelledError("cancelled") from None
            raise ServerTimeoutError(
                f"the server at {self.display_url} did not answer {method} {path} within "
                f"{limit:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            if self._cancelled.is_set():
                raise RequestCancelledError("cancelled") from None
            if expired.is_set():
                raise ServerTimeoutError(
                    f"the server at {self.display_url} did not finish answering {method} {path} "
                    f"within {limit:g} s") from None
            reason = _describe_os_error(exc)
            raise ServerUnreachableError(
                f"cannot reach the server at {self.display_url}: {reason}") from None
        finally:
            timer.cancel()
            if timeout is not None and self._conn is not None:
                self._conn.timeout = self.timeout
                if self._conn.sock is not None:
                    self._conn.sock.settimeout(self.timeout)
        if self._cancelled.is_set():
            self.close()
            raise RequestCancelledError("cancelled")
        if expired.is_set():
            self.close()
            raise ServerTimeoutError(f"the server at {self.display_url} did not finish answering "
                                     f"{method} {path} within {limit:g} s")
        if response.will_close:
            self.close()
        if response.status >= 400:
            detail = _server_message(data, self._secrets)
            raise HTTPStatusError(
                f"the server at {self.display_url} refused {method} {path}: HTTP {response.status}"
                + (f": {detail}" if detail else ""), response.status, detail)
        try:
            parsed = parse_json_body(data)
        except ValueError:
            raise BackendError(f"{where} did not answer with JSON (is this an inference server?)") from None
        self.last_request_ms = (time.perf_counter() - t0) * 1000.0
        return parsed


    def _read_body(self, response: http.client.HTTPResponse, deadline: float, where: str) -> bytes:
        """The body, at most ``max_body`` bytes and by ``deadline`` (monotonic perf_counter)."""
        length = response.getheader("Content-Length")
        if length and length.isdigit() and int(length) > self.max_body:
            self.close()
            raise BackendError(f"{where} answered {int(length) / 2**20:.0f} MiB, more than the "
                               f"{self.max_body // 2**20} MiB a response may have")
        chunks: list[bytes] = []
        size = 0
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError
            sock = self._conn.sock if self._conn is not None else None
            if sock is not None:
                sock.settimeout(min(left, self.timeout))
            chunk = response.read(64 * 1024)  # read(), not read1(): it closes the response at its end
            if not chunk:
                response.close()
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_body:
                self.close()
                raise BackendError(f"{where} answered more than the {self.max_body // 2**20} MiB "
                                   "a response may have")
            chunks.append(chunk)


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
        return "the connection was closed by the server"
    return str(exc).strip() or type(exc).__name__
