"""tokenize / next / generate through typer's CliRunner, on the bundled model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tokentui.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_tokenize_json_lists_ids_text_and_specials(tokenizer):
    result = invoke("tokenize", "Hello  world\n[bold]x[/bold]", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    ids = tokenizer("Hello  world\n[bold]x[/bold]").input_ids
    assert [t["id"] for t in data["tokens"]] == ids
    assert "".join(t["text"] for t in data["tokens"]) == "Hello  world\n[bold]x[/bold]"
    chat = json.loads(invoke("tokenize", "hi", "--chat", "--json").stdout)
    assert chat["tokens"][0]["special"] is True and chat["tokens"][0]["text"] == "<|im_start|>"


def test_tokenize_table_keeps_markup_literal():
    result = invoke("tokenize", "[bold]x[/bold]")
    assert result.exit_code == 0
    assert "bold" in result.stdout and "[" in result.stdout


def test_next_json_has_sorted_candidates(bundled):
    result = invoke("next", "The capital of France is", "--no-chat-template", "--json", "--show", "7")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"prompt_tokens", "completion_tokens", "candidates", "entropy"}
    cands = data["candidates"]
    assert len(cands) == 7
    assert [c["p_base"] for c in cands] == sorted((c["p_base"] for c in cands), reverse=True)
    assert set(cands[0]) >= {"id", "text", "p_base", "p_final", "kept", "valid"}
    assert cands[0]["text"] == " Paris"
    assert sum(c["p_final"] for c in cands if c["kept"]) == pytest.approx(1.0, abs=1e-3)


def test_next_with_completion_ids_continues_from_them(tokenizer):
    paris = tokenizer(" Paris", add_special_tokens=False).input_ids
    data = json.loads(invoke("next", "The capital of France is", "--no-chat-template", "--json",
                             "--completion-ids", ",".join(map(str, paris))).stdout)
    assert [t["id"] for t in data["completion_tokens"]] == paris


def test_generate_jsonl_one_object_per_step():
    result = invoke("generate", "Say hello.", "--jsonl", "-n", "5", "--seed", "3", "--show", "3")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["step"] for line in lines] == list(range(len(lines)))
    assert 1 <= len(lines) <= 5
    for line in lines:
        assert set(line) >= {"step", "token", "p_base", "p_final", "candidates", "entropy"}
        assert len(line["candidates"]) == 3


def test_generate_streams_text_and_is_reproducible():
    a = invoke("generate", "Say hello.", "-n", "6", "--seed", "9")
    b = invoke("generate", "Say hello.", "-n", "6", "--seed", "9")
    assert a.exit_code == 0 and a.stdout == b.stdout and a.stdout.strip()


@pytest.mark.parametrize("args,needle", [
    (["next", "hi", "--top-p", "2"], "top-p"),
    (["next", "hi", "--temperature", "-1"], "temperature"),
    (["next", "hi", "--top-k", "-3"], "top-k"),
    (["next", "hi", "--preset", "wild"], "preset"),
    (["next", ""], "empty"),
    (["next", "hi", "--model", "/no/such/model.gguf"], "no such"),
    (["next", "hi", "--completion-ids", "1,x"], "completion-ids"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, needle):
    result = invoke(*args)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]


def test_json_output_never_writes_infinity(capsys):
    from tokentui.cli.render import print_json

    print_json({"logit": float("-inf"), "rows": [1.0, float("nan")]})
    assert json.loads(capsys.readouterr().out) == {"logit": None, "rows": [1.0, None]}
