"""The lockstep screen (``D``): model B chosen in the model dialog, the app's branch read through
both models, stepping, the driver swap, jumps by divergence and the strip, on tiny models."""

from __future__ import annotations

import pytest
import torch
from textual.widgets import Input

from tests.conftest import make_tiny_loaded
from tests.tui.conftest import SIZE, ready, settle
from tokentui.engine.params import SamplingParams
from tokentui.tui.screens.lockstep import LockstepScreen
from tokentui.tui.screens.model import ModelScreen
from tokentui.tui.widgets.divergence_strip import GLYPHS, DivergenceStrip, level, strip_text


@pytest.fixture(scope="module")
def other_dir(tokenizer, tmp_path_factory):
    loaded = make_tiny_loaded(tokenizer, seed=1)
    folder = tmp_path_factory.mktemp("tiny-b")
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return folder, loaded


async def wait_for(pilot, condition, tries: int = 600) -> None:
    for _ in range(tries):
        await settle(pilot)
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition never held")


async def test_lockstep_screen_reads_the_branch_and_steps_both(make_app, other_dir, tiny_loaded):
    folder, loaded_b = other_dir
    app = make_app(params=SamplingParams(greedy=True, max_new_tokens=4))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("g")
        await settle(pilot)
        branch = list(app.session.current.ids)
        assert len(branch) == 4
        await pilot.press("D")
        await pilot.pause()
        assert isinstance(app.screen, ModelScreen)  # model B is asked for with the model dialog
        app.screen.query_one("#model-spec", Input).value = str(folder)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, LockstepScreen)
        await wait_for(pilot, lambda: len(screen.divs) == 4 and not screen.busy)
        assert [d.token.id for d in screen.divs] == branch
        # the numbers are the two models' own: KL(A||B) from transformers forwards
        ids = app.session.prompt_ids + branch
        with torch.no_grad():
            la = torch.log_softmax(tiny_loaded.model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
            lb = torch.log_softmax(loaded_b.model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
        n = len(app.session.prompt_ids)
        for i, d in enumerate(screen.divs):
            p = la[n - 1 + i]
            q = lb[n - 1 + i]
            assert d.kl_ab == pytest.approx(float((p.exp() * (p - q)).sum()) / 0.6931471805599453, rel=1e-4)
        strip = screen.query_one(DivergenceStrip)
        assert strip.values == tuple(d.js for d in screen.divs) and strip.cursor == 3
        # n: one more token in both; d: B drives the next ones
        await pilot.press("n")
        await wait_for(pilot, lambda: len(screen.divs) == 5 and not screen.busy)
        assert screen.divs[-1].driver == "a" and screen.divs[-1].rank_a == 1
        await pilot.press("d")
        await pilot.press("n")
        await wait_for(pilot, lambda: len(screen.divs) == 6 and not screen.busy)
        assert screen.divs[-1].driver == "b" and screen.divs[-1].rank_b == 1
        stats = str(screen.query_one("#ls-stats").render())
        assert "KL(A‖B)" in stats and "JS" in stats and "overlap" in stats
        # j: the largest divergence first, then the next largest
        order = sorted(range(6), key=lambda i: (-screen.divs[i].js, i))
        await pilot.press("j")
        assert screen.cursor == order[0]
        await pilot.press("j")
        assert screen.cursor == order[1]
        await pilot.press("k")
        assert screen.cursor == order[0]
        # o: branch at the cursor to the other model's choice, both models together
        at = screen.cursor
        other = screen.divs[at].top_b[0].token.id
        if other != screen.divs[at].token.id:
            await pilot.press("o")
            await wait_for(pilot, lambda: len(screen.divs) == at + 1 and not screen.busy)
            assert screen.divs[-1].token.id == other
            assert screen.lockstep.a.current.ids == screen.lockstep.b.current.ids
        # q drops model B; the app's own session is as it was
        await pilot.press("q")
        await pilot.pause()
        assert not isinstance(app.screen, LockstepScreen)
        assert app.session.current.ids == branch


def test_strip_levels_and_mono_glyphs():
    assert level(0.0) == 0 and level(1.0) == len(GLYPHS) - 1
    assert level(0.01) < level(0.2) < level(0.9)
    text = strip_text([0.0, 0.5, 1.0], cursor=1, mono=True)
    assert text.plain == GLYPHS[0] + GLYPHS[level(0.5)] + GLYPHS[-1]
    assert all(span.style.color is None for span in text.spans)  # no colour under NO_COLOR
    coloured = strip_text([0.0, 1.0], cursor=None, mono=False)
    assert coloured.spans[0].style.color != coloured.spans[1].style.color


async def test_palette_entry_opens_it_and_escape_in_the_dialog_adds_nothing(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        commands["Two models in lockstep"].callback()
        await pilot.pause()
        assert isinstance(app.screen, ModelScreen)
        assert any(isinstance(s, LockstepScreen) for s in app.screen_stack)
        await pilot.press("escape")  # no model B chosen: back to the app, nothing loaded
        await pilot.pause()
        assert not any(isinstance(s, LockstepScreen) for s in app.screen_stack)
