"""Session files: round trips, atomic saves that survive a kill, and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tokentui.engine.launch import restore_session
from tokentui.engine.persist import session_file as store
from tokentui.engine.persist.session_file import SessionFileError


def grow(session) -> None:
    """Seeded, greedy, forced and branched tokens, plus a fork, in one tree."""
    list(session.generate(4))  # sampled with the seed
    session.set_params(session.params.with_changes(greedy=True))
    list(session.generate(2))  # greedy
    session.force_token(42)  # forced
    session.branch_from(2, 100)  # alternative at position 2
    list(session.generate(3))
    session.fork("copy")


def test_round_trip_restores_every_branch_exactly(tiny_session, tiny_backend, tmp_path):
    grow(tiny_session)
    path = store.save(tiny_session, tmp_path / "s.json")
    sf = store.load_session_file(path)
    assert [b.id for b in sf.branches] == [0, 1, 2]
    assert sf.branches[1].inherit == 2 and sf.branches[2].inherit == len(sf.branches[2].steps)
    hows = {s.how for b in sf.branches for s in b.steps}
    assert hows == {"sampled", "greedy", "forced", "alternative"}
    assert all(s.seed == 7 for b in sf.branches for s in b.steps if s.how == "sampled")

    restored = restore_session(sf, tiny_backend)
    assert restored.prompt == tiny_session.prompt
    assert restored.prompt_ids == tiny_session.prompt_ids
    assert restored.params == tiny_session.params
    assert restored.default_seed == tiny_session.default_seed
    assert restored.current_id == tiny_session.current_id
    assert restored.next_branch_id == tiny_session.next_branch_id
    for bid, branch in tiny_session.branches.items():
        other = restored.branches[bid]
        assert (other.name, other.parent, other.fork_at) == (branch.name, branch.parent, branch.fork_at)
        assert other.steps == branch.steps  # tokens, probabilities, candidates, seeds, notes
    assert restored.messages == [{"role": "user", "content": tiny_session.prompt.text}]
    # the restored session keeps working
    restored.switch(0)
    assert restored.step().index == len(tiny_session.branches[0])


def test_file_is_versioned_json_with_the_documented_fields(tiny_session, tmp_path):
    grow(tiny_session)
    data = json.loads(store.save(tiny_session, tmp_path / "s.json").read_text())
    assert data["format"] == "tokentui-session" and data["version"] == store.VERSION
    assert set(data) >= {"model", "prompt", "prompt_ids", "messages", "params", "constraint",
                         "branches", "default_seed", "current"}
    assert data["model"]["name"] == "tiny-random" and data["model"]["spec"] is None
    step = data["branches"][0]["steps"][0]
    assert set(step) >= {"i", "id", "how", "seed", "p_base", "p_final", "dist"}
    assert len(step["dist"]["candidates"]) == 10


def test_messages_and_system_prompt_are_kept(tiny_backend, tmp_path):
    from tokentui.engine.prompts import PromptSpec
    from tokentui.engine.session import Session

    session = Session(tiny_backend, PromptSpec("Hi", system="Be brief.", chat_template=False))
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"}]
    sf = store.load_session_file(store.save(session, tmp_path / "m.json", messages=chat))
    assert list(sf.messages) == chat
    assert sf.prompt == PromptSpec("Hi", system="Be brief.", chat_template=False)


def test_constraint_kind_and_text_survive(tiny_session, tiny_backend, tmp_path):
    constraints = pytest.importorskip("tokentui.engine.constraints")
    c = constraints.from_cli("choice", "yes|no", tiny_backend.tokenizer, tiny_backend.vocab_size)
    tiny_session.set_constraint(c)
    list(tiny_session.generate(3))
    sf = store.load_session_file(store.save(tiny_session, tmp_path / "c.json"))
    assert sf.constraint["kind"] == "choice" and sf.constraint["value"] == "yes\nno"
    restored = restore_session(sf, tiny_backend)
    assert restored.constraint.kind == "choice" and restored.constraint.text == "yes\nno"
    assert restored.current.ids == tiny_session.current.ids


# ----- errors: one line, never an overwrite ------------------------------------------------
@pytest.fixture(scope="module")
def good_file(tiny_loaded, tmp_path_factory) -> Path:
    from tokentui.engine.backends.local import LocalBackend
    from tokentui.engine.params import SamplingParams
    from tokentui.engine.prompts import PromptSpec
    from tokentui.engine.session import Session

    session = Session(LocalBackend(tiny_loaded), PromptSpec("Tell me a story about a cat."),
                      params=SamplingParams(seed=7, max_new_tokens=12))
    grow(session)
    return store.save(session, tmp_path_factory.mktemp("store") / "good.json")


@pytest.fixture
def saved(good_file, tmp_path) -> Path:
    copy = tmp_path / "good.json"
    copy.write_bytes(good_file.read_bytes())
    return copy


def _one_line_error(path) -> str:
    with pytest.raises(SessionFileError) as info:
        store.load_session_file(path)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_missing_file(tmp_path):
    assert "no such session file" in _one_line_error(tmp_path / "nope.json")


def test_directory_given_as_a_file(tmp_path):
    assert "is a folder" in _one_line_error(tmp_path)


def test_truncated_file(saved):
    raw = saved.read_bytes()
    saved.write_bytes(raw[: len(raw) // 2])
    assert "truncated or corrupt" in _one_line_error(saved)


def test_empty_and_binary_files(tmp_path):
    (tmp_path / "e.json").write_text("")
    assert "empty" in _one_line_error(tmp_path / "e.json")
    (tmp_path / "b.json").write_bytes(bytes(range(256)))
    assert "not a tokentui session file" in _one_line_error(tmp_path / "b.json")


def test_foreign_json(tmp_path):
    (tmp_path / "f.json").write_text('{"name": "package.json"}')
    assert "not a tokentui session file" in _one_line_error(tmp_path / "f.json")
    (tmp_path / "l.json").write_text("[1, 2, 3]")
    assert "not a tokentui session file" in _one_line_error(tmp_path / "l.json")


def test_newer_version(saved):
    data = json.loads(saved.read_text())
    data["version"] = store.VERSION + 1
    saved.write_text(json.dumps(data))
    message = _one_line_error(saved)
    assert "newer tokentui" in message and f"version {store.VERSION + 1}" in message


def test_damaged_structure(saved):
    data = json.loads(saved.read_text())
    data["branches"][0]["steps"][1]["id"] = "seven"
    saved.write_text(json.dumps(data))
    assert "damaged" in _one_line_error(saved)
    del data["branches"][0]["steps"][1]["id"]
    saved.write_text(json.dumps(data))
    assert "damaged: step 1 of branch 0 has no 'id'" in _one_line_error(saved)


def test_a_bad_file_is_never_overwritten(saved, tiny_session, tmp_path):
    raw = saved.read_bytes()[:100]
    saved.write_bytes(raw)
    with pytest.raises(SessionFileError, match="not overwriting"):
        store.save(tiny_session, saved)
    assert saved.read_bytes() == raw
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"mine": true}')
    with pytest.raises(SessionFileError, match="not overwriting"):
        store.save(tiny_session, foreign)
    assert foreign.read_text() == '{"mine": true}'
    with pytest.raises(SessionFileError, match="is a folder"):
        store.save(tiny_session, tmp_path)


def test_resaving_a_valid_session_file_is_allowed(saved, tiny_session):
    os.utime(saved, (1, 1))  # as if another process wrote it: it is validated, then replaced
    tiny_session.step()
    store.save(tiny_session, saved)
    assert len(store.load_session_file(saved).branches) == 1


def test_restore_refuses_tokens_outside_the_vocabulary(saved, tiny_backend):
    data = json.loads(saved.read_text())
    data["prompt_ids"][0] = 10**7
    with pytest.raises(SessionFileError, match="vocabulary"):
        restore_session(store.parse(data), tiny_backend)


# ----- atomic writes --------------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys
    from dataclasses import replace
    from tokentui.engine.persist import session_file as store
    small = store.load_session_file(sys.argv[1])
    big = replace(small, branches=small.branches * 1, prompt_ids=small.prompt_ids * 4000)
    print("ready", flush=True)
    n = 0
    while True:
        store.save(big if n % 2 else small, sys.argv[2])
        n += 1
""")


