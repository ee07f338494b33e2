"""A saved attribution opens again as the heatmap: ``attribute --open FILE`` (no model) prints the
table a live run prints, for both saved formats (``attribute --json`` and ``J`` in the app); a bad
file is one ``error:`` line. The app's screen: tests/tui/test_attribution_file_ui.py."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tokentui.engine.analysis.attribution import AttributionConfig, attribute_token
from tokentui.engine.persist.attribution_file import read_attribution
from tokentui.engine.persist.files import json_text

COMPLETION_TEXT = " and then"


@pytest.fixture
def cli(tiny_backend, monkeypatch):
    """The CLI over the tiny model; ``opened`` runs with a loader that fails, to show --open loads none."""
    from tokentui.cli import analysis, app

    monkeypatch.setattr(analysis, "load_backend", lambda *a, **k: tiny_backend)
    runner = CliRunner()

    def invoke(*args: str, model: bool = True):
        if not model:
            def refuse(*a, **k):
                raise AssertionError("--open must not load a model")
            monkeypatch.setattr(analysis, "load_backend", refuse)
        return runner.invoke(app, list(args), env={"COLUMNS": "160"})

    return invoke


def completion_ids(tokenizer) -> str:
    return ",".join(map(str, tokenizer(COMPLETION_TEXT, add_special_tokens=False).input_ids))


def test_open_prints_the_live_table(cli, tokenizer, tmp_path):
    args = ("attribute", "Once upon a time", "--no-chat-template", "--completion-ids",
            completion_ids(tokenizer), "--method", "input_x_gradient")
    live = cli(*args)
    assert live.exit_code == 0, live.output
    saved = cli(*args, "--json")
    assert saved.exit_code == 0, saved.output
    path = tmp_path / "saved.json"
    path.write_text(saved.stdout)
    opened = cli("attribute", "--open", str(path), model=False)
    assert opened.exit_code == 0, opened.output
    assert opened.stdout == live.stdout  # the same table, from the file alone
    data = json.loads(saved.stdout)
    assert "input_x_gradient (l2)" in " ".join(opened.stdout.split())
    for tok in data["data"]["output_tokens"]:
        assert str(tok["position"]) in opened.stdout
    # the numbers in the table are the file's normalised scores (first output, first context token)
    first = data["data"]["normalized_association"][0][0]
    cell = f"{first:.2f}"[1:] if first < 1 else "1.0"
    assert cell in opened.stdout


def test_open_a_file_saved_with_j(cli, tiny_backend, tokenizer, tmp_path):
    """The app's J format (one target token): the same dict the app writes."""
    ids = tokenizer("Once upon a time there", add_special_tokens=False).input_ids
    config = AttributionConfig(method="saliency")
    result = attribute_token(tiny_backend, ids, len(ids) - 1, config)
    path = tmp_path / "tokentui-attribution.json"
    path.write_text(json_text({**result.to_json(), "options": config.to_json()}, indent=2) + "\n")
    saved = read_attribution(path)
    assert saved.source == "J" and saved.outputs == (len(ids) - 1,)
    assert [t.id for t in saved.tokens] == ids
    assert saved.normalized[0] == pytest.approx(result.normalized)
    opened = cli("attribute", "--open", str(path), model=False)
    assert opened.exit_code == 0, opened.output
    assert "saliency (l2)" in " ".join(opened.stdout.split())
    rows = {int(line.split("│")[0]): line for line in opened.stdout.splitlines()
            if "│" in line and line.split("│")[0].strip().isdigit()}
    assert sorted(rows) == list(range(len(ids) - 1))  # one row per token before the target
    for j, value in enumerate(result.normalized):
        assert (f"{value:.2f}"[1:] if value < 0.995 else "1.0") in rows[j]


@pytest.mark.parametrize(("content", "says"), [
    ("not json {", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"hello": 1}', "neither"),
    ('{"metadata": {}, "data": {}}', "no 'data.input_tokens'"),
    ('{"target_position": 2, "tokens": [{"id": 1, "text": "a"}], "target": {"id": 2, "text": "b"}, '
     '"normalized": [1.0]}', "target_position 2 but 1 tokens"),
    ('{"target_position": 1, "tokens": [{"id": 1, "text": "a"}], "target": {"id": 2, "text": "b"}, '
     '"normalized": [7]}', "not a normalised score"),
])
def test_a_bad_file_is_one_error_line(cli, tmp_path, content, says):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = cli("attribute", "--open", str(path), model=False)
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.strip().count("\n") == 0
    assert says in result.output and str(path) in " ".join(result.output.split())


def test_open_refuses_other_inputs(cli, tmp_path):
    missing = cli("attribute", "--open", str(tmp_path / "nope.json"), model=False)
    assert missing.exit_code == 2 and "no such file" in missing.output
    both = cli("attribute", "Hello", "--open", str(tmp_path / "x.json"), model=False)
    assert both.exit_code == 2 and "drop PROMPT" in both.output
