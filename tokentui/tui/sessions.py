"""Sessions in the app: save, open, reset, model off, chat turns, the model screen, branch
comparison, the critical-token jump and exploration: :class:`SessionControl`, an object the App
holds (``app.sessions``).

The App keeps one thin ``action_*`` per key (keys.py) and one handler per message; each calls a
method here. Work runs as Textual workers started with ``app.run_worker`` (named by what they do,
so the App's one ``Worker.StateChanged`` handler can say what failed); model work goes through the
app's ``EngineWorker``; writing a session file runs on a plain thread that only reads the session
under its lock (``app.autosave``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tokentui.engine import chat, heap, launch
from tokentui.engine.analysis.compare import compare_branches
from tokentui.engine.analysis.forks import ExploreProgress, criticality, explore, next_critical
from tokentui.engine.backends.base import Backend
from tokentui.engine.launch import ModelConfig
from tokentui.engine.persist import session_file as store
from tokentui.tui.autosave import read_recent, remember_model
from tokentui.tui.failures import failure_line
from tokentui.tui.messages import ModelLoaded, ModelLoading
from tokentui.tui.screens.chat import ChatScreen
from tokentui.tui.screens.compare import CompareScreen
from tokentui.tui.screens.confirm import ConfirmScreen
from tokentui.tui.screens.explore import ExploreScreen
from tokentui.tui.screens.model import ModelScreen
from tokentui.tui.screens.save import SaveScreen
from tokentui.tui.widgets.alternatives import AlternativesTable
from tokentui.tui.widgets.attention import AttentionPane
from tokentui.tui.widgets.charts import DistributionChart
from tokentui.tui.widgets.params import ParamsPanel
from tokentui.tui.widgets.prompt import PromptPane
from tokentui.tui.widgets.status import StatusLine
from tokentui.tui.widgets.token_stream import TokenStream

if TYPE_CHECKING:
    from tokentui.tui.app import TokenApp

__all__ = ["MODEL_OFF", "LoadCancelled", "SessionControl", "read_recent", "remember_model"]

MODEL_OFF = "model off: ctrl+l turns it on"

BackendOpener = Callable[[ModelConfig, Callable[[str, float | None], None]], Backend]
"""Opens the model screen's choice on the engine thread, reporting progress."""


class LoadCancelled(BaseException):
    """Raised from the load's progress callback once escape cancelled it (a BaseException, as
    asyncio's CancelledError is: the loader's ``except Exception`` wrappers let it through)."""


def open_backend(config: ModelConfig, progress: Callable[[str, float | None], None]) -> Backend:
    return launch.open_backend(config, progress=progress)


