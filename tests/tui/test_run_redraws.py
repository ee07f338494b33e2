"""What a run's redraws cost the UI thread: the token stream's changed lines and the status line.

A layout of the whole screen, or a repaint of all of it, costs the UI thread tens of milliseconds
holding the GIL the engine thread needs between torch operations; at every redraw that made the
app ~1.1-1.4x slower than the CLI. These tests count them (no timing) while a run streams.
"""

from __future__ import annotations

from tests.tui.conftest import SIZE, ready, settle
from tokentui.engine.params import SamplingParams
from tokentui.tui.widgets.alternatives import AlternativesTable
from tokentui.tui.widgets.token_stream import TokenStream


async def test_a_runs_redraws_neither_lay_out_nor_repaint_the_whole_screen(make_app) -> None:
    # the tiny model's context holds 256 tokens: a small terminal, so that they fill the pane twice
    app = make_app(params=SamplingParams(seed=7, max_new_tokens=100_000, ignore_eos=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        screen, stream = app.screen, app.query_one(TokenStream)
        table = app.query_one(AlternativesTable)
        counts = {"redraws": 0, "layouts": 0, "full repaints": 0, "table repaints": 0}
        real_draw, real_layout = app._draw_pending, screen._refresh_layout
        real_full, real_table = screen._compositor.render_full_update, table.refresh

        def during_run(name, real):
            def counted(*args, **kwargs):
                if app.generating and counts["redraws"] > 0:  # after the run's first redraw
                    counts[name] += 1
                return real(*args, **kwargs)
            return counted

        screen._refresh_layout = during_run("layouts", real_layout)
        screen._compositor.render_full_update = during_run("full repaints", real_full)
        table.refresh = during_run("table repaints", real_table)
        scrolled = []

        def draw() -> None:
            counts["redraws"] += bool(app._pending)
            real_draw()
            scrolled.append(stream.scroll_offset.y)

        app._draw_pending = draw
        app.simulate_key("g")  # runs to the end of the context (256 tokens)
        for _ in range(6000):
            await pilot.pause(0.01)
            if counts["redraws"] and not app.generating:
                break
        await settle(pilot)
        assert app.session.current.finish_reason == "context"
        assert counts["redraws"] >= 3
        assert max(scrolled) > 0, "the stream grew past its pane and followed the newest token"
        assert counts["layouts"] == 0
        assert counts["full repaints"] == 0
        assert counts["table repaints"] == 0
        # and the run's end draws everything: the table shows the newest token's alternatives
        assert stream.cursor == len(stream.steps) - 1
        assert table.border_title.startswith(f"Alternatives at {stream.cursor}")


async def test_the_stream_shows_the_same_text_drawn_piecewise_or_at_once(make_app) -> None:
    """The incremental redraws of a run end in the layout a full redraw gives."""
    app = make_app(params=SamplingParams(seed=7, max_new_tokens=150, ignore_eos=True))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        stream = app.query_one(TokenStream)
        app.simulate_key("g")
        for _ in range(3000):
            await pilot.pause(0.01)
            if not app.generating and len(stream.steps) == 150:
                break
        await settle(pilot)
        stream.action_move(-5)  # a cursor move redraws two tokens only
        await settle(pilot)
        piecewise = [(c.line, c.x, c.width, c.index) for c in stream.cells], stream.rendered.plain
        stream.relayout()
        assert ([(c.line, c.x, c.width, c.index) for c in stream.cells], stream.rendered.plain) \
            == piecewise
        screen_text = "\n".join(line.text for line in [stream.render_line(y)
                                                       for y in range(stream.size.height)])
        first_shown = stream.wrapped.line_text(stream.scroll_offset.y).plain
        assert screen_text.startswith(first_shown)


async def test_a_click_on_a_token_moves_the_cursor_there(make_app) -> None:
    app = make_app(params=SamplingParams(seed=7, max_new_tokens=6, ignore_eos=True))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("g")
        await settle(pilot)
        stream = app.query_one(TokenStream)
        assert stream.cursor == 5
        for index in (2, -3):  # a completion token, then a prompt token
            cell = next(c for c in stream.cells if c.index == index)
            top = stream.scroll_offset.y
            assert top <= cell.line < top + stream.scrollable_content_region.height
            inside = stream.content_region.offset - stream.region.offset
            await pilot.click(TokenStream, offset=(inside.x + cell.x, inside.y + cell.line - top))
            await settle(pilot)
            assert stream.cursor == index
            assert app.focused is stream
