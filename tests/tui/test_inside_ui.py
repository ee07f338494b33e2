"""Pilot tests of the Inside screen (``i``) and the F1 explanations, on the tiny random model."""

from __future__ import annotations

from tests.tui.conftest import SIZE, ready, settle
from tokentui.engine.analysis import inside
from tokentui.engine.analysis.inside import InsideError
from tokentui.tui.help_texts import EXPLANATIONS
from tokentui.tui.screens import inside as inside_screen
from tokentui.tui.screens.explain import ExplainScreen, explanation_id
from tokentui.tui.screens.inside import InsideScreen
from tokentui.tui.widgets.alternatives import AlternativesTable
from tokentui.tui.widgets.inside_panes import InsidePane, LensPane
from tokentui.tui.widgets.token_stream import TokenStream


async def open_inside(pilot, steps: int = 3, lefts: int = 1) -> InsideScreen:
    await ready(pilot)
    for _ in range(steps):
        await pilot.press("n")
        await settle(pilot)
    for _ in range(lefts):
        await pilot.press("left")
    await settle(pilot)
    await pilot.press("i")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, InsideScreen)
    return screen


def text_of(widget) -> str:
    return str(widget.render())


async def test_i_opens_the_token_under_the_cursor_and_fills_every_pane(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_inside(pilot)
        n_prompt = len(app.session.prompt_ids)
        ctx = app.session.context_ids()
        assert screen.index == n_prompt + 1  # three steps, cursor moved back once
        report = screen.report
        assert report is not None and report.index == screen.index and report.missing == {}
        assert report.token.token.id == ctx[screen.index]
        assert report.target is not None and report.target.id == ctx[screen.index + 1]
        assert len(report.logit_lens) == 2  # the tiny model's layers
        for pane in screen.panes:
            assert not pane.has_class("-missing") and not pane.has_class("-stale"), pane.id
        assert f"{ctx[screen.index]}  of " in text_of(screen.query_one("#inside-token-text"))
        # the actual next token is marked in every layer where it is among the cells shown
        lens = screen.query_one(LensPane)
        shown = lens.shown_k
        assert lens.highlighted == [layer.layer for layer in report.logit_lens
                                    if layer.target_rank is not None and layer.target_rank <= shown]
        assert "computing" not in text_of(screen.query_one("#inside-head"))


async def test_left_right_move_without_leaving_and_escape_returns_the_cursor(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_inside(pilot)
        start = screen.index
        await pilot.press("right")
        await settle(pilot)
        assert app.screen is screen and screen.index == start + 1
        assert screen.report.index == start + 1 and screen.report.target is None  # the last token
        assert "not generated yet" in text_of(screen.query_one("#inside-token-text"))
        await pilot.press("right")  # already at the last token: stays
        await settle(pilot)
        assert screen.index == start + 1
        await pilot.press("home")
        await settle(pilot)
        assert screen.index == 0 and screen.report.index == 0 and screen.report.token.in_prompt
        await pilot.press("end")
        await settle(pilot)
        assert screen.report.index == len(app.session.context_ids()) - 1
        await pilot.press("left")
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, InsideScreen)
        stream = app.query_one(TokenStream)
        assert stream.cursor == len(stream.steps) - 2  # the cursor follows the last token inspected


async def test_moving_fast_ends_on_the_last_position_asked_for(make_app, monkeypatch):
    app = make_app()
    calls: list[int] = []
    real = inside.inspect

    def counting(session, index, **kwargs):
        calls.append(index)
        return real(session, index, **kwargs)

    monkeypatch.setattr(inside, "inspect", counting)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_inside(pilot, steps=4, lefts=0)
        calls.clear()
        for key in ("left", "left", "left", "left", "right", "left", "left"):
            await pilot.press(key)
        await settle(pilot)
        assert screen.report.index == screen.index == len(app.session.context_ids()) - 6
        assert calls[-1] == screen.index
        assert len(calls) <= 7  # stale requests return before computing (often far fewer run)


async def test_a_missing_part_greys_its_pane_and_the_others_still_show(make_app, monkeypatch):
    monkeypatch.setattr(inside, "FINAL_NORM_NAMES", ("no_such_norm",))
    monkeypatch.setattr(inside, "rotary_module", lambda model: None)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_inside(pilot)
        missing = {p.id for p in screen.panes if p.has_class("-missing")}
        assert missing == {"inside-lens", "inside-position"}
        lens = screen.query_one("#inside-lens", InsidePane)
        assert "no final norm found" in text_of(lens.query_one(".inside-reason"))
        assert "no rotary module" in text_of(screen.query_one("#inside-position .inside-reason"))
        assert "2 panes unavailable" in text_of(screen.query_one("#inside-head"))
        assert screen.report.embedding is not None and screen.report.temperature_sweep is not None


async def test_a_failing_report_is_one_line_not_a_crash(make_app, monkeypatch):
    def refuse(backend):
        raise InsideError("this backend gives no access to the model's internals (use --backend local)")

    monkeypatch.setattr(inside_screen, "inspector_for", refuse)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_inside(pilot)
        assert "✗ this backend gives no access" in text_of(screen.query_one("#inside-head"))
        assert all(p.has_class("-missing") for p in screen.panes)
        await pilot.press("left")  # still answers keys
        await settle(pilot)
        assert screen.index == len(app.session.prompt_ids)
        await pilot.press("escape")
        await settle(pilot)
        assert app.query_one(TokenStream) is not None and not isinstance(app.screen, InsideScreen)


async def test_f1_explains_the_focused_pane_on_both_screens(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert isinstance(app.focused, TokenStream)
        await pilot.press("f1")
        await settle(pilot)
        assert isinstance(app.screen, ExplainScreen) and app.screen.pane_id == "token_stream"
        formula = text_of(app.screen.query_one("#explain-formula"))
        assert formula == EXPLANATIONS["token_stream"].formula
        await pilot.press("escape")
        await settle(pilot)
        app.query_one(AlternativesTable).focus()
        await pilot.press("f1")
        await settle(pilot)
        assert app.screen.pane_id == "alternatives"
        await pilot.press("escape")
        app.query_one(TokenStream).focus()
        screen = await open_inside(pilot, steps=1, lefts=0)
        screen.query_one("#inside-temperature").focus()
        await pilot.press("f1")
        await settle(pilot)
        assert isinstance(app.screen, ExplainScreen) and app.screen.pane_id == "inside_temperature"
        assert "exp(z_i / T)" in text_of(app.screen.query_one("#explain-formula"))
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen  # back on the Inside screen, not the main one


async def test_usable_at_80x24(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_inside(pilot)
        assert screen.has_class("-compact")
        assert screen.report is not None and not any(p.has_class("-missing") for p in screen.panes)
        await pilot.press("tab")  # focus walks the panes and the column scrolls to it
        await pilot.press("tab")
        await settle(pilot)
        assert app.focused.id == "inside-embedding"
        assert app.focused.region.y < 24 and app.focused.region.height > 0


def test_explanation_ids_cover_the_main_screen_and_the_inside_panes():
    from tokentui.tui.screens.explain import MAIN_PANES

    assert set(MAIN_PANES.values()) <= set(EXPLANATIONS)
    panes = InsidePane.__subclasses__() + [c for s in InsidePane.__subclasses__()
                                           for c in s.__subclasses__()]
    ids = {c.explain_id for c in panes if c.explain_id}
    assert ids == {k for k in EXPLANATIONS if k.startswith("inside_")}
    assert explanation_id(None) is None


async def test_i_waits_while_generating(make_app):
    from tokentui.engine.params import SamplingParams

    app = make_app(params=SamplingParams(seed=7, max_new_tokens=2000, ignore_eos=True))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        app.simulate_key("g")  # sent without waiting: pilot.press waits for the run to go idle
        for _ in range(300):
            await pilot.pause(0.01)
            if app.generating:
                break
        app.simulate_key("i")
        for _ in range(20):
            await pilot.pause(0.01)
        assert app.generating and not isinstance(app.screen, InsideScreen)
        app.simulate_key("escape")
        for _ in range(500):
            await pilot.pause(0.01)
            if not app.generating:
                break
        await settle(pilot)
