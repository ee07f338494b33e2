"""The core loop, smooth (issue 14): the app while it works, and no traps. Pilot tests over the
tiny random model (mechanics); the tmux tests in tests/tui_tmux/ check the same as plain text."""

from __future__ import annotations

import re

from textual.widgets import Input, Select, TextArea

from tests.tui.conftest import SIZE, ready, settle
from tokentui.engine.params import SamplingParams, apply_preset
from tokentui.tui.app import fit_line
from tokentui.tui.widgets.alternatives import AlternativesTable
from tokentui.tui.widgets.attention import COMPUTING, AttentionPane
from tokentui.tui.widgets.charts import DistributionChart
from tokentui.tui.widgets.params import ParamsPanel
from tokentui.tui.widgets.status import StatusLine
from tokentui.tui.widgets.tickbox import TickBox
from tokentui.tui.widgets.token_stream import TokenStream

STATUS = re.compile(r"^generating (\d+)/(\d+)( · ([\d.]+) tok/s)? · esc stops")


def status_text(app) -> str:
    return str(app.query_one(StatusLine).render())


async def wait_run_end(pilot) -> None:
    app = pilot.app
    for _ in range(3000):
        await pilot.pause(0.01)
        if not app.generating:
            break
    await settle(pilot)


async def test_status_line_counts_while_generating_and_redraws_at_a_bounded_rate(make_app):
    app = make_app(params=SamplingParams(seed=7, max_new_tokens=120, ignore_eos=True))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        stream = app.query_one(TokenStream)
        layouts = []
        # every redraw of the stream: a full one, or the run's piecewise one from the cursor
        relayout, redraw = stream.relayout, stream._redraw_from_cursor
        stream.relayout = lambda: (layouts.append(len(stream.steps)), relayout())[1]
        stream._redraw_from_cursor = lambda: (layouts.append(len(stream.steps)), redraw())[1]
        seen, lines = [], []
        app.action_generate()  # as ``g`` does; pilot.press would wait for the run to go idle
        for _ in range(20000):  # bounded: a run that never shows its count fails, never hangs
            if not (app.generating or not seen):
                break
            await pilot.pause(0.005)
            lines.append(status_text(app))
            if found := STATUS.match(lines[-1]):
                seen.append(found)
        assert seen, f"the status line never counted: {sorted(set(lines))[:5]}"
        await wait_run_end(pilot)
        counts = [int(m.group(1)) for m in seen]
        assert counts == sorted(counts) and all(m.group(2) == "120" for m in seen)
        assert any(m.group(4) and float(m.group(4)) > 0 for m in seen)
        assert len(stream.steps) == len(app.session.current.steps) == 120
        # the stream was laid out in batches during the run, not once per token
        during = [n for n in layouts if n < 120]
        assert len(during) < 60, f"{len(during)} layouts for 120 tokens"
        assert layouts[-1] == 120  # the last step is always drawn
        done = status_text(app)
        assert re.match(r"generated 120 tokens in [\d.]+ s \([\d.]+ tok/s\): max tokens reached", done)
        assert f"{app.tokens_per_s:.1f} tok/s" in app.sub_title


