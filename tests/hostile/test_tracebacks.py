"""Bad input is one ``error:`` line with exit 2, never a traceback."""

from __future__ import annotations

import json
import os
import threading

import pytest

from .conftest import one_error_line, run_subprocess

pytestmark = pytest.mark.hostile


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def good_file(two_branches, tmp_path):
    from tokentui.engine.persist import session_file as store

    return store.save(two_branches, tmp_path / "good.json")


def test_deeply_nested_json_is_one_line_everywhere(cli, tmp_path, tiny_dir):
    deep = tmp_path / "deep.json"
    nested = "[" * 100_000 + "]" * 100_000
    deep.write_text('{"format":"tokentui-session","version":1,"prompt":' + nested + "}")
    for args in (["replay", deep, "--model", tiny_dir], ["export", deep], ["compare", deep],
                 ["generate", "Hi", "--model", tiny_dir, "-n", "1", "--save", deep]):
        r = cli(*args)
        assert r.rc == 2, (args, r)
        assert "nested too deeply" in one_error_line(r.err)


@pytest.mark.parametrize(("change", "words"), [
    (lambda d: d.update(prompt_ids=[-3, *d["prompt_ids"]]), "prompt_ids should be between 0"),
    (lambda d: d.update(top_n=-5), "top_n should be between 1"),
    (lambda d: d["prompt"].update(system=5), "prompt.system: expected text"),
    (lambda d: d["params"].update(temperature="hot"), "params.temperature: expected a number"),
    (lambda d: d["branches"][0].update(name=["x"]), "branch 0 name: expected text"),
    (lambda d: d["branches"][0]["steps"][0].update(p_base=float("nan")), "should be a probability"),
    (lambda d: d["branches"][0]["steps"][0]["dist"].update(candidates={"a": 1}), "should be a list"),
    (lambda d: d.update(messages="hello"), "messages should be a list"),
])
def test_a_damaged_field_is_named_in_one_line(cli, good_file, tiny_dir, change, words):
    _edit(good_file, change)
    for args in (["export", good_file], ["replay", good_file, "--check", "--model", tiny_dir]):
        r = cli(*args)
        assert r.rc == 2, (args, r)
        line = one_error_line(r.err)
        assert "is damaged" in line and words in line, line


def test_prompt_ids_out_of_the_vocabulary(cli, good_file, tiny_dir):
    _edit(good_file, lambda d: d.update(prompt_ids=[*d["prompt_ids"], 10_000_000]))
    r = cli("replay", good_file, "--check", "--model", tiny_dir)
    assert r.rc == 2 and "vocabulary" in one_error_line(r.err)


def test_dev_zero_and_a_fifo_are_refused_at_once(cli, tmp_path):
    r = cli("export", "/dev/zero")
    assert r.rc == 2 and "not a regular file" in one_error_line(r.err)
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    done = threading.Event()
    result = {}

    def go():
        result["r"] = cli("replay", fifo)
        done.set()

    worker = threading.Thread(target=go, daemon=True)
    worker.start()
    assert done.wait(30), "reading a FIFO hung"
    assert result["r"].rc == 2 and "not a regular file" in one_error_line(result["r"].err)


def test_a_session_file_above_the_size_cap(tmp_path, monkeypatch):
    from tokentui.engine.persist import session_file as store

    monkeypatch.setattr(store, "MAX_FILE_BYTES", 1024 * 1024)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (2 * 1024 * 1024))
    with pytest.raises(store.SessionFileError, match="larger than the 1 MiB"):
        store.load_session_file(big)


def test_invalid_utf8_argument_is_one_line():
    r = run_subprocess([b"tokenize", b"a\xffb"])
    assert r.rc == 2
    assert "not valid UTF-8" in one_error_line(r.err) and "a\\xffb" in r.err.decode()


def test_binary_grammar_file_is_one_line(cli, tmp_path, tiny_dir):
    g = tmp_path / "g.lark"
    g.write_bytes(b"\x7fELF\x00\x00\x01" * 20)
    r = cli("next", "Hi", "--grammar", g, "--model", tiny_dir)
    assert r.rc == 2 and "binary" in one_error_line(r.err)


def test_the_app_builds_over_a_nested_session_file(tmp_path, tiny_dir):
    """``tokentui --session deep.json`` used to crash before the app started (RecursionError)."""
    from tokentui.engine.launch import ModelConfig, RunConfig
    from tokentui.engine.persist import session_file as store
    from tokentui.tui.app import build_app

    deep = tmp_path / "deep.json"
    deep.write_text('{"format":"tokentui-session","version":1,"prompt":' + "[" * 50_000 + "]" * 50_000 + "}")
    app = build_app(RunConfig(model=ModelConfig(spec=str(tiny_dir))), session_file=str(deep))
    assert app is not None
    with pytest.raises(store.SessionFileError, match="nested too deeply"):
        store.load_session_file(deep)
