"""Layers and heads are numbered from 0 on every face: the app's attention pane and Inside screen
show the same layer and head numbers, and the same weights, as the CLI's flags, tables and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.tui.conftest import SIZE, ready, settle
from tests.tui.test_inside_ui import open_inside
from tokentui.engine import launch
from tokentui.tui.widgets.attention import AttentionPane

PROMPT = "Tell me a story about a cat."


@pytest.fixture
def cli(tiny_backend, monkeypatch):
    from tokentui.cli import analysis, app, inside

    monkeypatch.setattr(analysis, "load_backend", lambda *a, **k: tiny_backend)
    monkeypatch.setattr(inside, "open_session", lambda config, completion_ids=(), **k:
                        launch.open_session(config, tiny_backend, completion_ids=completion_ids))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), env={"COLUMNS": "200"})


async def test_attention_layer_and_head_agree_with_the_cli(make_app, cli):
    result = cli("attention", PROMPT, "--layer", "1", "--head", "2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["layer"], data["head"], data["n_layers"], data["n_heads"]) == (1, 2, 2, 4)
    assert data["description"] == "layer 1, head 2"
    table = cli("attention", PROMPT, "--layer", "1", "--head", "2")
    assert "attention · layer 1, head 2" in " ".join(table.stdout.split())
    app = make_app(PROMPT)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert [t["id"] for t in data["tokens"]] == app.session.context_ids()
        await pilot.press("t")  # the Attention tab: layer 0, the mean of the heads
        await pilot.pause(0.5)
        await settle(pilot)
        pane = app.query_one(AttentionPane)
        assert pane.title == "Attention · layer 0 of 0-1 · mean of heads"
        await pilot.press("right_square_bracket", "right_curly_bracket", "right_curly_bracket",
                          "right_curly_bracket")
        await pilot.pause(0.5)
        await settle(pilot)
        assert (pane.layer, pane.head) == (1, 2)
        assert pane.title == "Attention · layer 1 of 0-1 · head 2 of 0-3"
        np.testing.assert_allclose(pane.matrix(), np.array(data["weights"]), atol=1e-5)


async def test_logit_lens_and_attention_by_layer_agree_with_the_cli(make_app, cli):
    result = cli("inspect", PROMPT, "--position", "-1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [layer["layer"] for layer in data["logit_lens"]] == [0, 1]
    assert [layer["layer"] for layer in data["attention_by_layer"]] == [0, 1]
    lens = cli("lens", PROMPT)
    assert lens.exit_code == 0, lens.output
    rows = [line.split()[1] for line in lens.stdout.splitlines() if line.startswith("│")
            and line.split()[1].isdigit()]
    assert rows[:2] == ["0", "1"]  # the grid's layer column, as --json and inspect number them
    app = make_app(PROMPT)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_inside(pilot, steps=0, lefts=0)
        assert [layer.layer for layer in screen.report.logit_lens] == [0, 1]
        assert [layer.layer for layer in screen.report.attention_by_layer] == [0, 1]
        for pane in ("#inside-lens-text", "#inside-attention-text"):  # the rows' layer labels
            lines = str(screen.query_one(pane).render()).splitlines()
            labels = [line.split()[0] for line in lines if line[:4].strip().isdigit()]
            assert labels == ["0", "1"], (pane, lines)