def test_a_killed_saver_always_leaves_a_valid_file(saved, tmp_path):
    """Kill a process that saves in a loop at random moments: the file always loads."""
    target = tmp_path / "auto.json"
    store.save(store.load_session_file(saved), target)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(saved), str(target)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        seen = set()
        deadline = time.monotonic() + 10
        i = 0
        while i < 25 or (len(seen) < 2 and time.monotonic() < deadline):
            time.sleep(0.01 + (i % 5) * 0.007)
            seen.add(len(store.load_session_file(target).prompt_ids))
            i += 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert store.load_session_file(target).branches  # valid after the kill too
    assert len(seen) == 2  # both versions were read while the writer ran: reads raced the writes


# ----- autosave --------------------------------------------------------------------------------
def test_autosave_dir_honours_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert store.autosave_dir() == tmp_path / "tokentui"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert store.autosave_dir() == Path.home() / ".local" / "share" / "tokentui"


def test_autosaver_saves_at_most_once_per_interval_and_flushes(tiny_session, tmp_path):
    now = [100.0]
    saver = store.Autosaver(tmp_path / "a" / "s.json", interval=1.0, clock=lambda: now[0])
    tiny_session.step()
    assert saver.changed(tiny_session)  # first change saves at once (and creates the folder)
    tiny_session.step()
    now[0] += 0.5
    assert not saver.changed(tiny_session) and saver.pending
    assert len(store.load_session_file(saver.path).branches[0].steps) == 1
    now[0] += 0.6
    assert saver.changed(tiny_session)
    tiny_session.step()
    saver.changed(tiny_session)
    assert saver.flush(tiny_session)  # on quit
    assert not saver.flush(tiny_session)  # nothing pending
    assert len(store.load_session_file(saver.path).branches[0].steps) == 3
    assert saver.saves == 3


def test_list_sessions(good_file, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    sf = store.load_session_file(good_file)
    path = store.autosave_path(sf.prompt)
    assert path.parent == tmp_path / "tokentui" and "tell-me-a-story" in path.name
    path.parent.mkdir(parents=True)
    store.save(sf, path)
    (path.parent / "broken.json").write_text("{")
    found = store.list_sessions()
    assert len(found) == 2
    good = next(s for s in found if s.error is None)
    assert (good.model, good.branches) == ("tiny-random", 3)
    assert good.prompt.startswith("Tell me")
    assert next(s for s in found if s.error).error.endswith("column 2")
