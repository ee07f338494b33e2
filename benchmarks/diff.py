"""Per-step cost of two models in lockstep against two bare transformers loops, and its memory.

Run: uv run python benchmarks/diff.py [--steps 32] [--dtype-b bfloat16] [--memory]

A is the bundled SmolLM2-135M in float32, B the same model in ``--dtype-b`` (bfloat16 by
default). The bare loops are what any tool must do at least for two models: per model one
cached forward, a softmax and a top-10 per token. The lockstep adds both sampling pipelines,
the full-vocabulary KL both ways, Jensen-Shannon, the top-10 lists with cross ranks and the
JSON line. One bare A step, one bare B step and one lockstep step alternate, so machine
drift hits all three alike; the ratio is lockstep / (bare A + bare B), goal <= 1.1.

``--memory`` runs a fresh process that loads both models, steps ``--memory-steps`` tokens and
prints the resident set (VmRSS) and its peak (VmHWM) after loading and along the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from bare import PROMPT, bare_steps  # benchmarks/bare.py (scripts run from their folder)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def lockstep_steps(a, b, steps: int):
    from tokentui.engine.analysis.lockstep import Lockstep
    from tokentui.engine.params import SamplingParams
    from tokentui.engine.prompts import PromptSpec

    ls = Lockstep(a, b, PromptSpec(PROMPT),
                  params=SamplingParams(seed=1, max_new_tokens=steps + 8, ignore_eos=True))
    for div in ls.generate():
        json.dumps(div.to_json())
        yield div


def memory_kb() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def memory_run(dtype_b: str, steps: int) -> None:
    from tokentui.engine import models
    from tokentui.engine.backends.local import LocalBackend

    print(f"start: {memory_kb()}")
    a = LocalBackend(models.load(dtype="float32", device="cpu"))
    print(f"A loaded (float32): {memory_kb()}")
    b = LocalBackend(models.load(dtype=dtype_b, device="cpu"))
    print(f"B loaded ({dtype_b}): {memory_kb()}")
    for i, _ in enumerate(lockstep_steps(a, b, steps), start=1):
        if i in (1, 8, steps // 4, steps // 2, steps) or i % 64 == 0:
            print(f"after {i} lockstep steps: {memory_kb()}")
        if i == steps:
            break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--dtype-b", default="bfloat16")
    parser.add_argument("--memory", action="store_true", help="measure RSS in a fresh process")
    parser.add_argument("--memory-steps", type=int, default=256)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall seconds, or this process's CPU seconds (steadier on a shared machine)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.memory_child:
        memory_run(args.dtype_b, args.memory_steps)
        return

    from tokentui.engine import models
    from tokentui.engine.backends.local import LocalBackend
    from tokentui.engine.prompts import PromptSpec, encode_prompt

    la = models.load(dtype="float32", device="cpu")
    lb = models.load(dtype=args.dtype_b, device="cpu")
    ids = encode_prompt(la.tokenizer, PromptSpec(PROMPT))
    loops = (bare_steps(la.model, ids), bare_steps(lb.model, ids),
             lockstep_steps(LocalBackend(la), LocalBackend(lb), args.steps))
    for loop in loops:  # prefill and warm-up
        next(loop), next(loop)
    times: tuple[list[float], ...] = ([], [], [])
    for _ in range(args.steps):
        for loop, out in zip(loops, times, strict=True):
            t0 = clock()
            next(loop)
            out.append(clock() - t0)
    bare_a, bare_b, ours = (statistics.median(t) * 1000 for t in times)
    spread = [statistics.quantiles([x * 1000 for x in t], n=4) for t in times]
    print(f"threads {torch.get_num_threads()}, steps {args.steps}, A float32, B {args.dtype_b} "
          ""
          f"(median {args.clock} ms/step)")
    print(f"bare loop A: {bare_a:7.2f}  (quartiles {spread[0][0]:.1f}-{spread[0][2]:.1f})")
    print(f"bare loop B: {bare_b:7.2f}  (quartiles {spread[1][0]:.1f}-{spread[1][2]:.1f})")
    print(f"lockstep   : {ours:7.2f}  (quartiles {spread[2][0]:.1f}-{spread[2][2]:.1f})"
          f"  ratio {ours / (bare_a + bare_b):.3f} of A + B")
    if args.memory:
        subprocess.run([sys.executable, __file__, "--memory-child", "--dtype-b", args.dtype_b,
                        "--memory-steps", str(args.memory_steps),
                        *(["--threads", str(args.threads)] if args.threads else [])], check=True)


if __name__ == "__main__":
    main()
