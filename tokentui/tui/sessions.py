"""Sessions in the app: save, autosave, open, reset, model off, chat turns, the model screen,
branch comparison, the critical-token jump and exploration (issue 8).

:class:`SessionsMixin` sits between ``TokenApp`` and ``App`` (``class TokenApp(SessionsMixin,
App)``): its actions, message handlers (Textual dispatches handlers of every class in the MRO)
and palette commands join the app's without growing ``app.py``. Model work goes through the
app's ``EngineWorker``; writing a session file runs on a plain thread (``asyncio.to_thread``)
that only reads the session under its lock, so an autosave never waits for a generation to end
and never touches the model.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import SystemCommand
from textual.screen import Screen

from tokentui.engine import chat, launch
from tokentui.engine.analysis.compare import compare_branches
from tokentui.engine.analysis.forks import criticality, explore, next_critical
from tokentui.engine.errors import TokentuiError
from tokentui.engine.launch import ModelConfig
from tokentui.engine.persist import session_file as store
from tokentui.tui.messages import ModelLoaded, ModelLoading
from tokentui.tui.screens.chat import ChatScreen
from tokentui.tui.screens.compare import CompareScreen
from tokentui.tui.screens.confirm import ConfirmScreen
from tokentui.tui.screens.explore import ExploreScreen
from tokentui.tui.screens.model import ModelScreen
from tokentui.tui.screens.save import SaveScreen

AUTOSAVE_S = 1.0
"""Autosave at most this often (and only after a change)."""
RECENT_FILE = "recent-models.txt"
RECENT_MAX = 8
MODEL_OFF = "model off: ctrl+l turns it on"


def fingerprint(session: Any) -> tuple[Any, ...]:
    """Cheap change detector read on the UI thread: counts and the newest step's identity."""
    branches = list(session.branches.values())
    current = session.branches.get(session.current_id)
    last = current.steps[-1] if current is not None and current.steps else None
    return (len(branches), session.next_branch_id, session.current_id, sum(len(b.steps) for b in branches),
            id(last), tuple(b.name for b in branches))


def write_session(session: Any, path: Path) -> Path:
    """Save with the conversation of the current branch (runs on a plain thread)."""
    with session.lock:
        messages = chat.conversation(session)
    return store.save(session, path, messages=messages)


