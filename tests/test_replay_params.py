"""Per-step sampling parameters: a session whose settings changed mid-way still replays exactly."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tokentui.cli import app
from tokentui.engine.params import SamplingParams
from tokentui.engine.persist import replay
from tokentui.engine.persist import session_file as store
from tokentui.engine.prompts import PromptSpec
from tokentui.engine.session import Session

runner = CliRunner()



def changed_mid_session(backend) -> Session:
    """Four tokens at temperature 0.7 / top-p 0.8, then four at temperature 2 / top-p 1."""
    session = Session(backend, PromptSpec("Tell me a story about a cat."),
                      params=SamplingParams(seed=7, max_new_tokens=40))
    list(session.generate(4))
    session.set_params(session.params.with_changes(temperature=2.0, top_p=1.0))
    list(session.generate(4))
    return session


def test_steps_share_the_params_object_they_were_computed_with(tiny_backend, tmp_path):
    session = changed_mid_session(tiny_backend)
    steps = session.current.steps
    assert steps[0].params is steps[3].params and steps[0].params.temperature == 0.7
    assert steps[4].params is steps[7].params is session.params
    sf = store.load_session_file(store.save(session, tmp_path / "s.json"))
    loaded = sf.branch(0).steps
    assert [s.params for s in loaded] == [s.params for s in steps]
    assert len({id(s.params) for s in loaded}) == 2  # shared on load too, never one copy per step


def test_replay_check_passes_after_a_temperature_change(tiny_backend, tiny_dir, tmp_path):
    path = store.save(changed_mid_session(tiny_backend), tmp_path / "changed.json")
    data = json.loads(path.read_text())
    assert len(data["step_params"]) == 1 and [s.get("pi") for s in data["branches"][0]["steps"]] == \
        [0, 0, 0, 0, None, None, None, None]

    ok = runner.invoke(app, ["replay", str(path), "--check", "--model", str(tiny_dir)])
    assert ok.exit_code == 0, ok.output

    # Without the per-step record (an older file) the first four steps replay with the final
    # settings and the check fails: the test above exercises the recorded parameters.
    for step in data["branches"][0]["steps"]:
        step.pop("pi", None)
    del data["step_params"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    report = replay.replay(store.load_session_file(old), tiny_backend, check=True)
    assert not report.ok and report.differences[0].index < 4
