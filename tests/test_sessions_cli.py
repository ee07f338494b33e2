"""generate --save, replay --check, export, sessions and forks through the CLI (tiny model on disk)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tokentui.cli import app
from tokentui.engine.persist import session_file as store

runner = CliRunner()



@pytest.fixture(scope="module")
def saved(tiny_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "run.json"
    result = runner.invoke(app, ["generate", "Tell me a story", "--model", str(tiny_dir), "--seed", "5",
                                 "-n", "6", "--no-chat-template", "--completion-ids", "100,200",
                                 "--save", str(path)])
    assert result.exit_code == 0, result.output
    return path


def _copy(saved, tmp_path):
    copy = tmp_path / "copy.json"
    copy.write_bytes(saved.read_bytes())
    return copy


def test_generate_save_writes_the_run(saved, tiny_dir):
    sf = store.load_session_file(saved)
    (branch,) = sf.branches
    assert [s.how for s in branch.steps] == ["forced", "forced"] + ["sampled"] * 4
    assert sf.model.spec == str(tiny_dir) and sf.model.weights_hash
    assert sf.params.seed == 5 and not sf.prompt.chat_template


def test_replay_check_passes_then_fails_on_a_changed_token(saved, tmp_path):
    ok = runner.invoke(app, ["replay", str(saved), "--check"])
    assert ok.exit_code == 0, ok.output
    assert "ok: every token and probability matches" in ok.output

    copy = _copy(saved, tmp_path)
    data = json.loads(copy.read_text())
    step = data["branches"][0]["steps"][4]
    step["id"] += 1
    data["branches"][0]["ids"][4] = step["id"]
    copy.write_text(json.dumps(data))
    bad = runner.invoke(app, ["replay", str(copy), "--check", "--json"])
    assert bad.exit_code == 1
    report = json.loads(bad.stdout)
    assert not report["ok"]
    diff = report["branches"][0]["difference"]
    assert (diff["branch"], diff["position"], diff["what"]) == (0, 4, "token")
    assert "branch 0 (main) position 4: token" in diff["message"]


@pytest.mark.parametrize("damage", ["truncated", "newer", "directory", "missing", "foreign"])
def test_bad_files_give_one_line_and_exit_2(saved, tmp_path, damage):
    path = _copy(saved, tmp_path)
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 3])
    elif damage == "newer":
        data = json.loads(raw)
        data["version"] = 99
        path.write_text(json.dumps(data))
    elif damage == "directory":
        path = tmp_path
    elif damage == "missing":
        path = tmp_path / "nothing.json"
    else:
        path.write_text('{"compilerOptions": {}}')
    before = path.read_bytes() if path.is_file() else None
    for args in (["replay", str(path), "--check"], ["export", str(path), "--format", "md"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    if before is not None:
        assert path.read_bytes() == before


def test_generate_save_never_overwrites_a_foreign_file(tiny_dir, tmp_path):
    foreign = tmp_path / "settings.json"
    foreign.write_text('{"keep": "me"}')
    result = runner.invoke(app, ["generate", "Hi", "--model", str(tiny_dir), "-n", "2",
                                 "--save", str(foreign)])
    assert result.exit_code == 2 and "not overwriting" in result.stderr
    assert foreign.read_text() == '{"keep": "me"}'


@pytest.mark.parametrize("fmt", ["jsonl", "html", "md"])
def test_export(saved, tmp_path, fmt):
    result = runner.invoke(app, ["export", str(saved), "--format", fmt])
    assert result.exit_code == 0, result.output
    if fmt == "jsonl":
        assert len(result.stdout.splitlines()) == 6
    out = tmp_path / f"x.{fmt}"
    assert runner.invoke(app, ["export", str(saved), "-f", fmt, "-o", str(out)]).exit_code == 0
    assert out.read_text() == result.stdout


def test_export_rejects_an_unknown_format(saved):
    result = runner.invoke(app, ["export", str(saved), "--format", "pdf"])
    assert result.exit_code == 2 and "unknown format" in result.stderr


def test_sessions_lists_the_autosave_folder(saved, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    empty = runner.invoke(app, ["sessions"])
    assert empty.exit_code == 0 and "no sessions" in empty.stdout
    folder = tmp_path / "tokentui"
    folder.mkdir()
    (folder / "a.json").write_bytes(saved.read_bytes())
    result = runner.invoke(app, ["sessions", "--json"])
    (entry,) = json.loads(result.stdout)["sessions"]
    assert entry["prompt"] == "Tell me a story" and entry["branches"] == 1 and entry["tokens"] == 6
    table = runner.invoke(app, ["sessions"])
    assert "Tell" in table.stdout and "1 sessions" in table.stdout


def test_forks_lists_critical_positions(tiny_dir):
    result = runner.invoke(app, ["forks", "Once upon a time", "--model", str(tiny_dir), "-n", "6",
                                 "--seed", "1", "--top", "3", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["critical"]) == 3 and len(data["tokens"]) == 6
    margins = [c["margin"] for c in data["critical"]]
    assert margins == sorted(margins) and all(c["alternatives"] for c in data["critical"])
    table = runner.invoke(app, ["forks", "Once upon a time", "--model", str(tiny_dir), "-n", "4",
                                "--top", "2"])
    assert table.exit_code == 0 and "most critical of 4 positions" in table.stdout


@pytest.fixture
def forked_file(two_branches, tmp_path):
    """The two-branch session saved to a file."""
    path = tmp_path / "forked.json"
    store.save(two_branches, path)
    return two_branches, path


def test_compare_two_branches_of_a_file(forked_file, tiny_dir):
    from tokentui.engine.analysis.compare import compare_branches

    session, path = forked_file
    table = runner.invoke(app, ["compare", str(path)])  # A = first branch, B = the current one
    assert table.exit_code == 0, table.output
    words = " ".join(table.output.split())
    assert "A: main (#0) vs B: branch 1 (#1)" in words
    assert "they part at completion position 2" in words and "KL estimated" in words

    estimate = json.loads(runner.invoke(app, ["compare", str(path), "0", "1", "--json"]).stdout)
    expected = compare_branches(session, 0, 1)
    assert estimate["fork_at"] == 2 and estimate["kl_method"] == "top-n"
    assert [r["kl"] for r in estimate["steps"]] == pytest.approx([r.kl for r in expected.steps])

    exact = runner.invoke(app, ["compare", str(path), "0", "1", "--exact", "--json",
                                "--model", str(tiny_dir)])
    assert exact.exit_code == 0, exact.output
    data = json.loads(exact.stdout)
    truth = compare_branches(session, 0, 1, exact=True)
    assert data["kl_method"] == "exact"
    assert [r["kl"] for r in data["steps"]] == pytest.approx([r.kl for r in truth.steps], rel=1e-4, abs=1e-5)


def test_compare_refuses_unknown_or_equal_branches(forked_file, saved):
    _, path = forked_file
    unknown = runner.invoke(app, ["compare", str(path), "0", "7"])
    assert unknown.exit_code == 2 and "no branch 7 in the file (it has 0, 1)" in unknown.output
    # checked before any model is loaded (this file's model could not be loaded again)
    exact = runner.invoke(app, ["compare", str(path), "0", "7", "--exact"])
    assert exact.exit_code == 2 and "no branch 7 in the file" in exact.output
    same = runner.invoke(app, ["compare", str(path), "1", "1"])
    assert same.exit_code == 2 and "two different branches" in same.output
    # A given as the current (and newest) branch: B is the other one
    other = json.loads(runner.invoke(app, ["compare", str(path), "1", "--json"]).stdout)
    assert (other["a"], other["b"]) == (1, 0)
    single = runner.invoke(app, ["compare", str(saved)])
    assert single.exit_code == 2 and "only one branch (0): nothing to compare" in single.output
