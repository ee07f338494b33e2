"""Long-lived objects kept out of the cyclic garbage collector's way.

A loaded model with torch, transformers (and, in the app, Textual) leaves about half a million
objects tracked by the collector. Each full collection walks all of them while holding the GIL:
150-250 ms on a 2-core machine, several times per 256 generated tokens, during which the run
stalls and a key press waits. ``settle`` runs once after a model loads: one collection (a previous
model's reference cycles go with it) and a freeze of what is left, so that later collections walk
only the objects made since. While a model loads, ``paused`` keeps the collector off: the load
makes objects by the hundred thousand and would trigger several full collections (about 0.8 s of
a 7 s load); ``settle`` afterwards does the one that is needed.
"""

from __future__ import annotations

import atexit
import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Frozen objects are never finalised: extension modules (triton's nanobind) would print
# "leaked instance" warnings on the terminal at exit. Nothing is frozen until ``settle``.
atexit.register(gc.unfreeze)


def settle() -> None:
    """Collect once, then move every object alive now out of future collections."""
    gc.unfreeze()  # what an earlier settle froze (a model now dropped) can be collected again
    gc.collect()
    gc.freeze()


@contextmanager
def paused() -> Iterator[None]:
    """No automatic collections inside (a model load); settle before leaving."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
