"""Score mode in the app: a file loaded as given tokens, its surprises, and a branch from one."""

from __future__ import annotations

import pytest
from textual.widgets import OptionList

from tests.tui.conftest import SIZE, ready, settle
from tokentui.tui.screens.score import ScoreScreen, surprises
from tokentui.tui.widgets.alternatives import AlternativesTable
from tokentui.tui.widgets.status import StatusLine
from tokentui.tui.widgets.token_stream import TokenStream

TEXT = "The fox jumps over the lazy dog.\nThen it sat down by the river and slept.\n"


async def wait_scored(pilot) -> None:
    app = pilot.app
    for _ in range(300):
        await settle(pilot)
        if app.session is not None and app.session.current.steps and \
                not isinstance(app.screen, ScoreScreen):
            return
        await pilot.pause(0.02)


async def test_score_file_at_start_then_branch_from_a_surprise(make_app, tmp_path):
    src = tmp_path / "text.txt"
    src.write_text(TEXT, encoding="utf-8")
    app = make_app(None, score_file=str(src))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_scored(pilot)
        session = app.session
        steps = session.current.steps
        ids = session.tokenizer(TEXT, add_special_tokens=False).input_ids
        assert session.prompt_ids == ids[:1]  # the first token has nothing before it: given
        assert [s.token.id for s in steps] == ids[1:]
        assert all(s.note == "scored" and s.how == "forced" for s in steps)
        stream = app.query_one(TokenStream)
        assert stream.colour_mode == "rank"
        order = surprises(steps)
        assert stream.cursor == order[0]  # the most surprising token first
        assert steps[order[0]].p_base == min(s.p_base for s in steps)
        table = app.query_one(AlternativesTable)
        shown = [c.id for c in table.candidates]
        assert shown and shown == [c.id for c in steps[order[0]].candidates][:len(shown)]
        assert "perplexity" in str(app.query_one(StatusLine).render())
        await pilot.press("u")
        await settle(pilot)
        assert stream.cursor == order[1]
        assert "surprise 2 of" in str(app.query_one(StatusLine).render())
        # branch at the surprise with the model's favourite there: what it would have written
        at = stream.cursor
        favourite = steps[at].candidates[0]
        if favourite.id == steps[at].token.id:
            favourite = steps[at].candidates[1]
        app.take_alternative(favourite.id)
        await settle(pilot)
        branch = session.current
        assert branch.fork_at == at and branch.steps[at].token.id == favourite.id
        assert branch.steps[at].how == "alternative"
        # the session's own forward agrees with the batched scoring pass
        assert branch.steps[at].p_base == pytest.approx(favourite.p_base, abs=5e-4)
        await pilot.press("n")
        await settle(pilot)
        assert len(session.current.steps) == at + 2


async def test_s_lists_the_surprises_and_moves_there(make_app, tmp_path):
    src = tmp_path / "text.txt"
    src.write_text(TEXT, encoding="utf-8")
    app = make_app()  # a prompt is open: the scored text replaces it
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Score a text", "Next surprise"} <= titles
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, ScoreScreen)
        app.screen.query_one("#score-path").value = str(src)
        await pilot.press("enter")
        await wait_scored(pilot)
        steps = app.session.current.steps
        assert app.session.prompt.text == "The" and steps[0].note == "scored"
        await pilot.press("s")
        await settle(pilot)
        options = app.screen.query_one(OptionList)
        order = surprises(steps)
        assert options.option_count == min(30, len(order))
        assert options.get_option_at_index(0).id == str(order[0])
        options.highlighted = 2
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(app.screen, ScoreScreen)
        assert app.query_one(TokenStream).cursor == order[2]


async def test_a_binary_file_is_refused_in_one_line(make_app, tmp_path):
    src = tmp_path / "blob.bin"
    src.write_bytes(b"\x00\x01\x02abc")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        before = list(app.session.prompt_ids)
        app.push_screen(ScoreScreen(str(src), autostart=True))
        await settle(pilot)
        status = str(app.screen.query_one("#score-status").render())
        assert "binary" in status
        assert app.session.prompt_ids == before and app.session.current.steps == []
