"""The app's cost per generated token against the CLI's, and key latency during a run.

Drives, alternately in one run, on the bundled model with greedy decoding:

* ``tokentui generate PROMPT --greedy --ignore-eos -n N --jsonl`` (the engine with nothing
  drawn): time from the first JSON line to the last, per token after the first;
* the real app headless (Textual's ``run_test``, 120x40): ``g``, then the run's seconds per
  token (the first step of a run reuses the distribution the app computed when the prompt
  was set, so the run makes N-1 forward passes, as the CLI does after its first line);
* the real app in tmux (120x40): the same, read from the screen's final status line.

During each app run it presses ``c`` (cycle colours: harmless) a few times and times how
long until the token pane's legend shows the new mode (headless: until the widget has it;
tmux: until ``tmux capture-pane`` shows it, the whole way to the screen). ``--same-threads``
runs the CLI with as many torch threads as the app uses (cores - 1), for a like-for-like
ratio; without it the CLI keeps torch's default (all cores). Prints ms/token for each, the
app/CLI ratios, and the latencies.

    uv run python benchmarks/app_rate.py            # 128 tokens, 1 round
    uv run python benchmarks/app_rate.py -n 64 --rounds 2 --no-tmux
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "Write a long story about a lighthouse keeper."
MODES = ("bands", "probability", "entropy", "rank")
CHECKOUT = ROOT
"""Where the CLI and the tmux app run from (``--root``: an older checkout, for before/after)."""


def cli_ms_per_token(n: int, threads: int | None = None) -> float:
    cmd = [sys.executable, "-m", "tokentui", "generate", PROMPT, "--greedy", "--ignore-eos",
           "-n", str(n), "--jsonl"]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=CHECKOUT, env=env)
    stamps = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip().startswith("{") and "token" in json.loads(line):
            stamps.append(time.perf_counter())
    proc.wait()
    if len(stamps) < 2:
        raise SystemExit(f"the CLI printed {len(stamps)} steps")
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1) * 1000


async def _headless(n: int, presses: int) -> tuple[float, list[float]]:
    from tokentui.engine.launch import ModelConfig, RunConfig
    from tokentui.engine.params import SamplingParams
    from tokentui.engine.prompts import PromptSpec
    from tokentui.tui.app import build_app, leave_ui_a_core
    from tokentui.tui.widgets.token_stream import TokenStream

    leave_ui_a_core()
    config = RunConfig(model=ModelConfig(), prompt=PromptSpec(PROMPT),
                       params=SamplingParams(greedy=True, ignore_eos=True, max_new_tokens=n))
    app = build_app(config)
    latencies: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        while app.session is None or app.workers._workers:
            await asyncio.sleep(0.05)
        await pilot.pause(0.3)
        stream = app.query_one(TokenStream)
        await pilot.press("g")
        while not app.generating:
            await asyncio.sleep(0.005)
        for _ in range(presses):
            await asyncio.sleep(0.5)
            if not app.generating:
                break
            before = str(stream.border_subtitle)
            started = time.perf_counter()
            app.simulate_key("c")
            while str(stream.border_subtitle) == before:
                await asyncio.sleep(0.001)
            latencies.append((time.perf_counter() - started) * 1000)
        while app.generating or app.session.current.finish_reason is None:
            await asyncio.sleep(0.02)
        await pilot.pause(0.2)
        tokens = len(app.session.current.steps)
        seconds = tokens / app.tokens_per_s
    app.engine.shutdown()
    return seconds / max(1, tokens - 1) * 1000, latencies


def headless_ms_per_token(n: int, presses: int) -> tuple[float, list[float]]:
    return asyncio.run(_headless(n, presses))


def tmux_ms_per_token(n: int, presses: int) -> tuple[float, list[float]]:
    sys.path.insert(0, str(ROOT / "tests"))
    from tmux_driver import TmuxApp

    latencies: list[float] = []
    args = ["-p", PROMPT, "--greedy", "--ignore-eos", "-n", str(n)]
    with TmuxApp(args, width=120, height=40, cwd=CHECKOUT) as app:
        app.wait_for("ready:", timeout=180)
        time.sleep(1.0)
        app.send_keys("g")
        time.sleep(0.3)  # (an older app says nothing while it generates: no text to wait on)
        mode = 0
        for _ in range(presses):
            time.sleep(0.5)
            screen = app.capture()
            if "generated" in screen:
                break
            mode = (mode + 1) % len(MODES)
            want = f"{MODES[mode]}:"
            started = time.perf_counter()
            app.send_keys("c")
            app.wait_for(lambda s, want=want: any(want in line and "─╯" in line
                                                   for line in s.splitlines()),
                         timeout=10, interval=0.005)
            latencies.append((time.perf_counter() - started) * 1000)
        screen = app.wait_for("generated", timeout=600, interval=0.1)
        found = re.search(r"generated (\d+) tokens in ([\d.]+) s", screen)
        assert found, screen
        tokens, seconds = int(found.group(1)), float(found.group(2))
    return seconds / max(1, tokens - 1) * 1000, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--presses", type=int, default=5, help="key presses timed per app run")
    parser.add_argument("--no-tmux", action="store_true")
    parser.add_argument("--no-headless", action="store_true")
    parser.add_argument("--same-threads", action="store_true",
                        help="the CLI with the app's torch thread count (cores - 1)")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="run the CLI and the tmux app from this checkout (e.g. before a change); "
                             "the headless run always uses this one")
    args = parser.parse_args()
    global CHECKOUT
    CHECKOUT = args.root.resolve()
    rows: dict[str, list[float]] = {"cli": [], "headless": [], "tmux": []}
    keys: dict[str, list[float]] = {"headless": [], "tmux": []}
    for r in range(args.rounds):
        threads = max(1, (os.cpu_count() or 1) - 1) if args.same_threads else None
        rows["cli"].append(cli_ms_per_token(args.tokens, threads))
        print(f"round {r + 1}: cli {rows['cli'][-1]:.1f} ms/token", flush=True)
        if not args.no_headless:
            ms, lat = headless_ms_per_token(args.tokens, args.presses)
            rows["headless"].append(ms)
            keys["headless"] += lat
            print(f"round {r + 1}: app headless {ms:.1f} ms/token", flush=True)
        if not args.no_tmux:
            ms, lat = tmux_ms_per_token(args.tokens, args.presses)
            rows["tmux"].append(ms)
            keys["tmux"] += lat
            print(f"round {r + 1}: app in tmux {ms:.1f} ms/token", flush=True)
    cli = statistics.median(rows["cli"])
    print(f"\n{args.tokens} tokens, greedy, bundled model, {os.cpu_count()} cores, "
          f"{args.rounds} round(s); medians:")
    threads = "app's thread count" if args.same_threads else "torch's default threads"
    print(f"  cli generate --jsonl   {cli:7.1f} ms/token   ({threads})")
    for face in ("headless", "tmux"):
        if rows[face]:
            ms = statistics.median(rows[face])
            print(f"  app {face:<18} {ms:7.1f} ms/token   ratio app/cli {ms / cli:.2f}")
    for face, lat in keys.items():
        if lat:
            print(f"  key latency ({face}): median {statistics.median(lat):.0f} ms, "
                  f"max {max(lat):.0f} ms over {len(lat)} presses")


if __name__ == "__main__":
    main()
