"""Replay: a saved session rebuilt with the model matches token for token and number for number."""

from __future__ import annotations

import json

import pytest

from tokentui.engine.params import SamplingParams
from tokentui.engine.persist import replay
from tokentui.engine.persist import session_file as store
from tokentui.engine.prompts import PromptSpec
from tokentui.engine.session import Session


def grow(session) -> None:
    list(session.generate(4))  # seeded samples
    session.set_params(session.params.with_changes(greedy=True))
    list(session.generate(2))  # greedy
    session.force_token(session.current.steps[0].token.id)  # forced
    session.set_params(session.params.with_changes(greedy=False))
    session.branch_from(1, session.current.steps[1].candidates[3].token.id)  # alternative
    list(session.generate(3))  # sampled on the new branch


def test_real_model_session_replays_exactly(real_backend, tmp_path):
    """Save, reload and replay on SmolLM2: every token and probability within 1e-4."""
    session = Session(real_backend, PromptSpec("Name a colour."),
                      params=SamplingParams(temperature=1.0, top_p=0.95, seed=11))
    grow(session)
    sf = store.load_session_file(store.save(session, tmp_path / "real.json"))
    real_backend.reset()
    report = replay.replay(sf, real_backend, check=True, tolerance=1e-4)
    assert report.ok, [d.message for d in report.differences]
    assert report.checked == sf.n_tokens == 7 + 4
    rebuilt = report.session
    for bid, branch in session.branches.items():
        assert rebuilt.branches[bid].ids == branch.ids
        assert [s.how for s in rebuilt.branches[bid].steps] == [s.how for s in branch.steps]


@pytest.fixture(scope="module")
def tiny_file(tiny_loaded, tmp_path_factory):
    """One grown tiny-model session, saved once for the module (tests edit copies)."""
    from tokentui.engine.backends.local import LocalBackend

    session = Session(LocalBackend(tiny_loaded), PromptSpec("Tell me a story about a cat."),
                      params=SamplingParams(seed=7, max_new_tokens=12))
    grow(session)
    return store.save(session, tmp_path_factory.mktemp("replay") / "tiny.json")


@pytest.fixture
def saved(tiny_file, tmp_path):
    copy = tmp_path / "tiny.json"
    copy.write_bytes(tiny_file.read_bytes())
    return copy


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return store.load_session_file(path)


def test_tiny_session_replays_exactly(saved, tiny_backend):
    # not 0: a prefix fed through a cropped KV cache differs from a fresh prefill in the last bits
    report = replay.replay(store.load_session_file(saved), tiny_backend, tolerance=1e-6)
    assert report.ok and report.prompt_difference is None


def test_a_changed_token_names_the_branch_and_position(saved, tiny_backend):
    def change(data):
        branch = data["branches"][1]  # its own steps start at the fork (position 1)
        step = branch["steps"][2]  # position 3, a sampled token
        step["id"] = (step["id"] + 1) % 1000 + 5
        branch["ids"][step["i"]] = step["id"]

    sf = _edit(saved, change)
    report = replay.replay(sf, tiny_backend)
    assert not report.ok
    (diff,) = report.differences
    assert (diff.branch_id, diff.index, diff.what) == (1, 3, "token")
    assert "branch 1 (branch 1) position 3: token" in diff.message
    assert report.branches[0].difference is None
    # the rest of the branch is still rebuilt on the recorded tokens
    assert report.session.branches[1].ids == sf.branch(1).ids


def test_a_changed_probability_fails_beyond_the_tolerance(saved, tiny_backend):
    def change(data):
        data["branches"][0]["steps"][5]["p_final"] += 0.001

    sf = _edit(saved, change)
    (diff,) = replay.replay(sf, tiny_backend, tolerance=1e-4).differences
    assert (diff.branch_id, diff.index) == (0, 5) and diff.what.startswith("p_final")
    assert replay.replay(sf, tiny_backend, tolerance=1e-2).ok


def test_a_changed_candidate_probability_is_found(saved, tiny_backend):
    def change(data):
        data["branches"][0]["steps"][2]["dist"]["candidates"][4]["p_base"] += 0.01

    (diff,) = replay.replay(_edit(saved, change), tiny_backend).differences
    assert diff.index == 2 and "candidate" in diff.what


def test_a_different_prompt_tokenization_is_reported(saved, tiny_backend):
    sf = _edit(saved, lambda d: d["prompt"].update(text="Something else entirely."))
    report = replay.replay(sf, tiny_backend)
    assert report.prompt_difference is not None and not report.ok
    assert report.prompt_difference.message.startswith("the prompt tokens")


def test_replay_without_check_rebuilds_only(saved, tiny_backend):
    report = replay.replay(store.load_session_file(saved), tiny_backend, check=False)
    assert report.ok and len(report.branches) == 2
