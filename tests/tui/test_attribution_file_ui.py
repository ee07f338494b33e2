"""The app opens a saved attribution (palette: "Open saved attribution") as the heatmap; a bad
file is one line on the screen; F1 there explains it."""

from __future__ import annotations

import pytest

from tests.tui.conftest import SIZE, ready, settle
from tokentui.engine.analysis.attribution import AttributionConfig, attribute_token
from tokentui.engine.persist.files import json_text


async def test_the_app_opens_a_saved_attribution(make_app, tiny_backend, tokenizer, tmp_path):
    from textual.widgets import Input, Static

    from tokentui.tui.screens.attribution_file import AttributionFileScreen
    from tokentui.tui.screens.explain import ExplainScreen

    ids = tokenizer("Once upon a time there", add_special_tokens=False).input_ids
    config = AttributionConfig(method="saliency")
    result = attribute_token(tiny_backend, ids, len(ids) - 1, config)
    path = tmp_path / "saved.json"
    path.write_text(json_text({**result.to_json(), "options": config.to_json()}))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        commands["Open saved attribution"].callback()
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AttributionFileScreen)
        field = screen.query_one(Input)
        field.value = str(bad)
        await pilot.press("enter")
        await settle(pilot)
        status = str(screen.query_one("#attribution-file-status", Static).render())
        assert "not JSON" in status and screen.saved is None
        field.value = str(path)
        await pilot.press("enter")
        await settle(pilot)
        assert screen.saved is not None and screen.saved.normalized[0] == pytest.approx(result.normalized)
        status = str(screen.query_one("#attribution-file-status", Static).render())
        assert "1 output token" in status and "saved by J" in status
        await pilot.press("f1")
        await settle(pilot)
        assert isinstance(app.screen, ExplainScreen) and app.screen.pane_id == "attribution_file"
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, AttributionFileScreen)
