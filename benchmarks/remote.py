"""Per-step latency: a local inference server versus the local transformers backend.

Both run the bundled SmolLM2-135M-Instruct through a tokentui ``Session`` (greedy, top-10
shown per step): the same prompt, the same number of steps, then a branch 30 tokens
back. Prints ms/step for each, the ratio, and tokentui's own overhead per remote step
(the step minus the HTTP round trips; the target is under 2 ms).

    uv run python benchmarks/remote.py                      # starts llama-cpp-python's server
    uv run python benchmarks/remote.py --server llama-server   # llama.cpp's own (built once, cached)
    uv run python benchmarks/remote.py --base-url http://127.0.0.1:8080   # a running server

``--rounds R`` alternates remote and local R times (steps split between rounds) so that a
machine whose load changes mid-run hits both sides alike; the medians are over all rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def run(backend: Any, steps: int, label: str, quiet: bool = False) -> dict[str, Any]:
    """Time ``steps`` greedy steps, then a branch ``min(30, steps - 1)`` tokens back."""
    from tokentui.engine.params import SamplingParams
    from tokentui.engine.prompts import PromptSpec
    from tokentui.engine.session import Session

    params = SamplingParams(temperature=0.0, top_p=1.0, repetition_penalty=1.0, greedy=True,
                            max_new_tokens=steps, ignore_eos=True)
    session = Session(backend, PromptSpec(PROMPT), params=params, top_n=10)
    session.step()  # prefill (not timed)
    times = []
    overheads = []
    for _ in range(steps):
        t0 = time.perf_counter()
        session.step()
        times.append((time.perf_counter() - t0) * 1000.0)
        overheads.append(getattr(backend, "last_overhead_ms", float("nan")))
    back = min(30, len(session.current) - 1)
    index = len(session.current) - back
    alt = session.current.steps[index].distribution.candidates[1].id
    t0 = time.perf_counter()
    session.branch_from(index, alt)
    branch_ms = (time.perf_counter() - t0) * 1000.0
    result = {"step_ms": statistics.median(times), "branch_ms": branch_ms,
              "overhead_ms": statistics.median(overheads), "times": times,
              "back": back}
    prompt_n = _prompt_n(backend)
    if prompt_n is not None:
        result["branch_prompt_n"] = prompt_n
    if quiet:
        return result
    print(f"{label:<44} {result['step_ms']:7.1f} ms/step   branch {back} back: {branch_ms:6.1f} ms")
    return result


def _prompt_n(backend: Any) -> float | None:
    """llama-server's count of prompt tokens evaluated by the last request, if it said."""
    from tokentui.engine.backends.remote import RemoteBackend

    if isinstance(backend, RemoteBackend) and backend.last_timings:
        return float(backend.last_timings.get("prompt_n", float("nan")))
    return None


def start_server(kind: str, threads: int) -> Any:
    """Start llama-cpp-python's server or llama.cpp's ``llama-server`` on the bundled GGUF."""
    from tokentui.engine import models

    logs = Path(tempfile.mkdtemp(prefix="tokentui-bench-"))
    if kind == "llama-server":
        from remote_server import LlamaServer, ensure_llama_server

        print(f"preparing llama-server (a cold build takes many minutes; log in {logs})", flush=True)
        t0 = time.monotonic()
        binary = ensure_llama_server(logs / "build.log")
        print(f"llama-server: {binary} ({time.monotonic() - t0:.1f} s to find or build)", flush=True)
        return LlamaServer(binary, models.bundled_gguf_path(), logs / "server.log",
                           threads=threads).start()
    from remote_server import LlamaCppPythonServer, ensure_llama_cpp_python

    print(f"preparing llama-cpp-python (first build takes minutes; log in {logs})", flush=True)
    ensure_llama_cpp_python(logs / "build.log")
    return LlamaCppPythonServer(models.bundled_gguf_path(), logs / "server.log",
                                threads=threads).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running server (default: start one, see --server)")
    parser.add_argument("--server", choices=("llama-cpp-python", "llama-server"),
                        default="llama-cpp-python", help="which server to start without --base-url")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate remote and local this many times (steps split between them)")
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from tokentui.engine import models
    from tokentui.engine.backends import remote
    from tokentui.engine.backends.local import LocalBackend

    torch.set_num_threads(args.threads)
    server = None
    base_url = args.base_url
    if base_url is None:
        server = start_server(args.server, args.threads)
        base_url = server.base_url
    try:
        backend = remote.from_options(base_url=base_url, top_n=10)
        print(f"remote: {backend.capabilities.name} at {backend.client.display_url} "
              f"({'native /completion' if backend.native else '/v1/completions'}, "
              f"{backend.prompt_mode} prompts, top-{backend.top_n})")
        local = LocalBackend(models.load())
        local_label = f"local transformers ({local.loaded.dtype}, {args.threads} threads)"
        per_round = max(2, args.steps // max(1, args.rounds))
        remote_rounds: list[dict[str, Any]] = []
        local_rounds: list[dict[str, Any]] = []
        for _ in range(max(1, args.rounds)):  # alternate: remote, local, remote, local, ...
            remote_rounds.append(run(backend, per_round, "remote backend", quiet=True))
            local_rounds.append(run(local, per_round, local_label, quiet=True))
        remote_result = _report("remote backend", remote_rounds)
        local_result = _report(local_label, local_rounds)
    finally:
        if server is not None:
            server.stop()
    ratio = remote_result["step_ms"] / local_result["step_ms"]
    print(f"ratio remote / local: {ratio:.2f}x per step "
          f"({'faster' if ratio < 1 else 'slower'} remotely)")
    print(f"tokentui overhead per remote step (outside HTTP, in the backend): "
          f"{remote_result['overhead_ms']:.2f} ms")


def _report(label: str, rounds: list[dict[str, Any]]) -> dict[str, float]:
    times = [t for r in rounds for t in r["times"]]
    result = {"step_ms": statistics.median(times),
              "branch_ms": statistics.median(r["branch_ms"] for r in rounds),
              "overhead_ms": statistics.median(r["overhead_ms"] for r in rounds)}
    spread = (f"p10 {statistics.quantiles(times, n=10)[0]:.1f}, "
              f"p90 {statistics.quantiles(times, n=10)[-1]:.1f}") if len(times) >= 10 else ""
    line = (f"{label:<44} {result['step_ms']:7.1f} ms/step ({spread}; {len(times)} steps, "
            f"{len(rounds)} rounds)   branch {rounds[0]['back']} back: {result['branch_ms']:6.1f} ms")
    if "branch_prompt_n" in rounds[0]:
        line += f" ({rounds[0]['branch_prompt_n']:.0f} prompt tokens evaluated by the server)"
    print(line, flush=True)
    return result


if __name__ == "__main__":
    main()
