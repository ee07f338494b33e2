"""Pilot tests: the real app over the tiny random model (mechanics) and the bundled model."""

from __future__ import annotations

import threading

import pytest
from textual.widgets import Input

from tests.tui.conftest import SIZE, ready, settle
from tokentui.engine.errors import ModelLoadError
from tokentui.engine.params import SamplingParams
from tokentui.tui.screens.branches import BranchesScreen
from tokentui.tui.screens.confirm import ConfirmScreen
from tokentui.tui.screens.force import ForceScreen
from tokentui.tui.screens.help import HelpScreen
from tokentui.tui.widgets.alternatives import AlternativesTable
from tokentui.tui.widgets.attention import AttentionPane
from tokentui.tui.widgets.params import ParamsPanel
from tokentui.tui.widgets.status import StatusLine
from tokentui.tui.widgets.token_stream import TokenStream
from tokentui.visible import visible


def status_text(app) -> str:
    return str(app.query_one(StatusLine).render())


async def test_starts_ready_on_the_token_stream(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        stream = app.query_one(TokenStream)
        assert app.focused is stream
        assert len(stream.prompt_tokens) == len(app.session.prompt_ids) > 0
        assert stream.at_next and stream.steps == []
        # the next-token distribution is listed before anything is generated
        table = app.query_one(AlternativesTable)
        assert len(table.candidates) == 10
        assert table.candidates[0].rank == 1
        assert "tiny-random" in app.sub_title and "branch 1/1" in app.sub_title


async def test_step_generate_and_delete(make_app):
    app = make_app(params=SamplingParams(seed=7, max_new_tokens=5))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        stream = app.query_one(TokenStream)
        await pilot.press("n")
        await settle(pilot)
        assert len(stream.steps) == 1
        assert stream.steps[0].token.id == app.session.current.steps[0].token.id
        await pilot.press("space")
        await settle(pilot)
        assert len(stream.steps) == 2
        await pilot.press("g")
        await settle(pilot)
        assert len(stream.steps) == len(app.session.current) == 5
        assert app.session.current.steps[-1].finish_reason in {"length", "eos"}
        assert "generated" in status_text(app)
        await pilot.press("backspace")
        await settle(pilot)
        assert len(stream.steps) == len(app.session.current) == 4


async def test_escape_stops_and_keys_answer_while_generating(make_app):
    """Keys sent while a run streams are handled during the run (pilot.press would wait for the
    app to go idle, i.e. for a fast model's whole run, so the keys are sent without waiting)."""
    app = make_app(params=SamplingParams(seed=7, max_new_tokens=2000, ignore_eos=True))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        stream = app.query_one(TokenStream)

        async def until(done) -> bool:
            for _ in range(1000):
                if done():
                    return True
                await pilot.pause(0.01)
            return done()

        app.simulate_key("g")
        assert await until(lambda: len(stream.steps) >= 2)
        assert app.generating
        assert stream.has_class("-generating")
        app.simulate_key("c")  # the UI answers while the engine thread works
        assert await until(lambda: stream.colour_mode == "probability")
        assert app.generating
        app.simulate_key("escape")
        assert await until(lambda: not app.generating)
        await settle(pilot)
        assert 2 <= len(stream.steps) < 2000
        assert len(stream.steps) == len(app.session.current)


async def test_branch_with_an_alternative(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        for _ in range(3):
            await pilot.press("n")
            await settle(pilot)
        stream = app.query_one(TokenStream)
        table = app.query_one(AlternativesTable)
        assert stream.cursor == 2  # the cursor follows the newest token
        await pilot.press("left")
        assert stream.cursor == 1
        taken = stream.steps[1].token.id
        assert table.selected.id == taken  # the chosen token is selected and marked
        await pilot.press("down")
        if table.selected.id == taken:
            await pilot.press("up", "up")
        alt = table.selected.id
        assert alt != taken
        await pilot.press("enter")
        await settle(pilot)
        assert len(app.session.branches) == 2
        assert "branch 2/2" in app.sub_title
        assert len(stream.steps) == 2
        assert stream.steps[1].token.id == alt and stream.steps[1].how == "alternative"
        assert stream.cursor == 1
        await pilot.press("n")  # continue from the new branch
        await settle(pilot)
        assert len(app.session.current) == 3 and app.session.current_id == 1


async def test_enter_on_the_next_token_forces_the_alternative(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        table = app.query_one(AlternativesTable)
        await pilot.press("down", "down")
        picked = table.selected.id
        await pilot.press("enter")
        await settle(pilot)
        steps = app.query_one(TokenStream).steps
        assert [s.token.id for s in steps] == [picked]
        assert len(app.session.branches) == 1


async def test_force_text_and_plain_rendering(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, ForceScreen)
        await pilot.press(*"[bold]x\x1b")  # markup and a raw escape character, as data
        await pilot.press("enter")
        await settle(pilot)
        stream = app.query_one(TokenStream)
        text = "".join(s.token.text for s in stream.steps)
        assert text.startswith("[bold]x")
        shown = stream.rendered.plain
        assert "[bold]x" in shown
        assert "\x1b" not in shown


async def test_control_characters_are_never_raw(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await app.engine.call(app.session.force_text, "a\x1b[31mred\tb\nc d")
        await app.refresh_view()
        await settle(pilot)
        shown = app.query_one(TokenStream).rendered.plain
        assert "\x1b" not in shown and "\t" not in shown
        assert "\\x1b[31mred⇥b⏎" in shown.replace("\n", "")
        assert "c·d" in shown


async def test_invalid_parameter_is_marked_and_not_used(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        box = app.query_one("#param-temperature", Input)
        box.focus()
        box.value = ""
        await pilot.press(*"abc")
        await settle(pilot)
        assert box.has_class("-bad")
        assert app.session.params.temperature == 0.7
        box.value = ""
        await pilot.press(*"-3")
        await settle(pilot)
        assert box.has_class("-bad")
        assert "temperature" in str(app.query_one("#param-error").render())
        assert app.session.params.temperature == 0.7
        box.value = ""
        await pilot.press(*"1.5")
        await settle(pilot)
        assert not box.has_class("-bad")
        assert app.session.params.temperature == 1.5
        top_k = app.query_one("#param-top_k", Input)
        top_k.value = "3"
        await settle(pilot)
        assert app.session.params.top_k == 3
        # stepping still works after the bad input
        app.query_one(TokenStream).focus()
        await pilot.press("n")
        await settle(pilot)
        assert len(app.session.current) == 1
        assert app.session.current.steps[0].distribution.n_kept <= 3


async def test_preset_fills_the_fields(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        panel = app.query_one(ParamsPanel)
        from textual.widgets import Select

        app.query_one("#preset", Select).value = "greedy"
        await settle(pilot)
        assert panel.params.is_greedy
        assert app.query_one("#param-temperature", Input).value == "0.0"
        assert app.session.params.is_greedy


async def test_branch_list_switch_rename_delete(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("n", "n")
        await settle(pilot)
        await pilot.press("down")
        if app.query_one(AlternativesTable).selected.id == app.session.current.steps[1].token.id:
            await pilot.press("up", "up")
        await pilot.press("enter")
        await settle(pilot)
        assert len(app.session.branches) == 2
        await pilot.press("b")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, BranchesScreen)
        info = {i.id: i for i in screen.infos}
        child = info[1]
        assert child.parent == 0 and child.fork_at == 1
        assert child.token.id != child.parent_token.id
        assert child.p_final is not None and child.parent_p_final is not None
        # rename the current branch
        await pilot.press("r")
        await pilot.pause()
        rename = screen.query_one("#rename", Input)
        rename.value = ""
        await pilot.press(*"cat", "enter")
        await settle(pilot)
        assert app.session.branches[1].name == "cat"
        # switch to the root: the screen closes and the stream shows its tokens
        await pilot.press("up", "enter")
        await settle(pilot)
        assert not isinstance(app.screen, BranchesScreen)
        assert app.session.current_id == 0
        assert "branch 1/2" in app.sub_title
        assert [s.token.id for s in app.query_one(TokenStream).steps] == app.session.current.ids
        # delete the other branch
        await pilot.press("b")
        await settle(pilot)
        await pilot.press("down", "d")
        await settle(pilot)
        assert list(app.session.branches) == [0]
        assert len(app.screen.infos) == 1


async def test_prompt_change_asks_before_discarding(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("n")
        await settle(pilot)
        editor = app.query_one("#prompt-text")
        editor.focus()
        await pilot.press("end", *" Please.")
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # keep the branches; the typed text stays in the editor
        await settle(pilot)
        assert len(app.session.current) == 1
        assert editor.text.endswith("Please.")
        assert app.session.prompt.text == "Tell me a story about a cat."
        editor.focus()
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert app.session.prompt.text.endswith("Please.")
        assert len(app.session.current) == 0
        assert app.focused is app.query_one(TokenStream)


async def test_empty_prompt_then_typed(make_app):
    app = make_app(prompt=None)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.session is None
        assert app.focused is app.query_one("#prompt-text")
        await pilot.press("n")  # typed into the editor, not a step
        await pilot.press(*"ice", "escape")
        await settle(pilot)
        assert app.session is not None and app.session.prompt.text == "nice"
        await pilot.press("n")
        await settle(pilot)
        assert len(app.session.current) == 1


async def test_quit_asks_when_tokens_would_be_lost(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("n")
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("q", "y")
        await pilot.pause()
    assert not app.is_running


async def test_interactive_while_the_model_loads(make_app, tiny_loaded):
    from tokentui.engine.backends.local import LocalBackend
    from tokentui.tui.app import TokenApp

    gate = threading.Event()

    def slow(progress):
        progress("converting weights", 0.5)
        gate.wait(10)
        return LocalBackend(tiny_loaded)

    app = TokenApp(slow, prompt="Hi")
    try:
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(100):
                await pilot.pause(0.01)
                if "converting" in status_text(app):
                    break
            assert "converting weights" in status_text(app)
            assert app.query_one(StatusLine).has_class("-loading")
            await pilot.press("n")
            assert "still loading" in status_text(app)
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            gate.set()
            await ready(pilot)
            assert app.session is not None
    finally:
        gate.set()
        app.engine.shutdown()


async def test_load_failure_is_one_status_line():
    from tokentui.tui.app import TokenApp

    def broken():
        raise ModelLoadError("no model at /nowhere")

    app = TokenApp(broken, prompt="Hi")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            status = app.query_one(StatusLine)
            assert status.has_class("-error")
            assert "no model at /nowhere" in status_text(app)
            assert app.is_running
    finally:
        app.engine.shutdown()


async def test_compact_layout_at_80x24(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        body = app.query_one("#body")
        assert body.has_class("-compact")
        assert not app.query_one("#side").display or app.query_one("#side").region.width == 0
        assert app.query_one(TokenStream).region.height >= 3
        assert app.query_one(AlternativesTable).region.height >= 5
        await pilot.press("v")
        await pilot.pause()
        assert app.query_one("#side").region.width > 0
        assert app.query_one("#main").region.width == 0
        await pilot.press("v")
        await pilot.pause()
        assert app.query_one("#main").region.width == 80
        # `t` picks the next side tab and brings the side panes into view.
        await pilot.press("t")
        await pilot.pause()
        assert app.query_one("#side").active == "tab-attention"
        assert app.query_one("#side").region.width > 0


async def test_attention_pane_is_lazy_and_follows_keys(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        pane = app.query_one(AttentionPane)
        assert pane.weights is None  # not computed while the pane is hidden
        await pilot.press("n", "n")
        await settle(pilot)
        assert pane.weights is None
        await pilot.press("t")  # Params -> Attention, from the keyboard
        assert app.query_one("#side").active == "tab-attention"
        await pilot.pause(0.5)
        await settle(pilot)
        n_ctx = len(app.session.context_ids())
        assert pane.weights is not None and pane.weights.shape == (4, n_ctx, n_ctx)
        assert pane.focus_row == n_ctx - 1
        # The caption names the focused token and the key it attends to most, as plain text.
        caption = pane.caption().plain
        row = pane.matrix()[n_ctx - 1]
        best = int(row.argmax())
        tokens = pane.tokens
        assert len(tokens) == n_ctx and [t.id for t in tokens] == app.session.context_ids()
        assert caption.startswith("▶ ") and " attends to " in caption
        assert caption.split(" attends to ")[1].startswith(visible(tokens[best].text))
        assert f"@{best} {row[best]:.2f}" in caption
        first = pane.weights.copy()
        await pilot.press("right_square_bracket")
        await pilot.pause(0.5)
        await settle(pilot)
        assert pane.layer == 1 and pane.weights is not None
        assert not (pane.weights == first).all()
        await pilot.press("right_curly_bracket")
        assert pane.head == 0
        assert "head 0 of 0-3" in pane.title
        await pilot.press("left_curly_bracket")
        assert pane.head == -1 and "mean" in pane.title
        await pilot.press("left")
        assert pane.focus_row == n_ctx - 2


async def test_colour_modes_and_monochrome(make_app, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        stream = app.query_one(TokenStream)
        assert stream.mono
        await pilot.press("n", "n")
        await settle(pilot)
        from tokentui.tui.styling import MONO_BAND_STYLES, band, step_style

        for step in stream.steps:
            style = step_style(step, "bands", mono=True)
            assert style == MONO_BAND_STYLES[band(step.p_final)]
            assert style.color is None
        modes = []
        for _ in range(4):
            await pilot.press("c")
            modes.append(stream.colour_mode)
        assert modes == ["probability", "entropy", "rank", "bands"]


async def test_command_palette_lists_every_action(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        for needed in ("Step", "Generate", "Stop", "Branches", "Force text", "Delete last token",
                       "Next layer", "Next head", "Help", "Cycle colours", "Inside the model",
                       "Explain this pane", "Attribute", "Attribution method",
                       "Export attention graph"):
            assert needed in commands
        await pilot.press("n")
        await pilot.pause(0.5)
        commands["Inside the model"].callback()
        await pilot.pause(1.0)
        assert type(app.screen).__name__ == "InsideScreen"


async def test_a_missing_session_file_is_one_line(make_app):
    """``--session`` with no such file: one error line; the prompt's session stays usable."""
    app = make_app(session_file="saved.json")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert "session not opened: no such session file: saved.json" in status_text(app)
        assert app.session is not None


@pytest.mark.parametrize("steps", [3])
async def test_bundled_model_greedy_branch(bundled, steps):
    """On the real model: greedy steps take the top candidate; a branch takes rank 2."""
    from tokentui.engine.backends.local import LocalBackend
    from tokentui.tui.app import TokenApp

    app = TokenApp(lambda: LocalBackend(bundled), prompt="What is the capital of France?",
                   params=SamplingParams(greedy=True, max_new_tokens=steps))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            assert "SmolLM2" in app.sub_title
            await pilot.press("g")
            await settle(pilot)
            stream = app.query_one(TokenStream)
            assert len(stream.steps) == steps
            for step in stream.steps:
                assert step.token.id == step.distribution.candidates[0].id
            await pilot.press("left", "left")
            assert stream.cursor == 0
            await pilot.press("down", "enter")
            await settle(pilot)
            assert len(app.session.branches) == 2
            assert stream.steps[0].token.id == stream.steps[0].distribution.candidates[1].id
            assert len(stream.steps) == 1
    finally:
        app.engine.shutdown()


async def test_the_cursor_walks_into_the_prompt(make_app):
    """Left of the first generated token the cursor reaches prompt tokens: given, not chosen;
    the attention row, Inside and attribution follow it; enter does not branch there."""
    from tokentui.tui.screens.inside import InsideScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        for _ in range(2):
            await pilot.press("n")
            await settle(pilot)
        stream = app.query_one(TokenStream)
        n_prompt = len(stream.prompt_tokens)
        await pilot.press("home", "left")
        await settle(pilot)
        assert stream.cursor == -1 and stream.in_prompt and stream.position == n_prompt - 1
        assert stream.current_step is None
        table = app.query_one(AlternativesTable)
        view = app.session.prompt_token(n_prompt - 1)
        assert str(table.border_title) == (f"Prompt token at {n_prompt - 1}: the model gave it "
                                           f"{view.p_base:.3f}, rank {view.rank} · given, not chosen")
        assert table.candidates == view.distribution.candidates[:len(table.candidates)]
        assert table.chosen_id == app.session.prompt_ids[-1]
        assert app.query_one(AttentionPane).focus_row == n_prompt - 1
        # the cursor is drawn on the prompt token itself
        cell = next(c for c in stream.cells if c.index == -1)
        line = stream.rendered.split("\n")[cell.line]
        assert any(span.style and "reverse" in str(span.style) and span.start <= cell.x < span.end
                   for span in line.spans)
        branches = len(app.session.branches)
        await pilot.press("enter")
        await settle(pilot)
        assert len(app.session.branches) == branches and "given, not chosen" in status_text(app)
        await pilot.press("a")  # attribution of a prompt token over the tokens before it
        await settle(pilot)
        shown = app.attribution_view.overlay
        assert shown is not None and shown.target == n_prompt - 1
        await pilot.press("i")
        await settle(pilot)
        assert isinstance(app.screen, InsideScreen) and app.screen.index == n_prompt - 1
        await pilot.press("left", "escape")  # back on the main screen one token further left
        await settle(pilot)
        assert stream.cursor == -2
        for _ in range(n_prompt + 3):  # the first token is the end
            await pilot.press("left")
        assert stream.cursor == -n_prompt and stream.position == 0
        await pilot.press("a")
        assert "no tokens before it" in status_text(app)


def test_failure_line_words():
    from tokentui.tui.failures import failure_line

    assert failure_line(ModelLoadError("no model at /x\nmore"), "loading") == "no model at /x"
    assert failure_line(ValueError("bad value"), "saving") == "saving failed: bad value"
    assert failure_line(KeyError(), "reading") == "reading failed"
    assert failure_line(OSError("disk full"), "saving", "not saved") == "not saved: disk full"


async def test_one_handler_says_what_failed_in_words(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)

        def broken() -> None:
            raise ValueError("the value was bad")

        worker = app.run_worker(broken, thread=True, name="checking something", exit_on_error=False)
        for _ in range(100):
            await pilot.pause(0.02)
            if worker.is_finished and "failed" in status_text(app):
                break
        status = app.query_one(StatusLine)
        assert status.has_class("-error")
        assert "checking something failed: the value was bad" in status_text(app)
        assert "ValueError" not in status_text(app) and app.is_running
