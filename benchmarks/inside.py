"""What the Inside screen costs for the newest token, against one decode step.

Generates with the bundled model, and between steps computes the whole Inside report
(token, embedding + nearest, position, logit lens over every layer, attention by layer,
temperature sweep). Measurements are interleaved with the steps so machine load hits
both alike. Prints medians and the ratio; the goal is a ratio under 1 (cheaper than
one extra step).

    uv run python benchmarks/inside.py [--steps 24] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tokentui.engine import models
from tokentui.engine.analysis import inside
from tokentui.engine.backends.local import LocalBackend
from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec
from tokentui.engine.session import Session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backend = LocalBackend(models.load())
    session = Session(backend, PromptSpec("Explain in two sentences why the sky is blue."),
                      params=SamplingParams(seed=5, max_new_tokens=10_000))
    inspector = inside.Inspector(backend)
    for _ in range(4):  # warm up: caches, allocator, the embedding norms
        session.step(hidden_states=True, attention=True)
        inside.inspect(session, -2, inspector=inspector)

    timings: dict[str, list[tuple[float, float]]] = {
        "plain": [], "with_internals": [], "newest": [], "last": []}

    def timed(name: str, fn: object) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()  # type: ignore[operator]
        timings[name].append((time.perf_counter() - wall, time.process_time() - cpu))

    for _ in range(args.steps // 2):
        # Each timed step runs a real forward: nothing before it peeked its position.
        timed("plain", session.step)
        timed("with_internals", lambda: session.step(hidden_states=True, attention=True))
        before = backend.forward_tokens
        timed("newest", lambda: inside.inspect(session, -2, inspector=inspector))
        assert backend.forward_tokens == before, "the newest step's position ran a forward"
        timed("last", lambda: inside.inspect(session, -1, inspector=inspector))
        session.step()  # reuses the forward inspect(-1) ran (untimed)

    def ms(name: str, which: int) -> float:
        return statistics.median(t[which] for t in timings[name]) * 1000

    print(f"context {len(session.context_ids())} tokens, {args.threads} threads, "
          f"{len(timings['plain'])} + {len(timings['with_internals'])} steps; medians")
    print(f"{'':42s}{'wall ms':>9s}{'x step':>8s}{'cpu ms':>9s}{'x step':>8s}")
    rows = (("plain step", "plain"), ("step with hidden states + attention", "with_internals"),
            ("Inside report, newest step (no forward)", "newest"),
            ("Inside report, last position (+forward)", "last"))
    for label, name in rows:
        wall, cpu = ms(name, 0), ms(name, 1)
        print(f"{label:42s}{wall:9.1f}{wall / ms('plain', 0):8.2f}{cpu:9.1f}{cpu / ms('plain', 1):8.2f}")

if __name__ == "__main__":
    main()