async def test_one_step_keeps_the_runs_speed(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert app.tokens_per_s == 0.0 and "tok/s" not in app.sub_title  # no run yet: no rate


async def test_hidden_charts_compute_nothing_and_draw_when_shown(make_app):
    app = make_app(params=SamplingParams(seed=7, max_new_tokens=30, ignore_eos=True))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        chart = app.query_one(DistributionChart)
        shown = []
        show = chart.show
        chart.show = lambda dist, title: (shown.append(title), show(dist, title))[1]
        await pilot.press("g")
        await wait_run_end(pilot)
        assert shown == []  # the Chart tab was hidden the whole run
        await pilot.press("t", "t")  # Params -> Attention -> Chart
        await pilot.pause()
        assert app.query_one("#side").active == "tab-chart"
        assert len(shown) == 1
        alternatives = app.query_one(AlternativesTable)
        assert chart.lines[0].plain == str(alternatives.border_title)


async def test_chart_lists_all_twenty_ranks(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("t", "t")
        await pilot.pause()
        await settle(pilot)
        chart = app.query_one(DistributionChart)
        ranks = [int(line.plain.split()[0]) for line in chart.lines[1:]]
        assert ranks == list(range(1, 21))
        # every line on screen: the widget is as tall as its lines and inside the pane
        assert chart.region.height == 21
        assert chart.region.bottom <= app.query_one("#side").region.bottom
        dist = app.query_one(AlternativesTable)
        assert dist.candidates[0].text.strip()[:3] in chart.lines[1].plain.replace("·", " ")


async def test_escape_leaves_a_params_field_and_n_steps(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        field = app.query_one("#param-temperature", Input)
        field.focus()
        await pilot.press("5")
        assert field.value == "0.75"
        await pilot.press("escape")
        assert isinstance(app.focused, TokenStream)
        await pilot.press("n")
        await settle(pilot)
        assert field.value == "0.75" and len(app.session.current.steps) == 1
        assert app.query_one(ParamsPanel).params.temperature == 0.75


async def test_escape_leaves_the_prompt_the_system_prompt_and_the_preset(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        for selector, kind in (("#prompt-text", TextArea), ("#prompt-system", Input),
                               ("#preset", Select), ("#param-greedy", TickBox)):
            app.query_one(selector, kind).focus()
            await pilot.pause()
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.focused, TokenStream), selector


async def test_checkboxes_read_on_and_off_as_text(make_app):
    app = make_app(params=SamplingParams(greedy=True))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        greedy = app.query_one("#param-greedy", TickBox)
        assert greedy.render().plain.startswith("[x] greedy")
        assert app.query_one("#param-ignore_eos", TickBox).render().plain.startswith("[ ] ignore EOS")
        greedy.focus()
        await pilot.press("space")
        await pilot.pause()
        assert greedy.render().plain.startswith("[ ] greedy")
        assert app.query_one(ParamsPanel).params.greedy is False


async def test_the_preset_box_shows_the_preset_in_force(make_app):
    app = make_app(params=apply_preset(SamplingParams(max_new_tokens=12), "creative"))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        select = app.query_one("#preset", Select)
        assert select.value == "creative"
        field = app.query_one("#param-temperature", Input)
        field.focus()
        await pilot.press("backspace", "backspace", "backspace", "0", ".", "5")
        await pilot.pause()
        assert app.query_one(ParamsPanel).params.temperature == 0.5
        assert select.is_blank()  # custom now
        select.value = "reliable"
        await pilot.pause()
        assert field.value == "0.3" and select.value == "reliable"


async def test_attention_says_computing_and_fills_after_a_run_without_a_key(make_app):
    app = make_app(params=SamplingParams(seed=7, max_new_tokens=20, ignore_eos=True))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("t")
        await pilot.pause(0.5)
        await settle(pilot)
        pane = app.query_one(AttentionPane)
        assert pane.weights is not None
        said = []
        computing = pane.computing
        pane.computing = lambda: (computing(), said.append(pane.message))[0]
        await pilot.press("g")
        await wait_run_end(pilot)
        await pilot.pause(0.6)  # the debounce
        await settle(pilot)
        assert said == [COMPUTING]
        n_ctx = len(app.session.context_ids())
        assert pane.weights is not None and pane.weights.shape[-1] == n_ctx and not pane.stale


async def test_attention_message_wraps_whole_words(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        pane = app.query_one(AttentionPane)
        pane.set_weights(None, "attention is not available: this backend gives no weights at all")
        lines = [line.plain.rstrip() for line in pane.message_lines(20)]
        assert len(lines) > 1 and all(len(line) <= 20 for line in lines)
        assert " ".join(lines).split() == pane.message.split()


async def test_top_10_alternatives_fit_at_100x30_and_80x24(make_app):
    for size in ((100, 30), (80, 24)):
        app = make_app()
        async with app.run_test(size=size) as pilot:
            await ready(pilot)
            table = app.query_one(AlternativesTable)
            assert len(table.candidates) == 10
            # border + header + 10 rows, all on screen
            assert table.region.height == 13 and table.region.bottom <= size[1] - 2
            assert table.scrollable_content_region.height == 11
            assert app.query_one(TokenStream).region.height >= 3


def test_fit_line_cuts_with_an_ellipsis():
    parts = ["branch 1/1", "9.1 tok/s", "a-very-long-model-name-from-a-folder", "cpu"]
    assert fit_line(parts, 200) == " · ".join(parts)
    short = fit_line(parts, 50)
    assert len(short) <= 50 and "…" in short and short.endswith("cpu")
    assert short.startswith("branch 1/1 · 9.1 tok/s · a-very")
    assert len(fit_line(parts, 10)) <= 10


async def test_status_line_is_cut_with_an_ellipsis(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        status = app.query_one(StatusLine)
        status.info("word " * 40)
        await pilot.pause()
        line = "".join(segment.text for segment in status.render_line(0)).rstrip()
        assert line.endswith("…") and len(line) <= 80 and line.lstrip().startswith("word word")


def test_compare_titles_never_wrap():
    from rich.console import Console

    from tokentui.tui.screens.compare import _top

    table = _top(None, None, "B top-10 (took " + "x" * 60 + ")")
    console = Console(width=60, record=True, color_system=None)
    console.print(table)
    lines = console.export_text().splitlines()
    assert lines[0].startswith("B top-10") and lines[0].rstrip().endswith("…")
    assert "token" in lines[2]  # the table starts right under its one-line title (after its rule)


def test_branch_text_is_cut_at_its_start_with_an_ellipsis():
    from tokentui.tui.screens.branches import tail

    assert tail("short", 40) == "short"
    cut = tail("a" * 30 + "the end of a long branch", 20)
    assert len(cut) == 20 and cut.startswith("…") and cut.endswith("long branch")
