"""Snapshot tests (pytest-textual-snapshot): main screen, help screen, branch list.

Deterministic: the tiny random model, a fixed seed, a fake clock, a fixed size and no
blinking cursors.
"""

from __future__ import annotations

import itertools

from textual.widgets import Input, TextArea

from tests.tui.conftest import SIZE, ready, settle


def fake_clock():
    """Each reading 0.05 s after the previous one: tokens/s is the same on every machine."""
    ticks = itertools.count()
    return lambda: next(ticks) * 0.05


def steps_then(*keys: str):
    async def run_before(pilot) -> None:
        await ready(pilot)
        for widget in pilot.app.query(Input).results() :
            widget.cursor_blink = False
        for widget in pilot.app.query(TextArea).results():
            widget.cursor_blink = False
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
    return run_before


def test_main_screen(snap_compare, make_app):
    app = make_app(clock=fake_clock())
    assert snap_compare(app, terminal_size=SIZE, run_before=steps_then("n", "n", "n", "n", "left"))


def test_main_screen_compact(snap_compare, make_app):
    app = make_app(clock=fake_clock())
    assert snap_compare(app, terminal_size=(80, 24), run_before=steps_then("n", "n", "n"))


def test_help_screen(snap_compare, make_app):
    app = make_app(clock=fake_clock())
    assert snap_compare(app, terminal_size=SIZE, run_before=steps_then("question_mark"))


def test_branch_list(snap_compare, make_app):
    app = make_app(clock=fake_clock())
    assert snap_compare(app, terminal_size=SIZE,
                        run_before=steps_then("n", "n", "n", "left", "down", "enter", "b"))
