"""inspect and lens through typer's CliRunner, on the bundled model (loaded once)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tokentui.cli import app

runner = CliRunner()
PROMPT = ("The capital of France is", "--no-chat-template")


@pytest.fixture(autouse=True)
def reuse_bundled(monkeypatch, bundled):
    """Every invocation gets the already loaded bundled model instead of loading it again."""
    from tokentui.engine import models

    monkeypatch.setattr(models, "load", lambda *args, **kwargs: bundled)


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_inspect_json_has_every_pane():
    result = invoke("inspect", *PROMPT, "--json", "--show", "3", "--top-k", "20")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["index"] == 4 and data["sequence_length"] == 5
    assert data["token"]["text"] == " is" and data["token"]["bytes"] == "20 69 73"
    assert len(data["embedding"]["values"]) == 576 and len(data["embedding"]["nearest"]) == 8
    assert data["position"]["kind"] == "rope" and len(data["position"]["cos"]) == 64
    assert [layer["layer"] for layer in data["logit_lens"]] == list(range(30))
    assert len(data["logit_lens"][-1]["top"]) == 3
    assert data["logit_lens"][-1]["top"][0]["text"] == " Paris"
    assert len(data["attention_by_layer"]) == 30 and len(data["attention_by_layer"][0]["mean"]) == 5
    assert data["temperature_sweep"]["cuts"]["top_k"]["kept"] == 20


def test_inspect_last_layer_matches_next():
    lens = json.loads(invoke("inspect", *PROMPT, "--json").stdout)["logit_lens"][-1]["top"]
    nxt = json.loads(invoke("next", *PROMPT, "--json", "--show", "5").stdout)["candidates"]
    assert [t["id"] for t in lens] == [c["id"] for c in nxt]
    for t, c in zip(lens, nxt, strict=True):
        assert t["p"] == pytest.approx(c["p_base"], abs=1e-5)


def test_inspect_older_position_with_completion():
    data = json.loads(invoke("inspect", *PROMPT, "--completion-ids", "7042,30", "--position", "-2",
                             "--json").stdout)
    assert data["index"] == 5 and data["token"]["id"] == 7042 and not data["token"]["in_prompt"]
    assert data["target"]["id"] == 30
    assert all(layer["target_rank"] >= 1 for layer in data["logit_lens"])


def test_inspect_tables_for_people():
    result = invoke("inspect", *PROMPT, "--position", "1")
    assert result.exit_code == 0, result.stderr
    for title in ("Token", "Embedding", "rotary", "Logit lens", "Attention from position 1",
                  "Temperature knob"):
        assert title in result.stdout


def test_token_text_is_not_markup():
    result = invoke("inspect", "[bold]x[/bold]", "--no-chat-template", "--position", "0")
    assert result.exit_code == 0, result.stderr
    assert "piece [ · bytes 5b" in result.stdout


@pytest.mark.parametrize("position", ["5", "-6"])
def test_position_outside_is_one_line_and_exit_2(position):
    result = invoke("inspect", *PROMPT, "--position", position)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: position {position} is outside the sequence of 5 tokens "
                     "(use 0..4, or -1..-5 from the end)"]


def test_lens_json_and_table():
    result = invoke("lens", *PROMPT, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["tokens"]) == 5 and len(data["layers"]) == 30
    last = data["layers"][-1]["cells"]
    assert last[-1]["text"] == " Paris" and last[-1]["target_p"] is None
    assert all(0 < c["p"] <= 1 for layer in data["layers"] for c in layer["cells"])
    table = invoke("lens", *PROMPT)
    assert table.exit_code == 0 and "Logit lens" in table.stdout and "Paris" in table.stdout
