"""Write the README's screenshots with the app itself (``app.export_screenshot()``).

Run: ``uv run python scripts/screenshots.py`` (bundled model, greedy, so the pictures are
reproducible). Writes ``screenshots/main-generating.svg``, ``branch.svg``, ``branch-list.svg``,
``attention.svg``, ``compact-80x24.svg``, ``inside.svg``, ``attribution.svg``, ``compare.svg``,
``score.svg`` (a text scored, on its most surprising token) and ``lockstep.svg`` (the bundled
model in float32 against itself in bfloat16).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

OUT = Path(__file__).resolve().parent.parent / "screenshots"
PROMPT = "Write a haiku about the sea."


SCORED_TEXT = ("The quick brown fox jumps over the lazy dog. Then it ordered a pizza with extra "
               "pineapple and paid for it in seashells.\n")


async def settle(pilot, rounds: int = 4) -> None:
    from textual.worker import WorkerFailed

    for _ in range(rounds):
        with contextlib.suppress(WorkerFailed):  # the status line says what failed
            await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.05)


async def until(pilot, done: Callable[[], bool], seconds: float = 120.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if done():
            return
        await pilot.pause(0.05)


async def shoot(name: str, size: tuple[int, int], scenario: Callable[..., Awaitable[None]],
                loaded) -> Path:
    from tokentui.engine.backends.local import LocalBackend
    from tokentui.engine.params import SamplingParams
    from tokentui.tui.app import TokenApp

    app = TokenApp(lambda: LocalBackend(loaded), prompt=PROMPT,
                   params=SamplingParams(greedy=True, temperature=0.0, max_new_tokens=60))
    try:
        async with app.run_test(size=size) as pilot:
            for _ in range(600):
                await pilot.pause(0.02)
                if app.session is not None:
                    break
            await settle(pilot)
            await scenario(pilot)
            path = OUT / f"{name}.svg"
            path.write_text(app.export_screenshot(title=f"tokentui · {name}"))
            return path
    finally:
        app.engine.shutdown()


async def mid_generation(pilot) -> None:
    """Generate, stop part-way, and show the stream with the chart tab open."""
    app = pilot.app
    await pilot.press("g")
    stream = app.query_one("#stream")
    for _ in range(3000):
        await pilot.pause(0.01)
        if len(stream.steps) >= 14:
            break
    await pilot.press("escape")
    await settle(pilot)
    app.query_one("#side").active = "tab-chart"
    await pilot.press("left", "left", "left")
    await settle(pilot)


async def branch(pilot) -> None:
    """Step eight tokens, go back three, take the second alternative, continue."""
    for _ in range(8):
        await pilot.press("n")
        await settle(pilot, 2)
    await pilot.press("left", "left", "left", "down", "enter")
    await settle(pilot)
    for _ in range(5):
        await pilot.press("n")
        await settle(pilot, 2)


async def branch_list(pilot) -> None:
    await branch(pilot)
    await pilot.press("b")
    await settle(pilot)


async def attention(pilot) -> None:
    for _ in range(10):
        await pilot.press("n")
        await settle(pilot, 2)
    pilot.app.query_one("#side").active = "tab-attention"
    await pilot.press("right_square_bracket", "right_square_bracket", "left", "left")
    await pilot.pause(0.6)
    await settle(pilot)


async def compact(pilot) -> None:
    for _ in range(6):
        await pilot.press("n")
        await settle(pilot, 2)


async def inside(pilot) -> None:
    """The Inside screen on a generated token: pieces, embedding, position, lens, attention, T."""
    for _ in range(8):
        await pilot.press("n")
        await settle(pilot, 2)
    await pilot.press("left", "i")
    await pilot.pause(0.5)
    await settle(pilot)


async def attribution(pilot) -> None:
    """Integrated gradients of a generated token over the prompt, as a heat scale."""
    for _ in range(10):
        await pilot.press("n")
        await settle(pilot, 2)
    pilot.app.attribution_view.method = "integrated_gradients"
    await pilot.press("left", "a")
    await settle(pilot)


async def compare(pilot) -> None:
    """Two branches side by side from their fork, with the exact KL."""
    await branch(pilot)
    await pilot.press("C")
    await settle(pilot)
    await pilot.press("space", "down", "space")
    await settle(pilot)
    await pilot.press("k")
    await settle(pilot)
    await pilot.press("down", "down")
    await settle(pilot)


async def score(pilot) -> None:
    """``s``: a short text scored as given tokens, the cursor on its most surprising token."""
    import tempfile

    from tokentui.tui.screens.score import ScoreScreen

    app = pilot.app
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write(SCORED_TEXT)
    await pilot.press("s")
    await until(pilot, lambda: isinstance(app.screen, ScoreScreen), 10)
    app.screen.query_one("#score-path").value = fh.name
    await pilot.press("enter")
    await until(pilot, lambda: not isinstance(app.screen, ScoreScreen))
    await settle(pilot)
    os.unlink(fh.name)


async def lockstep(pilot) -> None:
    """``D``: the greedy branch read by the bundled model in float32 (A) and bfloat16 (B)."""
    from textual.widgets import Select

    from tokentui.tui.screens.lockstep import LockstepScreen

    app = pilot.app
    for _ in range(10):
        await pilot.press("n")
        await settle(pilot, 2)
    await pilot.press("D")
    await pilot.pause(0.3)
    app.screen.query_one("#model-dtype", Select).value = "bfloat16"
    app.screen.query_one("#model-spec").focus()
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, LockstepScreen) and len(app.screen.divs) >= 10
                and not app.screen.busy)
    await pilot.press("k")
    await settle(pilot)


async def main() -> None:
    import torch

    from tokentui.engine import models

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    loaded = models.load()
    OUT.mkdir(exist_ok=True)
    for name, size, scenario in (
        ("main-generating", (140, 44), mid_generation),
        ("branch", (140, 44), branch),
        ("branch-list", (140, 44), branch_list),
        ("attention", (140, 44), attention),
        ("compact-80x24", (80, 24), compact),
        ("inside", (140, 44), inside),
        ("attribution", (140, 44), attribution),
        ("compare", (140, 44), compare),
        ("score", (140, 44), score),
        ("lockstep", (140, 44), lockstep),
    ):
        print(await shoot(name, size, scenario, loaded))


if __name__ == "__main__":
    asyncio.run(main())
