"""Starting real inference servers for the remote-backend tests and benchmark.

llama-cpp-python's OpenAI-compatible server runs in an environment of its own
(``uv tool run``): the project's uv overrides keep llama-cpp-python out of the
project's env. Its first use builds llama.cpp from source (minutes); uv caches the
wheel, so later runs start in seconds. Every server listens on 127.0.0.1 only and is
stopped by killing the process group it was started in.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

LLAMA_CPP_PYTHON = "llama-cpp-python[server]==0.3.36"
BUILD_TIMEOUT_S = 3600
"""A cold build takes ~6 minutes on 2 idle cores, over 30 on busy ones: leave room."""
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _uv_env() -> dict[str, str]:
    """The environment for ``uv tool run``: without the project's virtualenv."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def uv_tool_command(*args: str) -> list[str]:
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("uv is not on PATH: it is needed to run llama-cpp-python's server")
    return [uv, "tool", "run", "--no-config", "--from", LLAMA_CPP_PYTHON, *args]


def ensure_llama_cpp_python(log: Path) -> float:
    """Build (first time) or find (cached) llama-cpp-python; return the seconds it took.

    Raises RuntimeError with the log's tail when the build fails (no compiler, no cmake):
    the tests must fail loudly, not skip.
    """
    t0 = time.monotonic()
    with log.open("w") as fh, tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run(uv_tool_command("python", "-c", "import llama_cpp"), cwd=cwd,
                              env=_uv_env(), stdout=fh, stderr=subprocess.STDOUT,
                              timeout=BUILD_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"building llama-cpp-python failed (exit {proc.returncode}):\n{tail}")
    return time.monotonic() - t0


def get_json(url: str, timeout: float = 2.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


class LlamaCppPythonServer:
    """``python -m llama_cpp.server`` on a GGUF, on a free 127.0.0.1 port."""

    def __init__(self, model: Path, log: Path, *, n_ctx: int = 2048, threads: int = 2) -> None:
        self.model = model
        self.log = log
        self.n_ctx = n_ctx
        self.threads = threads
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT_S) -> LlamaCppPythonServer:
        cmd = uv_tool_command(
            "python", "-m", "llama_cpp.server", "--model", str(self.model), "--host", "127.0.0.1",
            "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.threads), "--logits_all", "true", "--verbose", "false")
        self._cwd = tempfile.TemporaryDirectory()
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(cmd, cwd=self._cwd.name, env=_uv_env(), stdout=fh,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}:\n"
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                get_json(f"{self.base_url}/v1/models")
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer within {timeout:.0f} s:\n"
                           f"{self.log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        """Kill the server's process group (uv and the python it started) and wait for it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        with contextlib.suppress(Exception):
            self._cwd.cleanup()

    def __enter__(self) -> LlamaCppPythonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def llama_cpp_python_server(model: Path, log: Path) -> Iterator[LlamaCppPythonServer]:
    server = LlamaCppPythonServer(model, log)
    try:
        yield server.start()
    finally:
        server.stop()