def read_recent(folder: Path | None) -> list[str]:
    if folder is None:
        return []
    try:
        lines = (folder / RECENT_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [line for line in lines if line.strip()][:RECENT_MAX]


def remember_model(folder: Path | None, spec: str | None) -> None:
    """Put ``spec`` first in the recent-models list (best effort: a read-only disk is fine)."""
    if folder is None or not spec:
        return
    entries = [spec, *[r for r in read_recent(folder) if r != spec]][:RECENT_MAX]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        store.write_atomic(folder / RECENT_FILE, "\n".join(entries) + "\n")
    except OSError:
        pass


class SessionsMixin:
    """Session files, chat turns, models, comparison and exploration for ``TokenApp``."""

    data_dir: Path | None = None
    """Where autosaves and the recent-models list go; None writes nothing (tests, read-only use).
    ``run_app`` sets it to ``store.autosave_dir()``."""
    model_off: bool = False
    """The model does not run (ctrl+l): prompt and parameters can be edited on a slow machine."""
    save_path: Path | None = None
    """Where ctrl+s saves without asking (set by the first save or ``--session``)."""
    autosaver: store.Autosaver | None = None

    # ----- autosave -----------------------------------------------------------------------
    def on_mount(self: Any) -> None:
        self._io_lock = threading.Lock()
        self._autosave_key: tuple[int, int] | None = None
        self._autosave_seen: tuple[Any, ...] | None = None
        self._explore_stop: threading.Event | None = None
        if self.data_dir is not None:
            self.set_interval(AUTOSAVE_S, self.autosave_tick, name="autosave")

    def autosave_tick(self: Any) -> None:
        """Once a second: save the session if it changed (a new session gets a new file)."""
        session = self.session
        if session is None or self.data_dir is None:
            return
        key = (id(session), id(session.prompt_ids))
        seen = fingerprint(session)
        if key != self._autosave_key:
            self._autosave_key = key
            self._autosave_seen = seen
            self.autosaver = store.Autosaver(
                self.data_dir / store.autosave_path(session.prompt).name, interval=AUTOSAVE_S)
            if not any(b.steps for b in session.branches.values()):
                return
        elif seen == self._autosave_seen:
            return
        if self._io_lock.locked():
            return  # the previous save is still writing: the next tick retries
        self._autosave_seen = seen
        self.autosave_write(session, self.autosaver)

    @work(thread=True, exit_on_error=False, group="autosave")
    def autosave_write(self: Any, session: Any, saver: store.Autosaver) -> None:
        with self._io_lock, session.lock:
            saver.pending = True
            saver.flush(session, messages=chat.conversation(session))

    def on_unmount(self: Any) -> None:
        """Autosave on quit (the engine is already told to stop; wait briefly for the lock)."""
        session, saver = self.session, self.autosaver
        if session is None or saver is None or fingerprint(session) == self._autosave_seen:
            return
        if session.lock.acquire(timeout=5):
            try:
                saver.pending = True
                saver.flush(session, messages=chat.conversation(session))
            except (OSError, TokentuiError):
                pass
            finally:
                session.lock.release()

    # ----- save and open ---------------------------------------------------------------------
    def action_save_session(self: Any) -> None:
        if self.session is None:
            self.query_one("StatusLine").info("nothing to save yet: type a prompt first")
            return
        if self.save_path is not None:
            self.save_session_to(self.save_path)
            return
        slug = store.autosave_path(self.session.prompt).name.split("-", 2)[-1]

        def done(path: str | None) -> None:
            if path:
                self.save_session_to(Path(path).expanduser())

        self.push_screen(SaveScreen(str(Path.cwd() / slug)), done)

    @work(exit_on_error=False, group="save")
    async def save_session_to(self: Any, path: Path) -> None:
        session = self.session
        try:
            written = await asyncio.to_thread(self._locked_write, session, path)
        except (TokentuiError, OSError) as exc:
            self.show_error(f"not saved: {exc}")
            return
        self.save_path = written
        self.query_one("StatusLine").info(
            f"saved {len(session.branches)} branch(es) to {written} · ctrl+s saves there again")

    def _locked_write(self: Any, session: Any, path: Path) -> Path:
        with self._io_lock:
            return write_session(session, path)

    @work(exit_on_error=False, group="session-file")
    async def open_session_file(self: Any, path: str) -> None:
        """``--session FILE``: restore every branch as recorded (no model run); on any problem
        one line, the app stays as it is and the file is not touched."""
        from tokentui.tui.widgets.params import ParamsPanel
        from tokentui.tui.widgets.prompt import PromptPane

        try:
            sf = await asyncio.to_thread(store.load_session_file, path)
            session = await self.engine.call(launch.restore_session, sf, self.backend)
        except (TokentuiError, OSError) as exc:
            self.show_error(f"session not opened: {exc}")
            return
        warnings = store.model_warnings(sf, self.backend.loaded)
        self.session = session
        self.save_path = Path(path).expanduser()
        pane = self.query_one(PromptPane)
        pane.commit(sf.prompt)
        pane.revert()
        panel = self.query_one(ParamsPanel)
        panel.params = self.params = sf.params
        panel.fill(sf.params)
        await self.refresh_view()
        self.query_one("TokenStream").focus()
        line = f"opened {path}: {len(sf.branches)} branch(es), {sf.n_tokens} tokens"
        if warnings:
            line += f" · warning: {warnings[0]}"
        self.query_one("StatusLine").info(line)

    # ----- reset and model off -------------------------------------------------------------------
    def action_reset(self: Any) -> None:
        if self._busy():
            return
        session = self.session

        def done(yes: bool | None) -> None:
            if yes:
                self.run_engine(lambda: session.set_prompt(session.prompt, prompt_ids=session.prompt_ids),
                                "reset: the completion and every branch cleared, the prompt kept")

        view = self.view
        self.push_screen(ConfirmScreen(
            f"Reset? Clear the completion and all {view.branch_count if view else 1} branch(es) "
            f"({view.n_tokens_all if view else 0} tokens); the prompt stays.", yes="Reset", no="Keep"),
            done)

    def action_model_off(self: Any) -> None:
        """Toggle the model: off, nothing runs; on again, the distribution is computed once."""
        from tokentui.tui.widgets.alternatives import AlternativesTable
        from tokentui.tui.widgets.attention import AttentionPane
        from tokentui.tui.widgets.charts import DistributionChart
        from tokentui.tui.widgets.token_stream import TokenStream

        if self.generating:
            self.query_one("StatusLine").info("generating: escape stops first")
            return
        self.model_off = not self.model_off
        for widget in (self.query_one(AlternativesTable), self.query_one(DistributionChart),
                       self.query_one(AttentionPane)):
            widget.set_class(self.model_off, "-model-off")
        stream = self.query_one(TokenStream)
        if self.model_off:
            self.query_one(AlternativesTable).show(None, None, MODEL_OFF)
            self.query_one(DistributionChart).show(None, MODEL_OFF)
            self.query_one(AttentionPane).set_weights(None, MODEL_OFF)
            self.query_one("StatusLine").info(
                "model off: edit the prompt, system prompt and parameters; ctrl+l turns it on")
            return
        self.query_one("StatusLine").info("model on")
        self.on_token_stream_cursor_moved(TokenStream.CursorMoved(stream.cursor, stream.at_next))
        self.request_attention()

    # ----- chat ------------------------------------------------------------------------------------
    @work(exit_on_error=False, group="chat")
    async def action_chat(self: Any) -> None:
        if self._busy():
            return
        session = self.session
        if not chat.ended_turn(session):
            self.query_one("StatusLine").info(
                "m adds the next user message once the model has ended its turn (generate with g)")
            return
        messages = await self.engine.call(chat.conversation, session)

        def done(text: str | None) -> None:
            if text:
                self.send_chat(text)

        await self.push_screen(ChatScreen(messages), done)

    @work(exit_on_error=False, group="chat")
    async def send_chat(self: Any, text: str) -> None:
        """Append the user turn on the engine thread, then let the model answer."""
        session = self.session
        try:
            steps = await self.engine.call(chat.add_user_turn, session, text)
        except TokentuiError as exc:
            self.show_error(str(exc))
            return
        await self.refresh_view()
        self.query_one("StatusLine").info(f"user message added ({len(steps)} tokens): the model answers")
        self.run_generation()

    # ----- models ------------------------------------------------------------------------------------
    def on_model_loaded(self: Any, message: ModelLoaded) -> None:
        record = store.model_record(self.backend) if self.backend is not None else None
        remember_model(self.data_dir, record.spec if record else None)

    def action_model(self: Any) -> None:
        def done(request: ModelConfig | None) -> None:
            if request is not None:
                self.switch_model(request)

        self.push_screen(ModelScreen(self.model_name, read_recent(self.data_dir)), done)

    def load_model_backend(self: Any, request: ModelConfig) -> Any:
        """Load on the engine thread, reporting progress to the status line."""
        def progress(stage: str, fraction: float | None) -> None:
            self.post_message(ModelLoading(stage, fraction))

        return launch.open_backend(request, progress=progress)

    @work(exclusive=True, exit_on_error=False, group="model")
    async def switch_model(self: Any, request: ModelConfig) -> None:
        """Load another model; on failure keep the current model and session and say why."""
        from tokentui.tui.widgets.prompt import PromptPane

        if self.generating:
            self.query_one("StatusLine").info("generating: escape stops first")
            return
        try:
            backend = await self.engine.call(self.load_model_backend, request)
        except Exception as exc:  # any failure: one line, nothing replaced
            text = str(exc) if isinstance(exc, TokentuiError) else f"{type(exc).__name__}: {exc}"
            self.show_error(f"model not loaded ({self.model_name} kept): {text}".splitlines()[0])
            return
        self.autosave_tick()  # the old session's last changes go to its own file
        self.backend = backend
        loaded = backend.loaded
        self.post_message(ModelLoaded(loaded.name, loaded.device))
        spec = self.query_one(PromptPane).committed
        self.session, self.view, self.save_path = None, None, None
        if spec.text.strip() or (spec.system or "").strip():
            await self._open_session(spec)
        self.query_one("StatusLine").info(f"loaded {loaded.name} on {loaded.device} ({loaded.dtype}): "
                                          "a new session on the same prompt")

    # ----- comparing and finding forks -----------------------------------------------------------------
    @work(exit_on_error=False, group="engine")
    async def action_compare(self: Any) -> None:
        if self.session is None:
            self.query_one("StatusLine").info("no branches yet: type a prompt first")
            return
        infos = await self.engine.call(self.session.branch_info)
        if len(infos) < 2:
            self.query_one("StatusLine").info("one branch only: take an alternative (up/down, enter) first")
            return
        await self.push_screen(CompareScreen(infos))

    def on_compare_screen_pick(self: Any, message: CompareScreen.Pick) -> None:
        screen = self.screen
        if not isinstance(screen, CompareScreen):
            return
        if message.exact and self.model_off:
            screen.failed("the model is off (ctrl+l): the exact KL needs it")
            return
        self.run_comparison(screen, message.a, message.b, message.exact)

    @work(exclusive=True, exit_on_error=False, group="compare")
    async def run_comparison(self: Any, screen: CompareScreen, a: int, b: int, exact: bool) -> None:
        """Compare on the engine thread (the exact KL runs the model at every position); the
        result goes to the screen that asked, only while it is still open."""
        cancel = threading.Event()
        screen.cancel = cancel
        try:
            cmp = await self.engine.call(compare_branches, self.session, a, b, exact=exact, cancel=cancel)
        except Exception as exc:  # every failure becomes one line, on the dialog too
            text = str(exc) if isinstance(exc, TokentuiError) else f"{type(exc).__name__}: {exc}"
            if not cancel.is_set():
                self.show_error(text)
            if self.screen is screen:
                screen.failed(text)
            return
        if self.screen is screen:
            screen.show(cmp)

    def action_next_critical(self: Any) -> None:
        """Move the cursor to the next of the 10 most critical tokens (wrapping)."""
        from tokentui.tui.widgets.token_stream import TokenStream

        stream = self.query_one(TokenStream)
        if not stream.steps:
            self.query_one("StatusLine").info("no tokens yet: generate first (g)")
            return
        after = -1 if stream.at_next else stream.cursor
        index = next_critical(stream.steps, after)
        if index is None:
            return
        stream.cursor = index
        crit = criticality(stream.steps[index])
        self.query_one("StatusLine").info(
            f"critical token at {index}: the top two differ by {crit.margin:.1%} · "
            f"entropy {crit.entropy:.2f} bits · x: next")

    def action_explore(self: Any) -> None:
        if self._busy():
            return
        if not self.session.current.steps:
            self.query_one("StatusLine").info("explore needs tokens: generate first (g)")
            return
        self.push_screen(ExploreScreen(self.session.completion_text()))

    @work(exclusive=True, exit_on_error=False, group="explore")
    async def on_explore_screen_start(self: Any, message: ExploreScreen.Start) -> None:
        session, screen = self.session, self.screen
        stop = self._explore_stop = threading.Event()

        def progress(p: Any) -> None:  # on the engine thread
            self.call_from_thread(screen.add, p.branch, p.done, p.total)

        self.generating = True
        result, error = None, None
        try:
            result = await self.engine.call(explore, session, message.positions, message.alternatives,
                                            message.tokens, progress=progress, stop_event=stop)
        except Exception as exc:  # one line in the screen, never a crash
            error = str(exc) if isinstance(exc, TokentuiError) else f"{type(exc).__name__}: {exc}"
        finally:
            self.generating = False
        if isinstance(screen, ExploreScreen) and screen.is_attached:
            screen.finished(result, error)
        await self.refresh_view()

    def on_explore_screen_cancel(self: Any) -> None:
        if self._explore_stop is not None:
            self._explore_stop.set()

    def on_explore_screen_switch(self: Any, message: ExploreScreen.Switch) -> None:
        session = self.session
        self.run_engine(lambda: session.switch(message.branch_id),
                        f"switched to explored branch {message.branch_id}")

    # ----- command palette -------------------------------------------------------------------------------
    def get_system_commands(self: Any, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)  # type: ignore[misc]
        for title, help_text, action in (
            ("Save session", "save every branch to a file (ctrl+s)", self.action_save_session),
            ("Model", "load another model: hub id, folder or .gguf (ctrl+o)", self.action_model),
            ("Reset", "clear the completion and all branches, keep the prompt (ctrl+r)",
             self.action_reset),
            ("Model off / on", "stop running the model while editing (ctrl+l)", self.action_model_off),
            ("Chat: next user message", "after the model ends its turn (m)", self.action_chat),
            ("Compare branches", "side by side from their fork (C)", self.action_compare),
            ("Next critical token", "jump to where it could most easily have gone otherwise (x)",
             self.action_next_critical),
            ("Explore", "branch at the critical positions automatically (X)", self.action_explore),
        ):
            yield SystemCommand(title, help_text, action)
