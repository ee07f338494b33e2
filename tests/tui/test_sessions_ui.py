"""Pilot tests of issue 8 in the app: save / open / autosave, reset, model off, chat turns,
the model screen, branch comparison, the critical-token jump and exploration (tiny model)."""

from __future__ import annotations

import json
import os
import time

from textual.widgets import DataTable, Input, Static, Tree

from tests.tui.conftest import SIZE, ready, settle
from tokentui.engine import chat
from tokentui.engine.analysis.forks import next_critical
from tokentui.engine.params import SamplingParams
from tokentui.engine.persist import session_file as store
from tokentui.tui.screens.chat import ChatScreen
from tokentui.tui.screens.compare import CompareScreen
from tokentui.tui.screens.confirm import ConfirmScreen
from tokentui.tui.screens.explore import ExploreScreen
from tokentui.tui.screens.model import ModelScreen
from tokentui.tui.screens.save import SaveScreen
from tokentui.tui.sessions import read_recent, remember_model
from tokentui.tui.widgets.alternatives import AlternativesTable
from tokentui.tui.widgets.attention import AttentionPane
from tokentui.tui.widgets.status import StatusLine
from tokentui.tui.widgets.token_stream import TokenStream


def status_text(app) -> str:
    return str(app.query_one(StatusLine).render())


async def steps(pilot, n: int) -> None:
    for _ in range(n):
        await pilot.press("n")
        await settle(pilot)


async def branch_at(pilot, index: int) -> None:
    """Take another alternative at completion ``index`` (a second branch)."""
    app = pilot.app
    stream = app.query_one(TokenStream)
    stream.cursor = index
    await pilot.pause()
    table = app.query_one(AlternativesTable)
    await pilot.press("down")
    if table.selected.id == stream.steps[index].token.id:
        await pilot.press("up", "up")
    await pilot.press("enter")
    await settle(pilot)


def plain(static: Static) -> str:
    """What a Static shows, as plain text (tables included)."""
    from rich.console import Console

    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(static.content)
    return console.export_text()


def tree_of(session) -> dict[int, tuple[str, int | None, int, list[int]]]:
    return {b.id: (b.name, b.parent, b.fork_at, b.ids) for b in session.branches.values()}


async def test_ctrl_s_saves_and_session_reopens_the_same_branches(make_app, tmp_path):
    path = tmp_path / "run.json"
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await steps(pilot, 4)
        await branch_at(pilot, 1)
        await steps(pilot, 1)
        before = tree_of(app.session)
        current = app.session.current_id
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SaveScreen)  # asks the first time
        app.screen.query_one(Input).value = str(path)
        await pilot.press("enter")
        await settle(pilot)
        assert path.is_file() and f"saved 2 branch(es) to {path}" in status_text(app)
        await steps(pilot, 1)
        await pilot.press("ctrl+s")  # the second time: no question, same file
        await settle(pilot)
        assert not isinstance(app.screen, SaveScreen)
        before = tree_of(app.session)
        assert store.load_session_file(path).branch(current).ids == before[current][3]

    reopened = make_app(prompt=None, session_file=str(path))
    async with reopened.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert "opened" in status_text(reopened) and "2 branch(es)" in status_text(reopened)
        assert tree_of(reopened.session) == before
        assert reopened.session.current_id == current
        stream = reopened.query_one(TokenStream)
        assert [s.token.id for s in stream.steps] == before[current][3]
        assert reopened.query_one("#prompt-text").text == "Tell me a story about a cat."
        assert "branch 2/2" in reopened.sub_title


