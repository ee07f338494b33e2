"""Pilot tests of the constraint panel on the tiny random model (real vocabulary).

The random model wants nothing in particular, so whatever comes out matching the
constraint is the mask's doing.
"""

from __future__ import annotations

import re

from textual.widgets import Checkbox, Select, TabbedContent, TextArea

from tests.tui.conftest import SIZE, ready, settle
from tokentui.engine.params import SamplingParams
from tokentui.tui.widgets.alternatives import AlternativesTable
from tokentui.tui.widgets.constraint_panel import THEN, ConstraintPanel
from tokentui.tui.widgets.status import StatusLine
from tokentui.tui.widgets.token_stream import TokenStream


def status_text(app) -> str:
    return str(app.query_one(StatusLine).render())


def why_column(app) -> list[tuple[bool, str]]:
    """``(valid, why)`` for each row of the alternatives table."""
    table = app.query_one(AlternativesTable)
    return [(c.valid, str(table.get_cell(str(i), "why"))) for i, c in enumerate(table.candidates)]


async def switch_constraint(pilot, kind: str | None = None, text: str | None = None) -> None:
    """Open the Constraint tab, fill it if asked, and click the 'on' box."""
    app = pilot.app
    app.query_one("#side", TabbedContent).active = "tab-constraint"
    await pilot.pause()
    if kind is not None:
        app.query_one("#constraint-kind", Select).value = kind
    if text is not None:
        app.query_one("#constraint-text", TextArea).load_text(text)
    await pilot.click("#constraint-on")
    await settle(pilot)


async def test_choice_from_the_panel(make_app):
    # top-k 1 keeps only the model's favourite, which the choice forbids: every step has a note
    app = make_app("Is the sky blue?", params=SamplingParams(seed=7, top_k=1, max_new_tokens=12))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await switch_constraint(pilot, "choice", "yes\nno")
        assert app.session.constraint.description == "choice: yes | no"
        assert "choice: yes | no" in app.sub_title
        assert app.query_one("#constraint-on", Checkbox).value
        rows = why_column(app)
        assert any(not valid for valid, _ in rows)
        assert all(why and why != "invalid" for valid, why in rows if not valid)
        await pilot.press("n")
        await settle(pilot)
        assert "the filters left no token the constraint allows" in status_text(app)
        await pilot.press("g")
        await settle(pilot)
        assert app.session.completion_text() in {"yes", "no"}
        assert app.session.current.finish_reason == "constraint"
        assert "constraint finished" in status_text(app)


async def test_regex_reasons_then_off(make_app):
    app = make_app("Give me a code.", params=SamplingParams(seed=3, max_new_tokens=12))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await switch_constraint(pilot, "regex", "[0-9]{3}-[0-9]{2}")
        for _ in range(3):
            await pilot.press("n")
            await settle(pilot)
        assert re.fullmatch(r"[0-9]{3}", app.session.completion_text())
        app.query_one(TokenStream).focus()
        await pilot.press("end")  # the cursor onto the next token
        await settle(pilot)
        rows = why_column(app)
        assert any(why == "the regex requires '-' next" for valid, why in rows if not valid)
        await pilot.press("g")
        await settle(pilot)
        assert re.fullmatch(r"[0-9]{3}-[0-9]{2}", app.session.completion_text())
        assert "constraint finished" in status_text(app)

        await switch_constraint(pilot)  # untick: off
        assert app.session.constraint is None
        assert "constraint off" in status_text(app)
        dist = await app.engine.call(app.session.peek)
        assert dist.n_valid == dist.vocab_size
        # the last step keeps its history (invalid then, and said so); the next token is free
        assert all(why == THEN for valid, why in why_column(app) if not valid)
        app.query_one(TokenStream).focus()
        await pilot.press("end")
        await settle(pilot)
        table = app.query_one(AlternativesTable)
        assert all(c.valid for c in table.candidates) and "why" not in table.columns
        assert "regex" not in app.sub_title


async def test_invalid_regex_is_one_line_and_not_applied(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await switch_constraint(pilot, "regex", "(")
        info = str(app.query_one("#constraint-info").render())
        assert info.startswith("✗ invalid regex '('") and "\n" not in info
        assert app.session.constraint is None
        assert not app.query_one("#constraint-on", Checkbox).value
        assert "constraint not applied: invalid regex" in status_text(app)
        await pilot.press("n")  # still usable, unconstrained
        await settle(pilot)
        assert len(app.session.current) == 1


async def test_choice_flag_applies_at_start(tiny_dir):
    """``tokentui --choice 'yes|no'`` through the CLI's own RunConfig and the app factory (the
    model is the tiny random one, loaded from its folder like any ``--model DIR``)."""
    from tokentui.cli.options import SharedOptions
    from tokentui.cli.runtime import run_config
    from tokentui.tui.app import build_app

    opts = SharedOptions({"choice": "yes|no", "seed": 7, "max_new_tokens": 8, "model": str(tiny_dir)})
    app = build_app(run_config(opts, "Is the sky blue? Answer yes or no."))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            assert app.session.constraint.description == "choice: yes | no"
            assert app.query_one(ConstraintPanel).applied == ("choice", "yes\nno")
            assert "choice: yes | no" in app.sub_title
            await pilot.press("f")
            await pilot.press(*"maybe", "enter")
            await settle(pilot)
            assert "the choice forbids 'maybe' at the start" in status_text(app)
            assert len(app.session.current) == 0
            await pilot.press("g")
            await settle(pilot)
            assert app.session.completion_text() in {"yes", "no"}
    finally:
        app.engine.shutdown()
