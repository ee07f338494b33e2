"""No file is overwritten or lost by mistake: writers refuse other kinds of files, write
atomically, and an interrupted generate keeps what it generated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import one_error_line

pytestmark = pytest.mark.hostile


@pytest.fixture
def victim(hostile_file, tmp_path):
    target = tmp_path / "victim.json"
    target.write_bytes(hostile_file.read_bytes())
    return target


@pytest.mark.parametrize("fmt", ["md", "html", "jsonl"])
def test_export_refuses_to_overwrite_a_session_file(cli, hostile_file, victim, fmt):
    before = victim.read_bytes()
    r = cli("export", hostile_file, "--format", fmt, "-o", victim)
    assert r.rc == 2
    assert "not overwriting" in one_error_line(r.err) and "--force" in r.err.decode()
    assert victim.read_bytes() == before
    r = cli("export", hostile_file, "--format", fmt, "-o", victim, "--force")
    assert r.rc == 0 and victim.read_bytes() != before


def test_export_replaces_its_own_earlier_export(cli, hostile_file, tmp_path):
    out = tmp_path / "notes.md"
    assert cli("export", hostile_file, "--format", "md", "-o", out).rc == 0
    out.write_text(out.read_text() + "\nold\n")
    assert cli("export", hostile_file, "--format", "md", "-o", out).rc == 0
    assert not out.read_text().endswith("old\n")
    html = tmp_path / "page.html"
    html.write_text("<!DOCTYPE html><html><body>someone else's page</body></html>")
    assert cli("export", hostile_file, "--format", "html", "-o", html).rc == 2
    assert "someone else's page" in html.read_text()


def test_graph_refuses_a_session_file_before_any_work(cli, victim, tiny_dir):
    before = victim.read_bytes()
    t0 = time.monotonic()
    r = cli("graph", "Hi", "-o", victim, "--model", tiny_dir)
    assert r.rc == 2 and "not overwriting" in one_error_line(r.err)
    assert victim.read_bytes() == before and time.monotonic() - t0 < 30


def test_graph_into_an_unwritable_place_is_one_line_and_leaves_nothing(cli, tiny_dir, tmp_path):
    r = cli("graph", "Hi", "-o", "/proc/tokentui-graph.html", "--model", tiny_dir)
    assert r.rc == 2 and "cannot write" in one_error_line(r.err)
    out = tmp_path / "g.html"
    r = cli("graph", "Hi", "-o", out, "--model", tiny_dir, "-n", "2")
    assert r.rc == 0, r
    assert out.read_text().startswith("<!-- tokentui attention graph -->")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left
    assert cli("graph", "Hi", "-o", out, "--model", tiny_dir, "-n", "2").rc == 0  # its own kind


def test_batch_out_must_be_a_folder_and_binary_batch_files_are_refused(cli, victim, tmp_path, tiny_dir):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Hi\n")
    before = victim.read_bytes()
    r = cli("attribute", "--batch", prompts, "--out", victim, "--model", tiny_dir)
    assert r.rc == 2 and "is a file" in one_error_line(r.err)
    assert victim.read_bytes() == before
    binary = tmp_path / "prompts.bin"
    binary.write_bytes(b"\x00\x01\xff\xfe" * 100)
    r = cli("attribute", "--batch", binary, "--out", tmp_path / "o", "--model", tiny_dir)
    assert r.rc == 2 and "binary" in one_error_line(r.err)
    folder = tmp_path / "o2"
    folder.mkdir()
    (folder / "0001.json").write_bytes(before)
    r = cli("attribute", "--batch", prompts, "--out", folder, "--model", tiny_dir)
    assert r.rc == 2 and "not overwriting" in one_error_line(r.err)
    assert (folder / "0001.json").read_bytes() == before


def test_batch_writes_json_and_can_write_it_again(cli, tmp_path, tiny_dir):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Hi\n")
    out = tmp_path / "out"
    for _ in range(2):
        r = cli("attribute", "--batch", prompts, "--out", out, "--model", tiny_dir, "-n", "2")
        assert r.rc == 0, r
    assert json.loads((out / "0001.json").read_text())["metadata"]


def test_save_refuses_a_foreign_file_unless_forced(cli, tmp_path, tiny_dir):
    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "notes"}')
    r = cli("generate", "Hi", "--model", tiny_dir, "-n", "2", "--save", notes)
    assert r.rc == 2 and "not overwriting" in one_error_line(r.err)
    assert notes.read_text() == '{"my": "notes"}'
    r = cli("generate", "Hi", "--model", tiny_dir, "-n", "2", "--save", notes, "--force")
    assert r.rc == 0
    from tokentui.engine.persist import session_file as store

    assert len(store.load_session_file(notes).branches[0].steps) == 2


def test_ctrl_c_during_generate_save_keeps_the_tokens(tmp_path, bundled):
    """The bundled model (a context of 8192 tokens): the run is still going when Ctrl-C comes."""
    target = tmp_path / "run.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tokentui", "generate", "Tell me a long story",
                             "-n", "100000", "--ignore-eos", "--save", str(target)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        first = proc.stdout.read(40)  # tokens are coming
        assert first
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert b"saved them to" in err and b"Traceback" not in err
    from tokentui.engine.persist import session_file as store

    assert len(store.load_session_file(target).branches[0].steps) > 0
