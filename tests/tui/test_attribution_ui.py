"""Pilot tests of the attribution view (a, A, escape) and the graph export (e) on the tiny model."""

from __future__ import annotations

import dataclasses

import pytest

from tests.tui.conftest import SIZE, ready, settle
from tokentui.engine.analysis.attribution import attribute_token
from tokentui.engine.params import SamplingParams
from tokentui.tui.attribution_view import CYCLE, TARGET_STYLE, heat_style
from tokentui.tui.widgets.attention import AttentionPane
from tokentui.tui.widgets.status import StatusLine
from tokentui.tui.widgets.token_stream import TokenStream


def status_text(app) -> str:
    return str(app.query_one(StatusLine).render())


async def step(pilot, n: int) -> None:
    for _ in range(n):
        await pilot.press("n")
        await settle(pilot)


def stream_ids(stream: TokenStream) -> list[int]:
    return [t.id for t in stream.prompt_tokens] + [s.token.id for s in stream.steps]


async def test_attribute_cycle_and_clear(make_app):
    app = make_app(params=SamplingParams(seed=7, max_new_tokens=8))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await step(pilot, 4)
        stream = app.query_one(TokenStream)
        await pilot.press("left")  # stepping leaves the cursor on token 3; now on token 2
        await settle(pilot)
        assert stream.cursor == 2
        n_prompt = len(stream.prompt_tokens)
        target = n_prompt + 2
        # the attention pane follows the cursor's token
        assert app.query_one(AttentionPane).focus_row == target

        await pilot.press("a")
        await settle(pilot)
        shown = app.attribution_view.overlay
        assert shown is not None and shown.target == target and shown.result.method == "saliency"
        ids = app.session.context_ids()
        assert stream_ids(stream) == ids
        direct = attribute_token(app.backend, ids[:target + 1], target, "saliency")
        assert len(shown.result.scores) == target  # exactly the tokens before the target
        assert shown.result.scores == pytest.approx(direct.scores, rel=1e-4, abs=1e-6)
        styles = stream.overlay(ids)
        assert styles[target] == TARGET_STYLE
        assert [styles[i] for i in range(target)] == [heat_style(v, mono=False) for v in direct.normalized]
        assert "attribution · saliency" in str(stream.border_subtitle)
        assert "attribution of position" in status_text(app)

        await pilot.press("A")  # recomputes with the next method
        await settle(pilot)
        assert app.attribution_view.method == CYCLE[1] == "input_x_gradient"
        assert app.attribution_view.overlay.result.method == "input_x_gradient"
        assert app.attribution_view.overlay.target == target

        await pilot.press("a")  # same token again: clear
        await settle(pilot)
        assert app.attribution_view.overlay is None and stream.overlay is None
        assert "attribution cleared" in status_text(app)

        await pilot.press("A")  # not shown: only the method changes
        assert app.attribution_view.method == "integrated_gradients"
        assert "integrated_gradients" in status_text(app)
        app.attribution_view.method = "attention_last"
        await pilot.press("left", "a")  # another token, an attention method
        await settle(pilot)
        assert app.attribution_view.overlay.target == target - 1
        assert app.attribution_view.overlay.result.method == "attention_last"
        direct = attribute_token(app.backend, ids[:target], target - 1, "attention_last")
        assert app.attribution_view.overlay.result.scores == pytest.approx(direct.scores, rel=1e-4, abs=1e-6)

        await pilot.press("escape")
        await settle(pilot)
        assert app.attribution_view.overlay is None
        assert "bands" in str(stream.border_subtitle)


