"""The hostile-input tier: the real CLI (in process through ``tokentui.cli.main``, or as a
subprocess where the bytes of argv or a signal matter), real HTTP servers that misbehave, and
the real app in tmux. Every output is checked byte for byte: no raw control, C1, bidi or
invisible format character may reach a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


def is_unsafe(ch: str) -> bool:
    """Written here, not imported from tokentui.visible: the test must not trust the code it checks."""
    code = ord(ch)
    return code < 32 or code == 127 or 0x80 <= code < 0xA0 or unicodedata.category(ch) in ("Cf", "Zl", "Zp")

HOSTILE = ("\x1b]2;PWNED-TITLE\x1b\\ \x1b]52;c;SGVsbG8=\x07 \x1b[2J\x1b[H \x9b31m "
           "user\u202etxt.exe\u202c \u2066iso\u2069 zero\u200bwidth\ufeff")
"""OSC 2 (title), OSC 52 (clipboard), CSI clear screen, a raw C1 CSI, a bidi override,
an isolate, zero-width characters: what a file, a server or a model may hand us."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hostile: hostile-input tier (the real CLI, servers, app)")


def assert_inert(data: bytes | str, *, where: str = "output") -> None:
    """No byte or character that a terminal would act on or hide (newline and tab aside)."""
    text = data.decode("utf-8", errors="surrogateescape") if isinstance(data, bytes) else data
    bad = sorted({f"U+{ord(ch):04X}" for ch in text if ch not in "\n\t" and is_unsafe(ch)})
    assert not bad, f"{where} carries raw {', '.join(bad)}: {text[:300]!r}"
    assert not any("\udc80" <= ch <= "\udcff" for ch in text), f"{where}: invalid UTF-8"


def one_error_line(err: bytes) -> str:
    """The stderr of a failed command: exactly one ``error:`` line, inert."""
    assert_inert(err, where="stderr")
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in lines[0]
    return lines[0]


class Run:
    def __init__(self, rc: int, out: bytes, err: bytes) -> None:
        self.rc, self.out, self.err = rc, out, err

    def __repr__(self) -> str:
        return f"Run(rc={self.rc}, out={self.out[:200]!r}, err={self.err[-400:]!r})"


@pytest.fixture
def cli(capfdbinary: pytest.CaptureFixture[bytes]) -> Callable[..., Run]:
    """Run ``tokentui ARGS`` in process (the real entry point, exit code and bytes)."""
    from tokentui.cli import main

    def run(*args: Any) -> Run:
        capfdbinary.readouterr()
        saved = sys.argv
        sys.argv = ["tokentui", *(str(a) for a in args)]  # main() reads argv like the script does
        try:
            main()
            rc = 0
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = saved
        sys.stdout.flush()
        sys.stderr.flush()
        out, err = capfdbinary.readouterr()
        return Run(rc, out, err)

    return run


def run_subprocess(args: list[bytes | str], *, timeout: float = 120, **kw: Any) -> Run:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "tokentui", *args], capture_output=True,
                          timeout=timeout, env=env, **kw)
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def hostile_file(two_branches, tmp_path: Path) -> Path:
    """A real two-branch session file whose names, model name and prompt carry HOSTILE."""
    from tokentui.engine.persist import session_file as store

    path = store.save(two_branches, tmp_path / "hostile.json")
    data = json.loads(path.read_text())
    data["model"] = {"spec": None, "kind": "dir", "location": HOSTILE, "name": HOSTILE}
    data["prompt"]["text"] = HOSTILE
    data["prompt"]["system"] = HOSTILE
    for b in data["branches"]:
        b["name"] = f"{HOSTILE} #{b['id']}"
    path.write_text(json.dumps(data, ensure_ascii=False))
    return path


# ----- real HTTP servers that misbehave ------------------------------------------------------
class BadServer:
    """A real HTTP server on 127.0.0.1; ``handler(request) -> None`` writes whatever it likes."""

    def __init__(self, handle: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.seen: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.seen.append(dict(self.headers))
                handle(self)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.body = json.loads(self.rfile.read(length)) if length else None
                outer.seen.append(dict(self.headers))
                handle(self)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hangs up on a misbehaving answer is the point

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> BadServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def send(req: BaseHTTPRequestHandler, code: int, body: Any, *, raw: bytes | None = None) -> None:
    data = raw if raw is not None else json.dumps(body).encode()
    req.send_response(code)
    req.send_header("Content-Type", "application/json")
    req.send_header("Content-Length", str(len(data)))
    req.end_headers()
    req.wfile.write(data)
