"""--choice / --choices-file / --regex / --grammar / --json-schema on next and generate."""

from __future__ import annotations

import ast
import json
import re

import jsonschema
import llguidance.hf
import llguidance.numpy
import numpy as np
import pytest
from constraint_sources import ARITHMETIC, PHONE
from llguidance import LLMatcher
from typer.testing import CliRunner

from tokentui.cli import app
from tokentui.engine import models

runner = CliRunner()
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 12},
                   "age": {"type": "integer", "minimum": 0, "maximum": 120}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def is_arithmetic(node: ast.AST) -> bool:
    """Only + - * over integers 1..999 (parentheses leave no node of their own)."""
    if isinstance(node, ast.Expression):
        return is_arithmetic(node.body)
    if isinstance(node, ast.BinOp):
        return (isinstance(node.op, ast.Add | ast.Sub | ast.Mult)
                and is_arithmetic(node.left) and is_arithmetic(node.right))
    return isinstance(node, ast.Constant) and type(node.value) is int and 1 <= node.value <= 999


@pytest.fixture
def loaded_once(monkeypatch, bundled):
    """The CLI loads the already-loaded bundled model (the same weights, no second load)."""
    monkeypatch.setattr(models, "load", lambda *args, **kwargs: bundled)


def invoke(*args: str):
    return runner.invoke(app, list(args))


def generated(result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout.rstrip("\n").removesuffix("<|im_end|>")


def test_generate_with_regex_fullmatches(loaded_once):
    result = invoke("generate", "Give me a phone number.", "--regex", PHONE, "--seed", "4",
                    "--temperature", "1.0")
    assert re.fullmatch(PHONE, generated(result)), result.stdout
    assert "stopped: constraint" in result.stderr


def test_next_json_marks_valid_candidates(loaded_once, bundled):
    result = invoke("next", "Is the sky blue?", "--choice", "Yes|No|Maybe", "--json", "--show", "15",
                    "--temperature", "1", "--top-p", "1", "--repetition-penalty", "1")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # The allowed set by llguidance's own numpy helpers, built here from scratch.
    lltok = llguidance.hf.from_tokenizer(bundled.tokenizer)
    matcher = LLMatcher(lltok, LLMatcher.grammar_from_lark('start: "Yes" | "No" | "Maybe"'), log_level=0)
    bitmask = llguidance.numpy.allocate_token_bitmask(1, lltok.vocab_size)
    llguidance.numpy.fill_next_token_bitmask(matcher, bitmask)
    logits = np.zeros((1, lltok.vocab_size), dtype=np.float32)
    llguidance.numpy.apply_token_bitmask_inplace(logits, bitmask)
    ref = np.isfinite(logits[0])
    assert data["n_valid"] == int(ref.sum())
    assert [c["valid"] for c in data["candidates"]] == [bool(ref[c["id"]]) for c in data["candidates"]]
    assert any(not c["valid"] for c in data["candidates"]) and any(c["valid"] for c in data["candidates"])
    # No filter is on: p_final is p_base renormalised over the valid tokens, zero elsewhere.
    assert all(c["p_final"] == 0 for c in data["candidates"] if not c["valid"])
    ratios = [c["p_final"] / c["p_base"] for c in data["candidates"] if c["valid"]]
    assert ratios[0] > 1 and ratios == pytest.approx([ratios[0]] * len(ratios), rel=1e-4)


def test_generate_with_files(loaded_once, tmp_path):
    schema = tmp_path / "person.json"
    schema.write_text(json.dumps(PERSON))
    text = generated(invoke("generate", "Describe a person as JSON.", "--json-schema", str(schema),
                            "--seed", "2", "--temperature", "0.8"))
    jsonschema.validate(json.loads(text), PERSON)

    grammar = tmp_path / "arith.lark"
    grammar.write_text(ARITHMETIC)
    text = generated(invoke("generate", "Write an arithmetic expression.", "--grammar", str(grammar),
                            "--seed", "5", "-n", "40"))
    assert is_arithmetic(ast.parse(text, mode="eval")), text

    options = tmp_path / "colours.txt"
    options.write_text("red\ngreen\nlight blue\n")
    text = generated(invoke("generate", "What colour is the sky?", "--choices-file", str(options),
                            "--greedy"))
    assert text in {"red", "green", "light blue"}


def one_error_line(result, needle):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_invalid_regex_is_one_error_line():
    """The real path, loader included: ``tokentui generate ... --regex "("``."""
    one_error_line(invoke("generate", "hi", "--regex", "("), "unclosed group")


@pytest.mark.parametrize("args,needle", [
    (["--grammar", "{dir}/bad.lark"], 'unknown name: "expr"'),
    (["--json-schema", "{dir}/bad.json"], "not valid JSON"),
    (["--regex", "a", "--choice", "a|b"], "give one constraint"),
    (["--choices-file", "{dir}/missing.txt"], "no such file"),
])
def test_bad_constraints_are_one_error_line(loaded_once, tmp_path, args, needle):
    (tmp_path / "bad.lark").write_text("start: expr\n")
    (tmp_path / "bad.json").write_text('{"type": "object",}')
    args = [a.format(dir=tmp_path) for a in args]
    one_error_line(invoke("next", "hi", *args), needle)
