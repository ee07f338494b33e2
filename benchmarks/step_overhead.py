"""Per-step cost of tokentui against a bare transformers KV-cache loop, and start times.

Run: uv run python benchmarks/step_overhead.py [--steps 64] [--cold]

The bare loop is what any tool must do at least: one cached forward, a softmax and a
top-10 per token. tokentui adds the sampling pipeline (penalties, top-p sort, min-p),
the candidate table and the JSON line. Printed as a ratio (goal: <= 1.1 on CPU).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from bare import PROMPT, bare_steps  # benchmarks/bare.py (scripts run from their folder)


def session_steps(backend, steps: int):
    """tokentui's session; each ``next()`` runs one step and serialises it as JSON."""
    import json

    from tokentui.engine.params import SamplingParams
    from tokentui.engine.prompts import PromptSpec
    from tokentui.engine.session import Session

    session = Session(backend, PromptSpec(PROMPT),
                      params=SamplingParams(seed=1, max_new_tokens=steps + 8, ignore_eos=True))
    for step in session.generate():
        json.dumps(step.to_json())
        yield


def interleaved(bare, ours, steps: int) -> tuple[list[float], list[float]]:
    """Alternate one bare step and one tokentui step, so machine drift hits both alike."""
    next(bare), next(ours), next(bare), next(ours)  # prefill and warm-up
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(steps):
        for loop, out in ((bare, times[0]), (ours, times[1])):
            t0 = time.perf_counter()
            next(loop)
            out.append(time.perf_counter() - t0)
    return times


def cli_loop(steps: int, env: dict[str, str]) -> tuple[list[float], float]:
    """Inter-line intervals of `tokentui generate --jsonl`, and the time to its first line."""
    cmd = [sys.executable, "-m", "tokentui", "generate", PROMPT, "--jsonl", "--seed", "1",
           "--ignore-eos", "-n", str(steps)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    stamps = []
    assert proc.stdout is not None
    for _line in proc.stdout:
        stamps.append(time.perf_counter())
    proc.wait()
    first = stamps[0] - start
    return [b - a for a, b in itertools.pairwise(stamps[1:])], first


def _timed(loop):
    """Per-step times of a step generator, after its first (prefill) step."""
    next(loop)
    while True:
        t0 = time.perf_counter()
        next(loop)
        yield time.perf_counter() - t0


def ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--cold", action="store_true", help="also time a cold start (empty cache)")
    args = parser.parse_args()

    from tokentui.engine import models
    from tokentui.engine.backends.local import LocalBackend
    from tokentui.engine.prompts import PromptSpec, encode_prompt

    t0 = time.perf_counter()
    loaded = models.load()
    cached_load = time.perf_counter() - t0
    ids = encode_prompt(loaded.tokenizer, PromptSpec(PROMPT))
    backend = LocalBackend(loaded)
    bare, ours = interleaved(bare_steps(loaded.model, ids), session_steps(backend, args.steps),
                             args.steps)
    bare_before = list(itertools.islice(_timed(bare_steps(loaded.model, ids)), args.steps))
    cli, first_line = cli_loop(args.steps, dict(os.environ))
    bare_after = list(itertools.islice(_timed(bare_steps(loaded.model, ids)), args.steps))
    cli_base = (ms(bare_before) + ms(bare_after)) / 2
    print(f"threads: {torch.get_num_threads()}, steps: {args.steps}, model: {loaded.name}")
    print(f"bare transformers loop (softmax + top-10): {ms(bare):7.2f} ms/step (interleaved)")
    print(f"tokentui session (pipeline + candidates + JSON): {ms(ours):7.2f} ms/step"
          f"  ratio {ms(ours) / ms(bare):.3f}")
    print(f"tokentui generate --jsonl (subprocess):  {ms(cli):7.2f} ms/step"
          f"  ratio {ms(cli) / cli_base:.3f} (bare loop just before and after: {cli_base:.2f} ms)")
    print(f"cached start: model load {cached_load:.2f} s in-process; "
          f"CLI to first JSONL line {first_line:.2f} s")
    if args.cold:
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, TOKENTUI_CACHE=tmp)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "tokentui", "next", "hi", "--json"],
                           env=env, check=True, capture_output=True)
            print(f"cold start (GGUF conversion, CLI `next`): {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