async def test_attribution_needs_a_token_and_gradients(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("a")  # cursor on the next slot: nothing to attribute
        await settle(pilot)
        assert app.attribution_view.overlay is None
        assert "move the cursor onto a token" in status_text(app)
        await step(pilot, 2)
        await pilot.press("left")
        app.backend.capabilities = dataclasses.replace(app.backend.capabilities, gradients=False)
        await pilot.press("a")
        await settle(pilot)
        assert app.attribution_view.overlay is None
        assert app.query_one(StatusLine).has_class("-error")
        assert "saliency needs gradients" in status_text(app)
        assert app.is_running


async def test_hostile_token_text_stays_literal(make_app):
    app = make_app(prompt="[bold red]boom[/bold red] <b>x</b>")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await step(pilot, 2)
        await pilot.press("left", "a")
        await settle(pilot)
        stream = app.query_one(TokenStream)
        assert app.attribution_view.overlay is not None
        plain = stream.rendered.plain.replace("\n", "")
        assert "[bold·red]boom[/bold·red]·<b>x</b>" in plain


async def test_export_graph_writes_html(make_app, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app(params=SamplingParams(seed=7, max_new_tokens=4))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await step(pilot, 2)
        await pilot.press("e")
        await settle(pilot)
        files = list(tmp_path.glob("tokentui-graph-*.html"))
        assert len(files) == 1
        assert "plotly" in files[0].read_text(encoding="utf-8").lower()
        assert f"wrote {files[0]}" in status_text(app)


async def test_options_dialog_and_json_dump(make_app, tmp_path, monkeypatch):
    """``o`` sets method, reduction, steps and baseline (validated by the engine); ``J`` saves
    the shown attribution, scores and options, as JSON in the current directory."""
    import json

    from textual.widgets import Input, Select

    from tokentui.engine.analysis.attribution import AttributionConfig
    from tokentui.tui.screens.attribution_options import AttributionOptionsScreen

    monkeypatch.chdir(tmp_path)
    app = make_app(params=SamplingParams(seed=7, max_new_tokens=8))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await step(pilot, 3)
        await pilot.press("J")  # nothing shown yet
        assert "no attribution shown" in status_text(app) and not list(tmp_path.glob("*.json"))
        await pilot.press("a")
        await settle(pilot)
        target = app.attribution_view.overlay.target

        await pilot.press("o")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, AttributionOptionsScreen)
        # enter on an open list picks the entry, it does not apply the dialog
        await pilot.press("space", "down", "enter")
        await pilot.pause()
        assert app.screen is screen and screen.query_one("#option-method", Select).value == CYCLE[1]
        screen.query_one("#option-method", Select).value = "integrated_gradients"
        screen.query_one("#option-aggregation", Select).value = "sum"
        screen.query_one("#option-steps", Input).value = "0"
        screen.query_one("#option-baseline", Input).value = "eos"
        await pilot.press("enter")  # a bad value: named, nothing applied
        await pilot.pause()
        assert app.screen is screen
        assert "steps must be between 1 and 1024" in str(screen.query_one("#options-error").render())
        screen.query_one("#option-steps", Input).value = "4"
        screen.query_one("#option-baseline", Input).value = "²"  # a digit, but no token id
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen and app.is_running
        assert "unknown baseline" in str(screen.query_one("#options-error").render())
        screen.query_one("#option-baseline", Input).value = "eos"
        await pilot.press("enter")
        await settle(pilot)
        expected = AttributionConfig(method="integrated_gradients", aggregation="sum", n_steps=4,
                                     baseline="eos")
        assert app.attribution_view.config == expected
        shown = app.attribution_view.overlay  # recomputed with the new options
        assert shown.config == expected and shown.target == target
        ids = app.session.context_ids()
        direct = attribute_token(app.backend, ids[:target + 1], target, expected)
        assert shown.result.scores == pytest.approx(direct.scores, rel=1e-4, abs=1e-6)
        assert "integrated_gradients · sum · 4 steps · baseline eos" in status_text(app)

        await pilot.press("J")
        files = list(tmp_path.glob("tokentui-attribution-*.json"))
        assert len(files) == 1 and f"saved {files[0].name}" in status_text(app)
        data = json.loads(files[0].read_text())
        assert data["options"] == {"method": "integrated_gradients", "aggregation": "sum",
                                   "baseline": "eos", "n_steps": 4}
        assert data["target_position"] == target
        assert data["scores"] == pytest.approx(list(direct.scores), rel=1e-4, abs=1e-6)

        await pilot.press("o")
        await pilot.pause()
        await pilot.press("escape")  # cancel keeps everything
        await pilot.pause()
        assert app.attribution_view.config == expected