class SessionControl:
    """Session files, chat turns, models, comparison and exploration for ``TokenApp``."""

    def __init__(self, app: TokenApp) -> None:
        self.app = app
        self.open_backend: BackendOpener = open_backend
        """How the model screen's choice is opened (the CLI's loader; tests may swap it)."""
        self.save_path: Path | None = None
        """Where ctrl+s saves without asking (set by the first save or ``--session``)."""
        self.explore_stop: threading.Event | None = None
        self.load_cancel: threading.Event | None = None
        """Set while a model-screen load runs; escape sets it."""

    def _status(self, text: str) -> None:
        self.app.query_one(StatusLine).info(text)

    # ----- save and open ---------------------------------------------------------------------
    def save(self) -> None:
        session = self.app.session
        if session is None:
            self._status("nothing to save yet: type a prompt first")
            return
        if self.save_path is not None:
            self.save_to(self.save_path)
            return
        slug = store.autosave_path(session.prompt).name.split("-", 2)[-1]

        def done(path: str | None) -> None:
            if path:
                self.save_to(Path(path).expanduser())

        self.app.push_screen(SaveScreen(str(Path.cwd() / slug)), done)

    def save_to(self, path: Path) -> None:
        self.app.run_worker(self._save_to(path), group="save", name="saving the session",
                            exit_on_error=False)

    async def _save_to(self, path: Path) -> None:
        session = self.app.session
        assert session is not None
        written = await asyncio.to_thread(self.app.autosave.write, session, path)
        self.save_path = written
        self._status(f"saved {len(session.branches)} branch(es) to {written} · ctrl+s saves there again")

    def open_file(self, path: str) -> None:
        """``--session FILE``: restore every branch as recorded (no model run); on any problem
        one line, the app stays as it is and the file is not touched."""
        self.app.run_worker(self._open_file(path), group="session-file", name="opening the session file",
                            exit_on_error=False)

    async def _open_file(self, path: str) -> None:
        app = self.app
        sf = await asyncio.to_thread(store.load_session_file, path)
        session = await app.engine.call(launch.restore_session, sf, app.backend)
        warnings = store.model_warnings(sf, app.backend.loaded if app.backend else None)
        app.session = session
        self.save_path = Path(path).expanduser()
        pane = app.query_one(PromptPane)
        pane.commit(sf.prompt)
        pane.revert()
        panel = app.query_one(ParamsPanel)
        panel.params = app.params = sf.params
        panel.fill(sf.params)
        await app.refresh_view()
        app.query_one(TokenStream).focus()
        line = f"opened {path}: {len(sf.branches)} branch(es), {sf.n_tokens} tokens"
        if warnings:
            line += f" · warning: {warnings[0]}"
        self._status(line)

    # ----- reset and model off -------------------------------------------------------------------
    def reset(self) -> None:
        app = self.app
        if app.busy():
            return
        session = app.session
        assert session is not None

        def done(yes: bool | None) -> None:
            if yes:
                app.run_engine(lambda: session.set_prompt(session.prompt, prompt_ids=session.prompt_ids),
                               "reset: the completion and every branch cleared, the prompt kept")

        view = app.view
        app.push_screen(ConfirmScreen(
            f"Reset? Clear the completion and all {view.branch_count if view else 1} branch(es) "
            f"({view.n_tokens_all if view else 0} tokens); the prompt stays.", yes="Reset", no="Keep"),
            done)

    def toggle_model_off(self) -> None:
        """Off, nothing runs; on again, the distribution is computed once."""
        app = self.app
        if app.generating:
            self._status("generating: escape stops first")
            return
        app.model_off = not app.model_off
        table, chart, attention = (app.query_one(AlternativesTable), app.query_one(DistributionChart),
                                   app.query_one(AttentionPane))
        for widget in (table, chart, attention):
            widget.set_class(app.model_off, "-model-off")
        stream = app.query_one(TokenStream)
        if app.model_off:
            table.show(None, None, MODEL_OFF)
            chart.show(None, MODEL_OFF)
            attention.set_weights(None, MODEL_OFF)
            self._status("model off: edit the prompt, system prompt and parameters; ctrl+l turns it on")
            return
        self._status("model on")
        app.on_token_stream_cursor_moved(TokenStream.CursorMoved(stream.cursor, stream.at_next))
        app.request_attention()

    # ----- chat ------------------------------------------------------------------------------------
    def chat(self) -> None:
        app = self.app
        if app.busy():
            return
        session = app.session
        assert session is not None
        if not chat.ended_turn(session):
            self._status("m adds the next user message once the model has ended its turn (generate with g)")
            return
        app.run_worker(self._chat(), group="chat", name="reading the conversation", exit_on_error=False)

    async def _chat(self) -> None:
        app = self.app
        messages = await app.engine.call(chat.conversation, app.session)

        def done(text: str | None) -> None:
            if text:
                self.send_chat(text)

        await app.push_screen(ChatScreen(messages), done)

    def send_chat(self, text: str) -> None:
        self.app.run_worker(self._send_chat(text), group="chat", name="adding the user message",
                            exit_on_error=False)

    async def _send_chat(self, text: str) -> None:
        """Append the user turn on the engine thread, then let the model answer."""
        app = self.app
        steps = await app.engine.call(chat.add_user_turn, app.session, text)
        await app.refresh_view()
        self._status(f"user message added ({len(steps)} tokens): the model answers")
        app.run_generation()

    # ----- models ------------------------------------------------------------------------------------
    def model_loaded(self) -> None:
        """From the App's ``on_model_loaded``: put the model first in the recent list."""
        backend = self.app.backend
        record = store.model_record(backend) if backend is not None else None
        remember_model(self.app.data_dir, record.spec if record else None)

    def choose_model(self) -> None:
        app = self.app

        def done(request: ModelConfig | None) -> None:
            if request is not None:
                self.switch_model(request)

        app.push_screen(ModelScreen(app.model_name, read_recent(app.data_dir)), done)

    @property
    def loading(self) -> bool:
        return self.load_cancel is not None

    def cancel_load(self) -> bool:
        """escape during a model-screen load: stop at its next progress report; False when none."""
        if self.load_cancel is None:
            return False
        self.load_cancel.set()
        return True

    def switch_model(self, request: ModelConfig) -> None:
        app = self.app
        if app.generating:
            self._status("generating: escape stops first")
            return
        self.app.run_worker(self._switch_model(request), group="model", exclusive=True,
                            name="loading the model", exit_on_error=False)

    async def _switch_model(self, request: ModelConfig) -> None:
        """Load another model; on failure keep the current model and session and say why."""
        app = self.app
        cancel = self.load_cancel = threading.Event()

        def progress(stage: str, fraction: float | None) -> None:  # on the engine thread
            if cancel.is_set():
                raise LoadCancelled
            app.post_message(ModelLoading(stage, fraction))

        try:
            backend = await app.engine.call(self.open_backend, request, progress)
        except LoadCancelled:
            self._status(f"model load cancelled: {app.model_name} kept")
            return
        finally:
            self.load_cancel = None
        if cancel.is_set():  # escape came after the last progress report: drop the new model
            self._status(f"model load cancelled: {app.model_name} kept")
            return
        app.autosave.tick()  # the old session's last changes go to its own file
        app.backend = backend
        loaded = backend.loaded
        caps = backend.capabilities
        app.post_message(ModelLoaded(loaded.name if loaded else caps.name,
                                     loaded.device if loaded else "remote"))
        spec = app.query_one(PromptPane).committed
        app.session, app.view, self.save_path = None, None, None
        if spec.text.strip() or (spec.system or "").strip():
            await app.open_session(spec)
        await app.engine.call(heap.settle)  # the old model's cycles go; the new one is frozen
        where = f"{loaded.name} on {loaded.device} ({loaded.dtype})" if loaded else caps.name
        self._status(f"loaded {where}: a new session on the same prompt")

    # ----- comparing and finding forks -----------------------------------------------------------------
    def compare(self) -> None:
        if self.app.session is None:
            self._status("no branches yet: type a prompt first")
            return
        self.app.run_worker(self._compare(), group="engine", name="listing the branches",
                            exit_on_error=False)

    async def _compare(self) -> None:
        app = self.app
        assert app.session is not None
        infos = await app.engine.call(app.session.branch_info)
        if len(infos) < 2:
            self._status("one branch only: take an alternative (up/down, enter) first")
            return
        await app.push_screen(CompareScreen(infos))

    def compare_pick(self, message: CompareScreen.Pick) -> None:
        screen = self.app.screen
        if not isinstance(screen, CompareScreen):
            return
        if message.exact and self.app.model_off:
            screen.failed("the model is off (ctrl+l): the exact KL needs it")
            return
        self.app.run_worker(self._compare_run(screen, message.a, message.b, message.exact),
                            group="compare", exclusive=True, name="comparing the branches",
                            exit_on_error=False)

    async def _compare_run(self, screen: CompareScreen, a: int, b: int, exact: bool) -> None:
        """Compare on the engine thread (the exact KL runs the model at every position); the
        result goes to the screen that asked, only while it is still open. A failure is also
        said on the dialog (in the same words the App's failure handler uses)."""
        app = self.app
        cancel = threading.Event()
        screen.cancel = cancel
        try:
            cmp = await app.engine.call(compare_branches, app.session, a, b, exact=exact, cancel=cancel)
        except Exception as exc:
            if app.screen is screen:
                screen.failed(failure_line(exc, "comparing the branches"))
            if cancel.is_set():
                return
            raise
        if app.screen is screen:
            screen.show(cmp)

    def next_critical(self) -> None:
        """Move the cursor to the next of the 10 most critical tokens (wrapping)."""
        stream = self.app.query_one(TokenStream)
        if not stream.steps:
            self._status("no tokens yet: generate first (g)")
            return
        after = -1 if stream.at_next else stream.cursor
        index = next_critical(stream.steps, after)
        if index is None:
            return
        stream.cursor = index
        crit = criticality(stream.steps[index])
        self._status(f"critical token at {index}: the top two differ by {crit.margin:.1%} · "
                     f"entropy {crit.entropy:.2f} bits · x: next")

    def explore(self) -> None:
        app = self.app
        if app.busy():
            return
        assert app.session is not None
        if not app.session.current.steps:
            self._status("explore needs tokens: generate first (g)")
            return
        app.push_screen(ExploreScreen(app.session.completion_text()))

    def explore_start(self, message: ExploreScreen.Start) -> None:
        self.app.run_worker(self._explore(message), group="explore", exclusive=True,
                            name="exploring", exit_on_error=False)

    async def _explore(self, message: ExploreScreen.Start) -> None:
        app = self.app
        session, screen = app.session, app.screen
        stop = self.explore_stop = threading.Event()

        def progress(p: ExploreProgress) -> None:  # on the engine thread
            if isinstance(screen, ExploreScreen):
                app.call_from_thread(screen.add, p.branch, p.done, p.total)

        app.generating = True
        result, error = None, None
        try:
            result = await app.engine.call(explore, session, message.positions, message.alternatives,
                                           message.tokens, progress=progress, stop_event=stop)
        except Exception as exc:  # said in the screen, in the failure handler's words
            error = failure_line(exc, "exploring")
        finally:
            app.generating = False
        if isinstance(screen, ExploreScreen) and screen.is_attached:
            screen.finished(result, error)
        await app.refresh_view()

    def explore_cancel(self) -> None:
        if self.explore_stop is not None:
            self.explore_stop.set()

    def explore_switch(self, message: ExploreScreen.Switch) -> None:
        session = self.app.session
        assert session is not None
        self.app.run_engine(lambda: session.switch(message.branch_id),
                            f"switched to explored branch {message.branch_id}")
