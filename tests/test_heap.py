"""A loaded model is kept out of later garbage collections, and a dropped one is still freed."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc, sys, weakref
from tokentui.engine.launch import ModelConfig, open_backend

a = open_backend(ModelConfig(spec=sys.argv[1]))
assert gc.isenabled(), "the collector is on again after the load"
frozen = gc.get_freeze_count()
params = sum(1 for _ in a.loaded.model.parameters())
assert frozen > params, (frozen, params)
model = weakref.ref(a.loaded.model)
a.loaded.model._cycle = [a.loaded.model]  # freed only by the cyclic collector
del a
b = open_backend(ModelConfig(spec=sys.argv[1]))  # a model switch settles again
assert model() is None, "the dropped model was kept alive by the freeze"
assert b.loaded.model is not None
print("ok")
"""


def test_a_loaded_model_is_frozen_and_a_dropped_one_is_collected(tiny_dir) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_dir)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
    assert "leaked" not in done.stderr  # frozen objects are released at exit
