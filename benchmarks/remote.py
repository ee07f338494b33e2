"""Per-step latency: a local inference server versus the local transformers backend.

Both run the bundled SmolLM2-135M-Instruct through a tokentui ``Session`` (greedy, top-10
shown per step): the same prompt, the same number of steps, then a branch 30 tokens
back. Prints ms/step for each, the ratio, and tokentui's own overhead per remote step
(the step minus the HTTP round trips; the target is under 2 ms).

    uv run python benchmarks/remote.py                      # starts llama-cpp-python's server
    uv run python benchmarks/remote.py --base-url http://127.0.0.1:8080   # e.g. llama-server
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


def run(backend: Any, steps: int, label: str) -> dict[str, float]:
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
              "overhead_ms": statistics.median(overheads)}
    print(f"{label:<44} {result['step_ms']:7.1f} ms/step   branch {back} back: {branch_ms:6.1f} ms")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running server (default: start llama-cpp-python's)")
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
        from remote_server import LlamaCppPythonServer, ensure_llama_cpp_python

        logs = Path(tempfile.mkdtemp(prefix="tokentui-bench-"))
        print(f"preparing llama-cpp-python (first build takes minutes; log in {logs})", flush=True)
        ensure_llama_cpp_python(logs / "build.log")
        server = LlamaCppPythonServer(models.bundled_gguf_path(), logs / "server.log",
                                      threads=args.threads).start()
        base_url = server.base_url
    try:
        backend = remote.from_options(base_url=base_url, top_n=10)
        print(f"remote: {backend.capabilities.name} at {backend.client.display_url} "
              f"({'native /completion' if backend.native else '/v1/completions'}, "
              f"{backend.prompt_mode} prompts, top-{backend.top_n})")
        remote_result = run(backend, args.steps, "remote backend")
        local = LocalBackend(models.load())
        local_result = run(local, args.steps, f"local transformers ({local.loaded.dtype}, "
                                              f"{args.threads} threads)")
    finally:
        if server is not None:
            server.stop()
    ratio = remote_result["step_ms"] / local_result["step_ms"]
    print(f"ratio remote / local: {ratio:.2f}x per step "
          f"({'faster' if ratio < 1 else 'slower'} remotely)")
    print(f"tokentui overhead per remote step (outside HTTP, in the backend): "
          f"{remote_result['overhead_ms']:.2f} ms")


if __name__ == "__main__":
    main()
