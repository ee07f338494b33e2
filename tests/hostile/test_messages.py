"""Messages say what is wrong in words, on one line, the same way everywhere."""

from __future__ import annotations

import json

import pytest

from .conftest import one_error_line

pytestmark = pytest.mark.hostile


@pytest.mark.parametrize("args", [
    ["next", "Hello", "--show", "0"],
    ["next"],
    ["nosuchcommand"],
    ["generate", "Hi", "--no-such-flag"],
    ["next", "Hi", "--temperature", "warm"],
])
def test_usage_errors_are_one_error_line_not_a_panel(cli, args):
    r = cli(*args)
    assert r.rc == 2, r
    line = one_error_line(r.err)
    assert "╭" not in line and "│" not in line and "--help" in line


def test_seed_above_the_limit_names_the_limit(cli, tiny_dir):
    r = cli("next", "Hi", "--seed", str(2**63), "--model", tiny_dir)
    assert r.rc == 2
    assert str(2**63 - 1) in one_error_line(r.err)


def test_replay_check_difference_keeps_spaces_and_never_passes_on_nan(cli, two_branches, tmp_path,
                                                                      tiny_dir):
    from tokentui.engine.persist import replay
    from tokentui.engine.persist import session_file as store

    path = store.save(two_branches, tmp_path / "s.json")
    data = json.loads(path.read_text())
    data["branches"][0]["steps"][1]["p_base"] = 0.123456
    path.write_text(json.dumps(data))
    r = cli("replay", path, "--check", "--model", tiny_dir)
    assert r.rc == 1, r
    diff = [ln for ln in r.err.decode().splitlines() if ln.startswith("difference:")]
    assert diff and "·" not in diff[0] and "position 1: p_base of '" in diff[0]
    # A NaN probability is damage (exit 2), and the comparison itself never lets NaN pass.
    data["branches"][0]["steps"][1]["p_base"] = float("nan")
    path.write_text(json.dumps(data))
    r = cli("replay", path, "--check", "--model", tiny_dir)
    assert r.rc == 2 and "probability" in one_error_line(r.err)
    step = store.load_session_file(store.save(two_branches, tmp_path / "t.json")).branches[0].steps[1]
    from dataclasses import replace as dc_replace

    assert replay.compare_step(dc_replace(step, p_base=float("nan")), step, 1e-4) is not None
    assert replay.compare_step(step, step, 1e-4) is None


def test_invalid_schema_pattern_message_is_not_cut(cli, tmp_path, tiny_dir):
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"a": {"type": "string",
                                                                          "pattern": "(["}}}))
    r = cli("next", "Hi", "--json-schema", schema, "--model", tiny_dir)
    assert r.rc == 2
    line = one_error_line(r.err)
    assert not line.rstrip().endswith("regex parse error:") and len(line.split("regex parse error:")[-1]) > 5


def test_a_truncated_gguf_says_truncated(cli, tmp_path):
    from tokentui.engine import models

    whole = models.bundled_gguf_path().read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[:200_000])
    r = cli("tokenize", "Hi", "--model", cut)
    assert r.rc == 2
    assert "truncated" in one_error_line(r.err)


def test_json_schema_whitespace_is_bounded(tiny_backend):
    """Compact JSON by default: no run of free whitespace between tokens (at T 1.5 a model
    emitted spaces until max tokens); flexible on request, and then bounded."""
    from tokentui.engine import constraints

    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    tok = tiny_backend.tokenizer

    def refused(text, src):
        c = constraints.build("json_schema", json.dumps(src), tok, tiny_backend.vocab_size)
        ids = tok.encode(text, add_special_tokens=False)
        return c.refusal([], ids)

    assert refused('{"name":"x"}', schema) is None
    assert refused('{ "name":"x"}', schema) is not None
    flexible = {**schema, "x-guidance": {"whitespace_flexible": True}}
    assert refused('{ "name": "x"}', flexible) is None
    assert refused("{" + " " * 40 + '"name":"x"}', flexible) is not None


def test_max_tokens_cutting_a_constrained_run_says_so(cli, tmp_path, tiny_dir):
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"name": {"type": "string"}},
                                  "required": ["name"]}))
    r = cli("generate", "Hi", "--json-schema", schema, "--model", tiny_dir, "-n", "3", "--greedy")
    assert r.rc == 0, r
    assert "stopped: length, the constraint is not complete" in r.err.decode()
