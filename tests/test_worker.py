"""The async facade: steps stream one at a time; cancel leaves the session consistent."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tokentui.engine.engine_thread import EngineWorker
from tokentui.engine.errors import SessionError


async def test_stream_yields_each_step_from_the_engine_thread(tiny_session):
    worker = EngineWorker()
    seen = []
    threads = set()

    def run(cancel):
        for step in tiny_session.generate(stop_event=cancel):
            threads.add(threading.current_thread().name)
            yield step

    async for step in worker.stream(run):
        seen.append(step.index)
    assert seen == list(range(tiny_session.params.max_new_tokens))
    assert threads and all(name.startswith("tokentui-engine") for name in threads)
    worker.shutdown()


async def test_cancel_mid_generation_keeps_the_branch_consistent(tiny_session):
    worker = EngineWorker()
    tiny_session.set_params(tiny_session.params.with_changes(max_new_tokens=200, ignore_eos=True))
    received = []
    async for step in worker.stream(lambda cancel: tiny_session.generate(stop_event=cancel)):
        received.append(step)
        if len(received) == 5:
            worker.cancel()
    assert 5 <= len(received) <= 6
    assert len(tiny_session.current) == len(received)
    assert [s.index for s in tiny_session.current.steps] == list(range(len(received)))
    # The session still works after the cancel.
    step = await worker.call(tiny_session.step)
    assert step.index == len(received)
    worker.shutdown()


async def test_errors_reach_the_awaiting_side(tiny_session):
    worker = EngineWorker()
    with pytest.raises(SessionError, match="nothing to delete"):
        await worker.call(tiny_session.delete_last)
    worker.shutdown()


async def test_the_event_loop_stays_free_while_the_model_runs(tiny_session):
    worker = EngineWorker()
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    async for _ in worker.stream(lambda cancel: tiny_session.generate(stop_event=cancel)):
        pass
    task.cancel()
    assert ticks > 0
    worker.shutdown()


def test_cancel_calls_the_registered_hooks():
    worker = EngineWorker()
    calls = []
    worker.cancel_hooks.append(lambda: calls.append("abort"))
    worker.cancel()
    assert calls == ["abort"] and worker.cancel_event.is_set()
    worker.shutdown()