async def test_a_corrupt_session_file_opens_empty_and_is_left_untouched(make_app, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"format":"tokentui-session","version":1,"prompt":{"te')
    original = path.read_bytes()
    app = make_app(prompt=None, session_file=str(path))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        status = app.query_one(StatusLine)
        assert status.has_class("-error")
        line = status_text(app)
        assert "session not opened" in line and "truncated or corrupt" in line and "\n" not in line
        assert app.session is None and app.is_running
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "nothing to save" in status_text(app)
    assert path.read_bytes() == original


async def test_autosave_writes_a_loadable_file_and_flushes_on_quit(make_app, tmp_path):
    app = make_app()
    app.data_dir = tmp_path
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await steps(pilot, 3)
        for _ in range(60):  # the autosave tick runs once a second
            await pilot.pause(0.05)
            if list(tmp_path.glob("*.json")):
                break
        await settle(pilot)
        (saved,) = tmp_path.glob("*.json")
        sf = store.load_session_file(saved)
        assert sf.branch(0).ids == app.session.current.ids[:len(sf.branch(0).ids)]
        assert len(sf.branch(0).ids) >= 1
        await steps(pilot, 2)
        final_ids = app.session.current.ids
    # quitting flushes the last change into the same file
    assert [p.name for p in tmp_path.glob("*.json")] == [saved.name]
    assert store.load_session_file(saved).branch(0).ids == final_ids
    assert len(final_ids) == 5


async def test_reset_asks_then_clears_every_branch_and_keeps_the_prompt(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        prompt_ids = list(app.session.prompt_ids)
        await steps(pilot, 3)
        await branch_at(pilot, 1)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert len(app.session.branches) == 2
        await pilot.press("ctrl+r", "y")
        await settle(pilot)
        assert len(app.session.branches) == 1 and app.session.current.steps == []
        assert app.session.prompt_ids == prompt_ids
        assert app.query_one(TokenStream).steps == []


async def test_model_off_stops_the_model_and_on_recomputes_once(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        calls = []
        real_peek = app.session.peek
        app.session.peek = lambda: calls.append(1) or real_peek()
        await pilot.press("ctrl+l")
        await settle(pilot)
        table = app.query_one(AlternativesTable)
        assert app.model_off and table.has_class("-model-off")
        assert app.query_one(AttentionPane).has_class("-model-off")
        assert "model off" in str(table.border_title) and table.candidates == ()
        await pilot.press("n")
        await settle(pilot)
        assert app.session.current.steps == [] and "model is off" in status_text(app)
        app.query_one("#param-temperature", Input).value = "0.9"  # editing parameters runs nothing
        await settle(pilot)
        assert app.session.params.temperature == 0.9
        assert calls == [] and table.candidates == ()
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert not app.model_off and not table.has_class("-model-off")
        assert calls == [1] and len(table.candidates) == 10


async def test_chat_turn_adds_the_user_message_and_the_answer(make_app, tmp_path):
    app = make_app(params=SamplingParams(seed=7, max_new_tokens=6))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        session = app.session
        await pilot.press("m")
        await settle(pilot)
        assert "ended its turn" in status_text(app)  # nothing generated yet
        await steps(pilot, 2)
        eos = session.backend.eos_token_ids[0] if isinstance(session.backend.eos_token_ids, list) \
            else next(iter(session.backend.eos_token_ids))
        await app.engine.call(session.force_token, eos)  # the model ends its turn
        await app.refresh_view()
        first_answer = session.current.ids
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, ChatScreen)
        shown = plain(app.screen.query_one("#chat-messages", Static))
        assert "user" in shown and "assistant" in shown and "Tell me a story" in shown
        app.screen.query_one(Input).value = "And then?"
        await pilot.press("enter")
        await settle(pilot)
        steps_now = session.current.steps
        start = chat.turn_start(steps_now)
        assert session.current.ids[:3] == first_answer
        assert steps_now[3].note == "user turn: And then?" and chat.is_user_turn(steps_now[start - 1])
        # the answer got its own token budget (6), counted from the user turn
        assert len(steps_now) - start == 6 or steps_now[-1].finish_reason == "eos"
        roles = [m["role"] for m in chat.conversation(session)]
        assert roles[:4] == ["user", "assistant", "user", "assistant"]
        # the context is exactly the chat template over the conversation so far
        tok = session.tokenizer
        conv = chat.conversation(session)[:3]
        rendered = tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
        ctx = session.prompt_ids + session.current.ids[:start]
        assert tok.decode(ctx, skip_special_tokens=False) == rendered
        # branching inside the first answer still works and keeps the conversation apart
        await branch_at(pilot, 1)
        assert len(session.branches) == 2 and not any(chat.is_user_turn(s) for s in session.current.steps)
        await app.engine.call(session.switch, 0)
        path = store.save(session, tmp_path / "chat.json", messages=chat.conversation(session))
    data = json.loads(path.read_text())
    assert [m["role"] for m in data["messages"]][:3] == ["user", "assistant", "user"]
    assert data["messages"][2]["content"] == "And then?"


async def test_model_switch_failure_keeps_the_session(make_app, tmp_path):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await steps(pilot, 2)
        session, ids, name = app.session, app.session.current.ids, app.model_name
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, ModelScreen)
        app.screen.query_one("#model-spec", Input).value = str(tmp_path / "missing.gguf")
        await pilot.press("enter")
        await settle(pilot)
        status = app.query_one(StatusLine)
        assert status.has_class("-error") and f"model not loaded ({name} kept)" in status_text(app)
        assert "no such GGUF file" in status_text(app)
        assert app.session is session and session.current.ids == ids and app.model_name == name
        assert [s.token.id for s in app.query_one(TokenStream).steps] == ids


async def test_model_switch_success_opens_the_same_prompt(make_app, tiny_loaded):
    from tokentui.engine.backends.local import LocalBackend

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await steps(pilot, 2)
        old = app.session
        app.sessions.open_backend = lambda request, progress: LocalBackend(tiny_loaded)
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        assert app.session is not old and app.session.prompt == old.prompt
        assert app.session.current.steps == [] and "a new session on the same prompt" in status_text(app)


async def test_model_screen_offers_the_cli_model_flags_and_validates(make_app):
    """Local: device, dtype, device map, trust-remote-code (with its warning), pickle weights;
    server: URL,
    served model, tokenizer, key variable. A bad value is one line and the screen stays."""
    from textual.widgets import Checkbox, Select

    from tokentui.engine.launch import ModelConfig

    app = make_app()
    chosen: list[ModelConfig | None] = []
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        app.sessions.switch_model = chosen.append  # what the screen hands the loader
        await pilot.press("ctrl+o")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ModelScreen)
        warning = screen.query_one("#model-trust-warning")
        assert not warning.display
        screen.query_one("#model-trust", Checkbox).value = True
        await pilot.pause()
        assert warning.display and "own Python code" in plain(warning) and "will run" in plain(warning)
        screen.query_one("#model-device", Input).value = "gpu7"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen and not chosen
        assert "unknown device 'gpu7'" in plain(screen.query_one("#model-error", Static))
        screen.query_one("#model-device", Input).value = "cuda:1"
        screen.query_one("#model-device-map", Input).value = "auto"
        screen.query_one("#model-pickle", Checkbox).value = True
        await pilot.pause()
        assert warning.display  # the pickle box leaves the remote-code warning as it was
        screen.query_one("#model-spec", Input).value = "org/name"
        screen.query_one("#model-spec", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert chosen == [ModelConfig(spec="org/name", device="cuda:1", device_map="auto",
                                      trust_remote_code=True, allow_pickle=True)]
        await pilot.press("ctrl+o")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#model-kind", Select).value = "openai"
        await pilot.pause()
        assert not screen.query_one("#model-local").display and screen.query_one("#model-server").display
        screen.query_one("#model-served", Input).focus()
        await pilot.press("enter")  # no URL: the CLI's line, and the screen stays
        await pilot.pause()
        assert app.screen is screen and "needs --base-url" in plain(screen.query_one("#model-error", Static))
        for field, value in (("url", "http://127.0.0.1:9"), ("served", "m"), ("tokenizer", "org/tok"),
                             ("key-env", "MY_KEY")):
            screen.query_one(f"#model-{field}", Input).value = value
        await pilot.press("enter")
        await pilot.pause()
        assert chosen[-1] == ModelConfig(backend="openai", base_url="http://127.0.0.1:9", served_model="m",
                                         tokenizer="org/tok", api_key_env="MY_KEY")


async def test_model_screen_unknown_hub_id_offline_fails_fast_and_keeps_the_session(make_app,
                                                                                  monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await steps(pilot, 1)
        session, name = app.session, app.model_name
        await pilot.press("ctrl+o")
        await pilot.pause()
        app.screen.query_one("#model-spec", Input).value = "made-up-org/no-such-model-xyz"
        started = time.perf_counter()
        await pilot.press("enter")
        await settle(pilot)
        assert time.perf_counter() - started < 10
        line = status_text(app)
        assert app.query_one(StatusLine).has_class("-error") and "\n" not in line
        assert f"model not loaded ({name} kept)" in line and "no-such-model-xyz" in line
        assert app.session is session and app.model_name == name


async def test_escape_cancels_a_model_load_and_keeps_the_session(make_app, tiny_loaded):
    """A load that reports progress (as models.load does) stops at its next report after escape."""
    import threading

    from tokentui.engine.backends.local import LocalBackend

    reports = threading.Event()
    finished = threading.Event()

    def slow_load(request, progress):
        for i in range(500):  # about 10 s unless cancelled
            progress("loading the model", i / 500)
            reports.set()
            time.sleep(0.02)
        finished.set()
        return LocalBackend(tiny_loaded)

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await steps(pilot, 1)
        session, name = app.session, app.model_name
        app.sessions.open_backend = slow_load
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("enter")
        for _ in range(200):
            await pilot.pause(0.02)
            if reports.is_set():
                break
        assert app.sessions.loading
        await pilot.press("escape")
        await settle(pilot)
        assert not finished.is_set() and not app.sessions.loading
        assert f"model load cancelled: {name} kept" in status_text(app)
        assert app.session is session and app.model_name == name
        await pilot.press("n")  # the engine thread is free again
        await settle(pilot)
        assert len(app.session.current.steps) == 2


def test_recent_models_are_remembered_newest_first(tmp_path):
    for spec in ("a/b", "HuggingFaceTB/SmolLM2-135M", "a/b"):
        remember_model(tmp_path, spec)
    assert read_recent(tmp_path) == ["a/b", "HuggingFaceTB/SmolLM2-135M"]
    assert read_recent(None) == []


async def test_compare_view_aligns_two_branches_at_their_fork(make_app):
    app = make_app()
    async with app.run_test(size=(140, 44)) as pilot:
        await ready(pilot)
        await steps(pilot, 4)
        await branch_at(pilot, 1)
        await steps(pilot, 2)
        await pilot.press("C")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        await pilot.press("space", "down", "space")  # mark branch 0 (A) and branch 1 (B)
        await settle(pilot)
        cmp = screen.comparison
        assert cmp is not None and (cmp.a, cmp.b, cmp.fork_at) == (0, 1, 1)
        assert sum(f.picked_by_a for f in cmp.fork) == 1 and sum(f.picked_by_b for f in cmp.fork) == 1
        rows = screen.query_one("#compare-steps", DataTable)
        assert rows.row_count == 4 - 1
        # at the fork both read the same context (KL 0); after it their contexts differ
        assert cmp.steps[0].kl == 0.0 and cmp.steps[1].kl is not None and cmp.steps[1].kl > 0
        head = plain(screen.query_one("#compare-head", Static))
        assert "they part at position 1" in head
        detail = plain(screen.query_one("#compare-detail", Static))
        assert "p_base moved A → B" in detail and "A top-10" in detail and "B top-10" in detail
        assert "k: exact" in head and cmp.kl_method == "top-n"
        app.model_off = True  # the exact KL needs the model: refused on the dialog, nothing lost
        await pilot.press("k")
        await settle(pilot)
        assert screen.comparison is cmp and not screen.pending and app.screen is screen
        app.model_off = False
        await pilot.press("k")  # the full distributions, recomputed on the engine thread
        await settle(pilot)
        exact = screen.comparison
        assert exact is not None and exact.kl_method == "exact"
        assert abs(exact.steps[0].kl) < 1e-5 and exact.steps[1].kl > 0
        assert "KL exact" in plain(screen.query_one("#compare-head", Static))
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)


async def test_x_jumps_to_the_next_critical_token(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await steps(pilot, 8)
        stream = app.query_one(TokenStream)
        await pilot.press("end")
        await pilot.press("x")
        first = next_critical(stream.steps, -1)
        assert stream.cursor == first and f"critical token at {first}" in status_text(app)
        await pilot.press("x")
        assert stream.cursor == next_critical(stream.steps, first)
        # shown in the footer and the help
        assert any(key == "x" for key in app.active_bindings)  # bound (the help and palette list it)
        from tokentui.tui.screens.help import KEYS

        assert any(key == "x" and "critical" in what for key, what in KEYS)


async def test_explore_builds_a_tree_and_cancel_keeps_what_was_made(make_app):
    app = make_app(params=SamplingParams(seed=7, max_new_tokens=12))
    async with app.run_test(size=(140, 44)) as pilot:
        await ready(pilot)
        await steps(pilot, 6)
        await pilot.press("X")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ExploreScreen)
        for key, value in (("n", "2"), ("m", "2"), ("k", "3")):
            screen.query_one(f"#explore-{key}", Input).value = value
        await pilot.press("enter")
        await settle(pilot)
        tree = screen.query_one(Tree)
        assert len(tree.root.children) == 4 and len(app.session.branches) == 5
        label = str(tree.root.children[0].label)
        assert label.startswith("@") and "p=" in label

        # a slow model, so that escape arrives while it runs
        backend = app.session.backend
        real = backend.next_logits

        def slow(*args, **kwargs):
            time.sleep(0.05)
            return real(*args, **kwargs)

        backend.next_logits = slow
        screen.query_one("#explore-k", Input).value = "8"
        screen.query_one("#explore-n", Input).focus()
        await pilot.press("enter")
        for _ in range(200):
            await pilot.pause(0.02)
            if tree.root.children:
                break
        assert screen.running
        await pilot.press("escape")
        await settle(pilot)
        backend.next_logits = real
        made = len(tree.root.children)
        assert 1 <= made < 4 and "cancelled after" in plain(screen.query_one("#explore-status", Static))
        assert len(app.session.branches) == 5 + made and app.session.current_id == 0
        tree.focus()
        tree.cursor_line = 1
        await pilot.press("enter")  # switch to the first explored branch
        await settle(pilot)
        assert app.session.current_id == tree.root.children[0].data


async def test_palette_lists_the_session_commands(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for needed in ("Save session", "Model", "Reset", "Model off / on", "Chat: next user message",
                       "Compare branches", "Next critical token", "Explore", "Step"):
            assert needed in titles
