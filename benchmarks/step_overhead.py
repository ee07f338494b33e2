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

PROMPT = "Write a short story about a lighthouse keeper."


def bare_loop(model, ids: list[int], steps: int) -> list[float]:
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    times = []
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True)
        for _ in range(steps):
            t0 = time.perf_counter()
            probs = out.logits[0, -1].float().softmax(-1)
            top = probs.topk(10)
            next_id = int(top.indices[0])
            _ = top.values.tolist()
            out = model(input_ids=torch.tensor([[next_id]]), past_key_values=cache, use_cache=True)
            times.append(time.perf_counter() - t0)
    return times


def session_loop(backend, steps: int) -> list[float]:
    import json

    from tokentui.engine.prompts import PromptSpec
    from tokentui.engine.sampling import SamplingParams
    from tokentui.engine.session import Session

    session = Session(backend, PromptSpec(PROMPT),
                      params=SamplingParams(seed=1, max_new_tokens=steps, ignore_eos=True))
    times = []
    t0 = time.perf_counter()
    for step in session.generate():
        json.dumps(step.to_json())
        now = time.perf_counter()
        times.append(now - t0)
        t0 = now
    return times[1:]  # the first includes the prefill


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
    bare_loop(loaded.model, ids, 4)  # warm-up
    bare = bare_loop(loaded.model, ids, args.steps)
    backend = LocalBackend(loaded)
    ours = session_loop(backend, args.steps)
    bare2 = bare_loop(loaded.model, ids, args.steps)
    cli, first_line = cli_loop(args.steps, dict(os.environ))
    base = min(ms(bare), ms(bare2))
    print(f"threads: {torch.get_num_threads()}, steps: {args.steps}, model: {loaded.name}")
    print(f"bare transformers loop (softmax + top-10): {base:7.2f} ms/step")
    print(f"tokentui session (pipeline + candidates + JSON): {ms(ours):7.2f} ms/step"
          f"  ratio {ms(ours) / base:.3f}")
    print(f"tokentui generate --jsonl (subprocess):  {ms(cli):7.2f} ms/step"
          f"  ratio {ms(cli) / base:.3f}")
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
