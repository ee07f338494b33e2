"""Snapshots of the Inside screen (``i``) and an F1 explanation, on the tiny random model.

Deterministic like ``test_snapshots.py``: a fixed seed, a fake clock, a fixed size.
"""

from __future__ import annotations

from tests.tui.conftest import SIZE
from tests.tui.test_snapshots import fake_clock, steps_then


def test_inside_screen(snap_compare, make_app):
    app = make_app(clock=fake_clock())
    assert snap_compare(app, terminal_size=SIZE, run_before=steps_then("n", "n", "n", "left", "i"))


def test_inside_compact_with_explanation(snap_compare, make_app):
    app = make_app(clock=fake_clock())
    assert snap_compare(app, terminal_size=(80, 24),
                        run_before=steps_then("n", "n", "i", "tab", "f1"))
