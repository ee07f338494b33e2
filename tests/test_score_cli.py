"""tokentui score through typer's CliRunner, on the tiny random model saved as a folder."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from tokentui.cli import app

runner = CliRunner()
TEXT = "The fox jumps over the dog.\nA zebra <script>alert(1)</script> \x1b[31m red\n"


def invoke(*args: str, env: dict[str, str] | None = None, stdin: str | None = None):
    return runner.invoke(app, list(args), env=env, input=stdin)


@pytest.fixture
def no_load(monkeypatch):
    """Any model load fails the test: bad input must be refused before loading."""
    from tokentui.engine import models

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(models, "load", refuse)


def test_json_numbers_match_a_plain_forward(tiny_dir, tiny_loaded, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text(TEXT, encoding="utf-8")
    result = invoke("score", "--file", str(src), "--json", "--model", str(tiny_dir))
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    tokens = data["tokens"]
    ids = [t["id"] for t in tokens]
    assert data["n_tokens"] == len(ids) and data["window"] is None
    assert tokens[0]["p"] is None and tokens[0]["rank"] is None
    with torch.no_grad():
        probs = torch.softmax(tiny_loaded.model(input_ids=torch.tensor([ids])).logits[0], -1)
    for t in tokens[1:]:
        assert t["p"] == pytest.approx(float(probs[t["position"] - 1, t["id"]]), abs=5e-4)
        assert len(t["top"]) == 10 and t["top"][0]["rank"] == 1
    nll = [-math.log(t["p"]) for t in tokens[1:]]
    assert data["perplexity"] == pytest.approx(math.exp(sum(nll) / len(nll)), rel=1e-6)
    assert data["bits_per_token"] == pytest.approx(sum(nll) / len(nll) / math.log(2), rel=1e-6)


def test_jsonl_stdin_and_prefix(tiny_dir):
    result = invoke("score", "-", "--jsonl", "--prefix", "Animals:", "--model", str(tiny_dir),
                    stdin="the fox and the dog")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["position"] for r in rows] == list(range(len(rows)))
    assert all(r["p"] is not None for r in rows)  # the prefix gives the first token a context


def test_chat_scores_the_answer_after_the_template(tiny_dir):
    result = invoke("score", "Paris.", "--json", "--chat", "Capital of France?",
                    "--model", str(tiny_dir))
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["prefix_tokens"] > 5 and data["tokens"][0]["p"] is not None


def test_people_output_with_no_color_uses_glyphs(tiny_dir, tmp_path):
    page = tmp_path / "out.html"
    result = invoke("score", TEXT, "--top", "3", "--html", str(page), "--model", str(tiny_dir),
                    env={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.startswith("rank:  1   ¹ 2-10   ² 11-100   ³ 101-1000   ⁴ >1000   ∅ no context")
    assert "The∅" in out  # the first token is marked as having no probability
    assert "perplexity" in out and "bits per token" in out and "most surprising" in out
    assert "\x1b" not in out and "\\x1b" in out  # the escape byte is shown, never sent
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html and "&lt;script&gt;" in html and "\x1b" not in html
    assert ".t:hover .tip,.t:focus .tip{display:block}" in html
    assert html.count('tabindex="0"') == json.loads(
        invoke("score", TEXT, "--json", "--model", str(tiny_dir)).stdout)["n_tokens"]


def test_windows_on_a_long_text(tiny_dir):
    long = "The fox jumps over the dog again and again. " * 40
    refused = invoke("score", long, "--json", "--model", str(tiny_dir))
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr.startswith("error: the text has") and "--stride" in refused.stderr
    result = invoke("score", long, "--json", "--stride", "100", "--model", str(tiny_dir))
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["window"] == 256 and data["stride"] == 100 and data["n_scored"] == data["n_tokens"] - 1


@pytest.mark.parametrize(("content", "message"), [
    (b"   \n\n", "is empty"),
    (b"abc\x00\x01\x02", "binary"),
    ("caf\u00e9 cr\u00e8me".encode("latin-1"), "not UTF-8 text: read as UTF-8, byte 0xe9 at offset 3"),
])
def test_bad_files_fail_before_loading(no_load, tmp_path, content, message):
    src = tmp_path / "in.txt"
    src.write_bytes(content)
    page = tmp_path / "out.html"
    result = invoke("score", "--file", str(src), "--html", str(page))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert message in result.stderr
    assert not page.exists() and result.stdout == ""


def test_bad_flags_fail_before_loading(no_load, tmp_path):
    for args in (["score"], ["score", "x", "--json", "--jsonl"], ["score", "x", "--chat", "a",
                 "--prefix", "b"], ["score", "x", "--window", "8", "--stride", "8"],
                 ["score", "x", "--html", str(tmp_path / "missing" / "out.html")],
                 ["score", "--file", str(tmp_path / "nope.txt")]):
        result = invoke(*args)
        assert result.exit_code == 2, args
        assert result.stderr.startswith("error: "), (args, result.stderr)


def test_the_app_refuses_a_bad_score_file_before_loading(no_load, tmp_path):
    src = tmp_path / "blob.bin"
    src.write_bytes(b"\x00\x01binary")
    result = invoke("--score", str(src))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "binary" in result.stderr
