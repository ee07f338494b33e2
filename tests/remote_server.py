"""Starting real inference servers for the remote-backend tests and benchmark.

llama-cpp-python's OpenAI-compatible server runs in an environment of its own
(``uv tool run``): the project's uv overrides keep llama-cpp-python out of the
project's env. Its first use builds llama.cpp from source (minutes); uv caches the
wheel, so later runs start in seconds. Every server listens on 127.0.0.1 only and is
stopped by killing the process group it was started in.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
LLAMA_CPP_PYTHON = f"llama-cpp-python[server]=={LLAMA_CPP_PYTHON_VERSION}"
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
    # A cold build compiles only what the server needs: not llama.cpp's multimodal tools (mtmd).
    env.setdefault("CMAKE_ARGS", "-DLLAVA_BUILD=OFF")
    return env


def uv_tool_command(*args: str) -> list[str]:
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("uv is not on PATH: it is needed to run llama-cpp-python's server")
    return [uv, "tool", "run", "--no-config", "--from", LLAMA_CPP_PYTHON, *args]


def uv_tool_command_for(package: str) -> list[str]:
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError(f"uv is not on PATH: it is needed to run {package}")
    return [uv, "tool", "run", "--no-config", "--from", package]


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


LLAMA_SERVER_CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",       # one self-contained binary to cache
    "-DGGML_NATIVE=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",        # the server lives under tools/
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",          # no web UI build ...
    "-DLLAMA_USE_PREBUILT_UI=OFF",   # ... and no download of a prebuilt one
    "-DLLAMA_OPENSSL=OFF",           # no HTTPS (and so no model downloads)
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_COMMON=ON",
)


def llama_server_cache() -> Path:
    """Where the built ``llama-server`` is kept: ``<tokentui cache>/llama-server/<version>/``."""
    from tokentui.engine.models import cache_dir

    return cache_dir() / "llama-server" / LLAMA_CPP_PYTHON_VERSION


def _run_logged(cmd: list[str], fh: object, log: Path, what: str, cwd: Path | None = None) -> None:
    fh.write(f"$ {' '.join(cmd)}\n")  # type: ignore[attr-defined]
    fh.flush()  # type: ignore[attr-defined]
    proc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,  # type: ignore[arg-type]
                          timeout=BUILD_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _build_llama_server(dest: Path, log: Path, jobs: int) -> None:
    """Fetch the llama-cpp-python sdist, build ``llama-server`` from its vendored llama.cpp,
    and move the binary into ``dest`` (which must not exist yet) in one rename."""
    for tool in ("cmake",):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not on PATH: it is needed to build llama-server")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as fh, tempfile.TemporaryDirectory(prefix=".build-", dir=dest.parent) as tmp:
        work = Path(tmp)
        _run_logged([*_pip_command(), "download", "--no-deps", "--no-binary", ":all:",
                     f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(work / "sdist")],
                    fh, log, "downloading the llama-cpp-python sdist")
        sdist = next((work / "sdist").glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            tar.extractall(work / "src", filter="data")
        src = next((work / "src").glob("llama_cpp_python-*")) / "vendor" / "llama.cpp"
        build = work / "build"
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        _run_logged(["cmake", "-S", str(src), "-B", str(build), *generator,
                     *LLAMA_SERVER_CMAKE_OPTIONS], fh, log, "configuring llama.cpp")
        _run_logged(["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs)],
                    fh, log, "building llama-server")
        binary = build / "bin" / "llama-server"
        if not binary.is_file():
            raise RuntimeError(f"the build finished but {binary} is missing")
        stage = work / "out"
        stage.mkdir()
        shutil.copy2(binary, stage / "llama-server")
        (stage / "BUILD-INFO.txt").write_text(
            f"llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist, vendor/llama.cpp\n"
            + " ".join(LLAMA_SERVER_CMAKE_OPTIONS) + "\n")
        os.rename(stage, dest)   # atomic: the cache dir appears complete or not at all


def _pip_command() -> list[str]:
    """A pip to download with: the project's venv has none, so a pip on PATH, else uv's."""
    if pip := shutil.which("pip"):
        return [pip]
    return [*uv_tool_command_for("pip"), "pip"]


def ensure_llama_server(log: Path, jobs: int = 2) -> Path:
    """The cached ``llama-server`` binary, building it first when the cache is empty.

    A file lock next to the cache makes a second test process wait for the first one's
    build and then find the binary, rather than build it twice. Raises RuntimeError with
    the log's tail when the build fails: the tests must fail loudly, not skip.
    """
    dest = llama_server_cache()
    binary = dest / "llama-server"
    if binary.is_file():
        return binary
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (dest.parent / f".{dest.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.is_file():          # re-check: another process may have built it
            _build_llama_server(dest, log, jobs)
    return binary


def get_json(url: str, timeout: float = 2.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


class _ServerProcess:
    """A server in its own process group on a free 127.0.0.1 port: started, polled until
    :meth:`ready`, and stopped by killing the group (whatever it started dies with it)."""

    name = "server"

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

    def popen(self, fh: Any) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether the server answers (called until true or the start times out)."""
        raise NotImplementedError

    def start(self, timeout: float = START_TIMEOUT_S) -> Any:
        with self.log.open("ab") as fh:
            self.proc = self.popen(fh)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                if self.ready():
                    return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready within {timeout:.0f} s:\n"
                           f"{self.log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        """Kill the server's process group and wait for it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LlamaCppPythonServer(_ServerProcess):
    """``python -m llama_cpp.server`` on a GGUF, on a free 127.0.0.1 port."""

    name = "llama_cpp.server"

    def popen(self, fh: Any) -> subprocess.Popen[bytes]:
        cmd = uv_tool_command(
            "python", "-m", "llama_cpp.server", "--model", str(self.model), "--host", "127.0.0.1",
            "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.threads), "--logits_all", "true", "--verbose", "false")
        self._cwd = tempfile.TemporaryDirectory()
        return subprocess.Popen(cmd, cwd=self._cwd.name, env=_uv_env(), stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def ready(self) -> bool:
        get_json(f"{self.base_url}/v1/models")
        return True

    def stop(self) -> None:
        """Kill the server's process group (uv and the python it started) and wait for it."""
        super().stop()
        with contextlib.suppress(Exception):
            self._cwd.cleanup()


@contextlib.contextmanager
def llama_cpp_python_server(model: Path, log: Path) -> Iterator[LlamaCppPythonServer]:
    server = LlamaCppPythonServer(model, log)
    try:
        yield server.start()
    finally:
        server.stop()


class LlamaServer(_ServerProcess):
    """llama.cpp's own ``llama-server`` (built by :func:`ensure_llama_server`) on a GGUF.

    One slot (``-np 1``), so every request reuses the same prompt cache: a branch pays
    only for the tokens after the common prefix.
    """

    name = "llama-server"

    def __init__(self, binary: Path, model: Path, log: Path, *, n_ctx: int = 2048,
                 threads: int = 2) -> None:
        super().__init__(model, log, n_ctx=n_ctx, threads=threads)
        self.binary = binary

    def command(self) -> list[str]:
        return [str(self.binary), "-m", str(self.model), "--host", "127.0.0.1",
                "--port", str(self.port), "-c", str(self.n_ctx), "-t", str(self.threads),
                "-tb", str(self.threads), "-np", "1", "--no-webui"]

    def popen(self, fh: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command(), stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def ready(self) -> bool:
        # /health answers 503 while the model loads, 200 once it is ready.
        health = get_json(f"{self.base_url}/health")
        return isinstance(health, dict) and health.get("status") == "ok"
