"""F1 explains every pane and screen: each id has a text, NO_COLOR texts name no colour, and F1
on each main pane (and on a screen) shows that pane's text, in colour and under NO_COLOR."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest
from textual.screen import ModalScreen
from textual.widgets import TabbedContent

from tests.tui.conftest import SIZE, ready, settle
from tokentui.tui import screens, widgets
from tokentui.tui.help_texts import COLOUR_WORDS, EXPLANATIONS, HELP_ORDER, explanation
from tokentui.tui.screens.explain import MAIN_PANES, SCREENS, ExplainScreen


def modules(package):
    return [importlib.import_module(f"{package.__name__}.{m.name}")
            for m in pkgutil.iter_modules(package.__path__)]


def classes(module):
    """The classes a module defines (not those it imports)."""
    return [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]


def colour_words(text: str) -> list[str]:
    return [w for w in COLOUR_WORDS if re.search(rf"\b{w}\b", text.lower())]


def text_of(widget) -> str:
    return str(widget.render())


def test_every_pane_and_screen_has_an_explanation():
    screen_classes = {cls.__name__ for mod in modules(screens) for cls in classes(mod)
                      if issubclass(cls, ModalScreen)}
    screen_classes.discard("ExplainScreen")
    assert screen_classes - set(SCREENS) == set(), "a screen F1 cannot name"
    inside_ids = {cls.explain_id for mod in modules(widgets) for cls in classes(mod)
                  if getattr(cls, "explain_id", "")}
    assert len(inside_ids) == 6
    wanted = {*MAIN_PANES.values(), *SCREENS.values(), *inside_ids, *HELP_ORDER, "attribution", "graph"}
    assert wanted - set(EXPLANATIONS) == set()
    for pane in wanted:
        e = explanation(pane)
        assert e.title and len(e.shows) > 40 and len(e.read) > 40 and e.formula, pane


@pytest.mark.parametrize("pane", sorted(EXPLANATIONS))
def test_no_color_texts_name_no_colour(pane):
    mono = explanation(pane, no_color=True)
    assert colour_words(" ".join(mono.to_json().values())) == []
    assert mono.title == EXPLANATIONS[pane].title and mono.formula == EXPLANATIONS[pane].formula


def test_colour_texts_say_what_the_colours_and_glyphs_mean():
    stream = explanation("token_stream")
    assert {"green", "red", "magenta"} <= set(colour_words(stream.read))
    mono = explanation("token_stream", no_color=True)
    for style in ("bold", "plain", "dim", "underlined", "reverse"):
        assert style in mono.read
    assert "KL" in explanation("compare").formula and "bits" in explanation("compare").formula
    assert "estimated" in explanation("compare").read and "exact" in explanation("compare").read
    # every reason the constraint gives for an invalid token (tokentui/engine/constraints.py)
    from tokentui.engine import constraints

    source = inspect.getsource(constraints.Constraint.why_invalid)
    reasons = re.findall(r'return f?"((?:the|not)[^"{]*)', source)
    assert len(reasons) >= 4
    for no_color in (False, True):
        read = explanation("constraint", no_color=no_color).read
        for reason in reasons:
            assert reason.strip() in read.replace("<kind>", "").replace("  ", " ") or \
                reason.replace("the ", "the <kind> ", 1).strip() in read, reason
    assert "sink" in explanation("graph").read and "--keep-sink" in explanation("graph").read


def main_pane_focus(app):
    """(explanation id, how to put the focus there) for each main pane."""
    def tab(name):
        def go():
            tabs = app.query_one("#side", TabbedContent)
            tabs.active = name
            tabs.query_one("Tabs").focus()
        return go
    return [
        ("prompt", lambda: app.query_one("#prompt-text").focus()),
        ("token_stream", lambda: app.query_one("#stream").focus()),
        ("alternatives", lambda: app.query_one("#alternatives").focus()),
        ("params", tab("tab-params")),
        ("attention", tab("tab-attention")),
        ("charts", tab("tab-chart")),
        ("constraint", tab("tab-constraint")),
    ]


@pytest.mark.parametrize("no_color", [False, True], ids=["colour", "no_color"])
async def test_f1_on_each_main_pane_shows_its_text(make_app, monkeypatch, no_color):
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.no_color is no_color
        for pane, focus in main_pane_focus(app):
            focus()
            await pilot.pause()
            await pilot.press("f1")
            await settle(pilot)
            assert isinstance(app.screen, ExplainScreen), pane
            assert app.screen.pane_id == pane
            want = explanation(pane, no_color=no_color)
            assert text_of(app.screen.query_one("#explain-shows")) == want.shows
            assert text_of(app.screen.query_one("#explain-read")) == want.read
            assert text_of(app.screen.query_one("#explain-formula")) == want.formula
            if no_color:
                assert colour_words(want.shows + want.read) == []
            await pilot.press("escape")
            await settle(pilot)
            assert not isinstance(app.screen, ExplainScreen)


async def test_f1_on_a_screen_explains_the_screen(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("n", "b")
        await settle(pilot)
        assert type(app.screen).__name__ == "BranchesScreen"
        await pilot.press("f1")
        await settle(pilot)
        assert isinstance(app.screen, ExplainScreen) and app.screen.pane_id == "branches"
        assert "fork" in text_of(app.screen.query_one("#explain-shows"))
        await pilot.press("escape")
        await settle(pilot)
        assert type(app.screen).__name__ == "BranchesScreen"
