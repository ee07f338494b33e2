"""How long ``tokentui --help`` takes against a bare ``python -c "import typer, rich"``.

Runs them alternately in fresh interpreters (so a slow moment of the machine hits all alike) and
prints the medians and their ratio to the bare import (the goal: within 1.5x). Each help is timed
twice: as every later ``--help`` runs (its text cached, see ``tokentui/entry.py``) and as the first
one after an install or an upgrade (an empty cache: typer builds the commands).

    uv run python benchmarks/help_start.py --runs 11
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - t0


def uncached(cmd: list[str]) -> float:
    with tempfile.TemporaryDirectory() as empty:
        return wall(cmd, {**os.environ, "TOKENTUI_CACHE": empty})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    bare = [sys.executable, "-c", "import typer, rich"]
    helps = {name: [sys.executable, "-m", "tokentui", *argv, "--help"]
             for name, argv in (("tokentui --help", []), ("tokentui generate --help", ["generate"]),
                                ("tokentui score --help", ["score"]))}
    wall(bare)  # warm the file cache and the bytecode
    for cmd in helps.values():
        wall(cmd)
    times: dict[str, list[float]] = {"bare import typer, rich": []}
    for name in helps:
        times[name] = []
        times[name + " (first)"] = []
    for _ in range(args.runs):
        times["bare import typer, rich"].append(wall(bare))
        for name, cmd in helps.items():
            times[name].append(wall(cmd))
            times[name + " (first)"].append(uncached(cmd))
    base = statistics.median(times["bare import typer, rich"])
    print(f"{'command':36} {'median ms':>10} {'vs bare':>8}")
    for name, values in times.items():
        m = statistics.median(values)
        print(f"{name:36} {m * 1000:10.0f} {m / base:7.2f}x")


if __name__ == "__main__":
    main()
