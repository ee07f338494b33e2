"""The async facade: one thread owns the model; callers await results or iterate steps.

Every engine call from a UI goes through an :class:`EngineWorker`, so the event loop
never waits on a forward pass. Cancellation is an event checked between forward passes:
a cancelled run stops after the step in flight and leaves the session consistent.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


class EngineWorker:
    """Runs engine calls on one dedicated thread, in submission order."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokentui-engine")
        self.cancel_event = threading.Event()
        """Set by :meth:`cancel`; cleared when a new stream starts."""
        self.cancel_hooks: list[Callable[[], None]] = []
        """Also called by :meth:`cancel` (a remote backend aborts its request in flight)."""

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the engine thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def stream(self, make_iter: Callable[[threading.Event], Iterator[T]]
                     ) -> AsyncIterator[T]:
        """Iterate ``make_iter(cancel_event)`` on the engine thread, yielding each item here.

        ``make_iter`` receives the cancel event (pass it down to ``Session.generate``).
        Leaving the ``async for`` early cancels the run.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()
        self.cancel_event = cancel

        def produce() -> None:
            try:
                for item in make_iter(cancel):
                    loop.call_soon_threadsafe(queue.put_nowait, item)
                    if cancel.is_set():
                        break
            except BaseException as exc:  # delivered to the awaiting side
                loop.call_soon_threadsafe(queue.put_nowait, _Failure(exc))
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        future = loop.run_in_executor(self._executor, produce)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            cancel.set()
            await asyncio.shield(future)

    def cancel(self) -> None:
        """Ask the running stream to stop after the current forward pass."""
        self.cancel_event.set()
        for hook in self.cancel_hooks:
            hook()

    def shutdown(self) -> None:
        self.cancel_event.set()
        self._executor.shutdown(wait=False, cancel_futures=True)


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
