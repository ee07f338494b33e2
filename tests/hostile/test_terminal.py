"""No escape sequence reaches the terminal: every output path fed ESC, OSC 52, CSI, C1, bidi."""

from __future__ import annotations

import json

import pytest

from .conftest import HOSTILE, assert_inert, one_error_line

pytestmark = pytest.mark.hostile


def test_compare_prints_hostile_names_inert(cli, hostile_file):
    r = cli("compare", hostile_file)
    assert r.rc == 0, r
    assert_inert(r.out), assert_inert(r.err)
    assert b"\\x1b]2;PWNED-TITLE" in r.out  # shown, as an escape


@pytest.mark.parametrize("check", [False, True])
def test_replay_prints_hostile_names_inert(cli, hostile_file, tiny_dir, check):
    r = cli("replay", hostile_file, "--model", tiny_dir, *(["--check"] if check else []))
    assert r.rc in ((0, 1) if check else (0,)), r
    assert_inert(r.out), assert_inert(r.err)
    assert b"PWNED-TITLE" in r.out


def test_sessions_lists_hostile_model_and_file_names_inert(cli, hostile_file, tmp_path):
    folder = tmp_path / "list"
    folder.mkdir()
    (folder / f"a{HOSTILE[:12]}.json").write_bytes(hostile_file.read_bytes())
    (folder / f"broken{HOSTILE[:12]}.json").write_text("{")
    r = cli("sessions", "--dir", folder)
    assert r.rc == 0, r
    assert_inert(r.out), assert_inert(r.err)
    r = cli("sessions", "--dir", folder, "--json")
    assert r.rc == 0
    assert_inert(r.out)
    data = json.loads(r.out)
    assert {s["model"] for s in data["sessions"] if s["model"]} == {HOSTILE}  # escaped, not lost


@pytest.mark.parametrize("fmt", ["html", "md", "jsonl"])
def test_exports_to_stdout_are_inert(cli, hostile_file, fmt):
    r = cli("export", hostile_file, "--format", fmt)
    assert r.rc == 0, r
    assert_inert(r.out, where=f"{fmt} export")
    if fmt == "jsonl":
        rows = [json.loads(line) for line in r.out.decode().splitlines()]
        assert rows[0]["branch_name"].startswith(HOSTILE)  # the data itself survives
    if fmt == "html":
        page = r.out.decode()
        title = page[page.index("<title>"):page.index("</title>")]
        assert "\\u202e" in title and "\\x1b" in title
        assert "\\u202e" in page[page.index("<h2 id="):]


def test_generate_and_forks_print_model_text_inert(cli, tiny_dir):
    choice = "\x1b]2;X\x07|\x1b]0;t\x07\x1b[2J|\x9b1m\u202eevil"
    for command in ("generate", "forks"):
        r = cli(command, "Say hi", "--model", tiny_dir, "--choice", choice, "--greedy", "-n", "40")
        assert r.rc == 0, r
        assert_inert(r.out, where=command), assert_inert(r.err, where=command)
        assert b"\\x1b" in r.out or b"\\x9b" in r.out or b"\\u202e" in r.out
    r = cli("generate", "Say hi", "--model", tiny_dir, "--choice", choice, "--greedy", "--jsonl")
    assert r.rc == 0
    assert_inert(r.out)


def test_tokenize_and_next_show_hostile_text_inert(cli, tiny_dir):
    for args in (["tokenize", HOSTILE], ["tokenize", HOSTILE, "--json"],
                 ["next", HOSTILE, "--model", tiny_dir, "--no-chat-template", "--json"],
                 ["next", HOSTILE, "--model", tiny_dir, "--no-chat-template"]):
        r = cli(*args)
        assert r.rc == 0, (args, r)
        assert_inert(r.out, where=" ".join(args[:1]))


@pytest.mark.parametrize("args", [
    ["replay", "/nonexistent/nope\x1b]0;X\x07.json"],
    ["export", "/nonexistent/nope\x1b]0;X\x07.json"],
    ["compare", "/nonexistent/\u202enope.json"],
    ["next", "hi", "--model", "/nonexistent/X\x1b]0;X\x07.gguf"],
    ["next", "hi", "--model", "./X\x1b[2J\x9b"],
    ["next", "hi", "--choices-file", "/nonexistent/c\x1b]52;c;SGk=\x07.txt"],
    ["generate", "hi", "--save", "/nonexistent-folder/s\x1b]0;X\x07.json"],
    ["sessions", "--dir", "/nonexistent/\x1b]0;X\x07"],
])
def test_error_lines_echo_input_inert(cli, args):
    r = cli(*args)
    if args[0] == "sessions":  # an empty listing, not an error
        assert r.rc == 0
        assert_inert(r.out)
        return
    assert r.rc == 2, r
    line = one_error_line(r.err)
    assert "\\x1b" in line or "\\u202e" in line  # the bad name is shown, made visible


def test_html_export_shows_bidi_names_visibly(hostile_file, tmp_path):
    from tokentui.engine.persist import session_file as store
    from tokentui.export import formats

    page = formats.to_html(store.load_session_file(hostile_file))
    assert "\u202e" not in page and "\x1b" not in page and "\x07" not in page
    assert "user\\u202etxt.exe\\u202c" in page


def test_session_file_text_escapes_c1_and_bidi(hostile_file, tmp_path):
    """A saved session file holds the hostile names as JSON escapes (``cat`` runs nothing)."""
    from tokentui.engine.persist import session_file as store

    sf = store.load_session_file(hostile_file)
    out = store.save(sf, tmp_path / "again.json")
    raw = out.read_bytes()
    assert_inert(raw)
    assert store.load_session_file(out).prompt.text == HOSTILE


def test_json_text_escapes_what_json_dumps_leaves_raw():
    from tokentui.engine.persist.files import json_text

    text = json_text({"k": HOSTILE + "\x7f\U000e0041"})
    assert_inert(text)
    assert json.loads(text) == {"k": HOSTILE + "\x7f\U000e0041"}
