"""TUI fixtures: the app over the tiny random model (fast) or the bundled model (greedy)."""

from __future__ import annotations

import contextlib

import pytest

from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec

SIZE = (120, 40)
"""Terminal size of the pilot tests and snapshots (a compact test uses 80x24)."""


@pytest.fixture
def make_app(tiny_loaded):
    """Build a TokenApp over a fresh tiny backend; returns a factory taking overrides."""
    from tokentui.engine.backends.local import LocalBackend
    from tokentui.tui.app import TokenApp

    apps = []

    def build(prompt: str | None = "Tell me a story about a cat.", *, loaded=None,
              params: SamplingParams | None = None, **kwargs):
        source = loaded or tiny_loaded
        app = TokenApp(lambda: LocalBackend(source),
                       params=params or SamplingParams(seed=7, max_new_tokens=12),
                       prompt=PromptSpec(prompt or ""), **kwargs)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.engine.shutdown()


async def ready(pilot) -> None:
    """Wait until the model is loaded and the session's first view is drawn."""
    app = pilot.app
    for _ in range(400):
        await pilot.pause(0.01)
        if app.ready and (app.session is not None or not app.initial_prompt.text) and \
                all(worker.is_finished for worker in app.workers):
            break
    await settle(pilot)


async def settle(pilot) -> None:
    """Let every Textual worker finish and the messages they posted be handled."""
    for _ in range(6):
        await finished(pilot.app)
        await pilot.pause()


async def finished(app) -> None:
    """Wait for the app's workers; a failed one is the app's to report (its one failure handler
    writes the status line, which the tests read), not the test's to raise."""
    from textual.worker import WorkerFailed

    with contextlib.suppress(WorkerFailed):
        await app.workers.wait_for_complete()
