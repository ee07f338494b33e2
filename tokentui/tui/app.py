"""TokenApp: composition, bindings and worker wiring; the panes live in ``widgets/``.

Every engine call goes through one :class:`EngineWorker` (a thread that owns the model);
Textual workers await it and post small messages, so the UI never waits on a forward
pass. Worker failures end in one handler that shows a single status line.

The App is composed, not mixed in: it holds ``autosave`` (:class:`AutosaveController`),
``sessions`` (:class:`SessionControl`: files, chat, models, compare, explore) and
``attribution_view`` (:class:`AttributionView`), calls them from its one ``on_mount`` /
``on_unmount`` / ``on_model_loaded`` and from one thin ``action_*`` per key (``keys.py``
declares every key once). Screens with their own work (Inside) own their workers. Widgets
get attributes and method calls from here and post messages up.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from textual import on, work
from textual.actions import parse as parse_action
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Checkbox, Footer, Header, Input, Select, TabbedContent, TabPane, TextArea
from textual.widgets._select import SelectOverlay
from textual.worker import Worker, WorkerState

from tokentui.engine import launch
from tokentui.engine.backends.base import Backend
from tokentui.engine.chat import turn_start
from tokentui.engine.engine_thread import EngineWorker
from tokentui.engine.errors import TokentuiError
from tokentui.engine.launch import RunConfig
from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec
from tokentui.engine.results import Distribution, StepResult, Token
from tokentui.engine.session import Session
from tokentui.tui import keys
from tokentui.tui.attribution_view import AttributionView
from tokentui.tui.autosave import AutosaveController
from tokentui.tui.failures import failure_line
from tokentui.tui.messages import ModelLoaded, ModelLoading, RunFinished, StepComputed
from tokentui.tui.screens.attribution_file import AttributionFileScreen
from tokentui.tui.screens.branches import BranchesScreen
from tokentui.tui.screens.compare import CompareScreen
from tokentui.tui.screens.confirm import ConfirmScreen
from tokentui.tui.screens.explain import ExplainScreen
from tokentui.tui.screens.explore import ExploreScreen
from tokentui.tui.screens.force import ForceScreen
from tokentui.tui.screens.help import HelpScreen
from tokentui.tui.screens.inside import InsideScreen
from tokentui.tui.screens.score import Scored, ScoreScreen, next_surprise
from tokentui.tui.sessions import SessionControl
from tokentui.tui.widgets.alternatives import ROWS, AlternativesTable
from tokentui.tui.widgets.attention import AttentionPane
from tokentui.tui.widgets.charts import Charts, DistributionChart, EntropyChart
from tokentui.tui.widgets.constraint_panel import ConstraintPanel, install, reasons, step_status
from tokentui.tui.widgets.params import ParamsPanel
from tokentui.tui.widgets.prompt import PromptPane
from tokentui.tui.widgets.status import StatusLine
from tokentui.tui.widgets.token_stream import TokenStream

BackendFactory = Callable[..., Backend]
"""Builds the backend on the engine thread; may accept ``progress=callback(stage, fraction)``."""

COMPACT_WIDTH, COMPACT_HEIGHT = 110, 30
"""Below either, the side panes (parameters, attention, chart) move behind ``v``."""
CHART_INTERVAL_S = 0.5
"""Charts redraw at most this often while generating."""
RUN_TABLE_TITLE = "Alternatives: shown when the run stops (← → to look now)"
"""The table's title during a run: it does not follow the newest token (see cursor moves)."""
REDRAW_INTERVAL_S = 0.5
"""During a run the panes redraw at most this often (2 Hz); the last step is always drawn.
A redraw is the token stream's changed lines and the status line (about 6 ms of the UI
thread, holding the GIL the engine thread needs between torch operations). On a quiet 2-core
machine (benchmarks/app_rate.py, 128 tokens, 3 rounds) 2 Hz costs 1.01-1.03x the CLI's time
per token, 5 Hz 1.08-1.10x."""
ATTENTION_DEBOUNCE_S = 0.3
SIDE_TABS = ("tab-params", "tab-attention", "tab-chart", "tab-constraint")


def fit_line(parts: list[str], width: int, sep: str = " · ") -> str:
    """Join ``parts``; when that is wider than ``width``, cut the longest part with ``…``
    (never a part cut without a mark)."""
    parts = list(parts)
    while len(line := sep.join(parts)) > width:
        longest = max(range(len(parts)), key=lambda i: len(parts[i]))
        over = len(line) - width
        keep = len(parts[longest]) - over - 1
        if keep < 4:
            if len(parts) == 1:
                return parts[0][: max(0, width - 1)] + "…" if width > 0 else ""
            parts.pop(longest)
            continue
        parts[longest] = parts[longest][:keep] + "…"
    return line


@dataclass
class View:
    """What the panes need from the session after a change (read on the engine thread)."""

    prompt_tokens: list[Token]
    steps: list[StepResult]
    branch_index: int
    branch_count: int
    n_tokens_all: int
    """Completion tokens over every branch (what quitting would lose)."""


class TokenApp(App[None]):
    """Watch a model generate one token at a time; branch, force, delete, inspect."""

    CSS_PATH = "app.tcss"
    TITLE = "tokentui"

    BINDINGS: ClassVar[list[BindingType]] = list(keys.bindings())
    """Built from ``keys.KEYS`` (the help screen, the palette and the README's tables too)."""

    data_dir: Path | None = None
    """Where autosaves and the recent-models list go; None writes nothing (tests, read-only use).
    ``run_app`` sets it to ``autosave_dir()``."""
    model_off: bool = False
    """The model does not run (ctrl+l): prompt and parameters can be edited on a slow machine."""

    # ``var``, not ``reactive``: an App reactive repaints the whole screen when it changes, and
    # tokens/s changes at every redraw of a run. The watchers redraw what depends on them.
    generating: var[bool] = var(False)
    """A generation run is streaming (toggles the ``-generating`` class)."""
    ready: var[bool] = var(False)
    """The backend is loaded."""
    tokens_per_s: var[float] = var(0.0)
    """Speed of the latest run (or step), shown in the header."""

    def __init__(self, backend_factory: BackendFactory, *, params: SamplingParams | None = None,
                 prompt: PromptSpec | str | None = None, session_file: str | None = None,
                 top_n: int = 20, clock: Callable[[], float] = time.perf_counter,
                 constraint: launch.ConstraintSource | None = None,
                 score_file: str | None = None) -> None:
        super().__init__()
        self.score_file = score_file
        """``--score FILE``: scored and loaded once the model is up (``screens/score.py``)."""
        self.backend_factory = backend_factory
        self.params = params or SamplingParams()
        spec = prompt if isinstance(prompt, PromptSpec) else PromptSpec(text=prompt or "")
        self.initial_prompt = spec
        self.session_file = session_file
        self.top_n = top_n
        self.initial_constraint = (constraint.kind, constraint.text) if constraint else None
        """``(kind, source)`` from the CLI's constraint flags: put in force once a session opens."""
        self.clock = clock
        """Seconds for tokens/s (injectable so snapshots do not depend on timing)."""
        self.engine = EngineWorker()
        self.backend: Backend | None = None
        self.session: Session | None = None
        self.model_name = "loading…"
        self.device = ""
        self.view: View | None = None
        self._last_chart = 0.0
        self._run_started = 0.0
        self._run_tokens = 0
        self._run_total = 0
        """Tokens the run in progress may add at most (the status line's denominator)."""
        self._pending: list[StepResult] = []
        """Steps of the run in progress not drawn yet (drawn together, at most 10 times a second)."""
        self._charts_stale = False
        """The chart tab is hidden: it redraws when it comes into view."""
        self._distribution: tuple[Distribution | None, str] = (None, "")
        """What the distribution chart shows (kept while the chart tab is hidden)."""
        self._asking = False
        self.autosave = AutosaveController(self)
        self.sessions = SessionControl(self)
        self.attribution_view = AttributionView(self)

    # ----- composition -------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Horizontal(id="body"):
            with Vertical(id="main"):
                yield PromptPane(self.initial_prompt, id="prompt")
                yield TokenStream(mono=self.no_color, id="stream")
                yield AlternativesTable(id="alternatives")
            with TabbedContent(id="side", initial="tab-params"):
                with TabPane("Params", id="tab-params"):
                    yield ParamsPanel(self.params, id="params")
                with TabPane("Attention", id="tab-attention"):
                    yield AttentionPane(id="attention")
                with TabPane("Chart", id="tab-chart"):
                    yield Charts(id="charts")
                with TabPane("Constraint", id="tab-constraint"):
                    yield ConstraintPanel(self.initial_constraint, id="constraint")
        yield StatusLine(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.update_header()
        self._fit(self.size.width, self.size.height)
        if self.initial_prompt.text.strip():
            self.query_one(TokenStream).focus()
        else:
            self.query_one("#prompt-text").focus()
        self.query_one(StatusLine).loading("starting", 0.0)
        self.autosave.start()
        self.load_backend()

    def on_resize(self, event: Any) -> None:
        self._fit(event.size.width, event.size.height)
        self.update_header()

    def _fit(self, width: int, height: int) -> None:
        """Small terminals: one column; the side panes come up with ``v``."""
        self.query_one("#body").set_class(width < COMPACT_WIDTH or height < COMPACT_HEIGHT, "-compact")

    # ----- engine helpers (run on the engine thread) ------------------------------------
    def _build_backend(self) -> Backend:
        def progress(stage: str, fraction: float | None) -> None:
            self.post_message(ModelLoading(stage, fraction))

        factory = self.backend_factory
        try:
            accepts = "progress" in inspect.signature(factory).parameters
        except (TypeError, ValueError):
            accepts = False
        return factory(progress=progress) if accepts else factory()

    def _snapshot(self) -> View:
        session = self.session
        assert session is not None
        ids = sorted(session.branches)
        return View(prompt_tokens=session.prompt_tokens, steps=list(session.current.steps),
                    branch_index=ids.index(session.current_id) + 1, branch_count=len(ids),
                    n_tokens_all=sum(len(b) for b in session.branches.values()))

    def _attention_layer(self, layer: int) -> tuple[np.ndarray, list[Token]]:
        """One layer's ``(heads, T, T)`` weights and the ``T`` tokens they were computed on."""
        session = self.session
        assert session is not None
        ids = session.context_ids()
        full = session.backend.attention_matrix(ids)
        return full[layer].numpy().copy(), [session.tokens(i) for i in ids]

    # ----- workers -------------------------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="load", name="loading the model")
    async def load_backend(self) -> None:
        backend = await self.engine.call(self._build_backend)
        self.backend = backend
        caps = backend.capabilities
        loaded = backend.loaded
        name = loaded.name if loaded is not None else caps.name
        self.post_message(ModelLoaded(name, loaded.device if loaded is not None else "remote"))
        spec = self.query_one(PromptPane).spec
        if spec.text.strip() or (spec.system or "").strip():
            await self.open_session(spec)
        else:
            self.query_one(StatusLine).info("model ready: type a prompt, then escape to apply it")
        if self.session_file:
            self.sessions.open_file(self.session_file)
        if self.score_file:
            self.push_screen(self._score_screen(self.score_file, autostart=True), self._scored)

    async def open_session(self, spec: PromptSpec) -> None:
        """A new session on ``spec`` with the current parameters (engine thread), then drawn."""
        params = self.query_one(ParamsPanel).params
        backend = self.backend
        assert backend is not None
        self.session = await self.engine.call(
            lambda: Session(backend, spec, params=params, top_n=self.top_n))
        self.query_one(PromptPane).commit(spec)
        await self.refresh_view()
        self.query_one(StatusLine).info(
            f"ready: {len(self.session.prompt_ids)} prompt tokens · n: step · g: generate · ?: help")
        panel = self.query_one(ConstraintPanel)
        if panel.wanted:  # from a CLI flag, or the switch turned on before the session opened
            self.apply_constraint(*panel.source, True)

    async def refresh_view(self, cursor: int | None = None) -> None:
        """Re-read the current branch and redraw every pane from it."""
        if self.session is None:
            return
        self.view = await self.engine.call(self._snapshot)
        self.query_one(TokenStream).set_tokens(self.view.prompt_tokens, self.view.steps, cursor)
        self._draw_entropy()
        self.update_header()
        self.request_attention()

    @work(exclusive=True, exit_on_error=False, group="generate", name="generating")
    async def run_generation(self) -> None:
        session = self.session
        assert session is not None
        self.generating = True
        self._run_started, self._run_tokens, self._pending = self.clock(), 0, []
        branch = session.current
        self._run_total = max(0, session.params.max_new_tokens - (len(branch) - turn_start(branch.steps)))
        self._say_generating()
        self.query_one(AlternativesTable).border_title = RUN_TABLE_TITLE
        last: StepResult | None = None
        count = 0
        # The steps arrive as fast as the engine makes them; the panes redraw at a bounded
        # rate (the UI thread's time and the GIL are the engine's too).
        redraw = self.set_interval(REDRAW_INTERVAL_S, self._draw_pending, name="redraw")
        try:
            async for step in self.engine.stream(lambda cancel: session.generate(stop_event=cancel)):
                last, count = step, count + 1
                self._run_tokens = count
                self._pending.append(step)
        finally:
            redraw.stop()
            seconds = self.clock() - self._run_started
            self._draw_pending()  # the last step is always drawn
            self.generating = False
            reason = last.finish_reason if last else None
            self.post_message(RunFinished(reason, count, seconds))

    @work(exit_on_error=False, group="engine", name="changing the session")
    async def run_engine(self, fn: Callable[[], Any], message: str = "",
                         cursor: Callable[[Any], int | None] | None = None) -> None:
        """Run one session change on the engine thread, then redraw."""
        result = await self.engine.call(fn)
        await self.refresh_view(cursor(result) if cursor else None)
        if message:
            self.query_one(StatusLine).info(message)

    @work(exclusive=True, exit_on_error=False, group="peek", name="computing the next token")
    async def show_next_distribution(self) -> None:
        session = self.session
        if session is None or self.model_off:
            return
        dist = await self.engine.call(session.peek)
        stream = self.query_one(TokenStream)
        if stream.at_next and not self.generating:
            self._show_distribution(dist, None, f"Next token (position {len(stream.steps)})")

    @work(exclusive=True, exit_on_error=False, group="peek", name="computing the prompt token")
    async def show_prompt_token(self, position: int) -> None:
        """A prompt token under the cursor: given, not chosen; the model's distribution there
        says how expected it was (one forward of the prefix, on the engine thread)."""
        session = self.session
        title = f"Prompt token at {position}"
        if session is None or self.model_off or self.generating or position < 1:
            reason = ": the first token, nothing before it" if position < 1 else ": given, not chosen"
            self._show_distribution(None, None, title + reason)
            return
        view = await self.engine.call(session.prompt_token, position)
        stream = self.query_one(TokenStream)
        if self.session is session and stream.in_prompt and stream.position == position:
            said = (f"the model gave it {view.p_base:.3f}, rank {view.rank}" if view.rank is not None
                    else "outside the server's top N")
            self._show_distribution(view.distribution, view.token.id,
                                    f"{title}: {said} · given, not chosen")

    @work(exclusive=True, exit_on_error=False, group="attention", name="computing attention")
    async def fetch_attention(self) -> None:
        pane = self.query_one(AttentionPane)
        if self.session is None:
            return
        pane.computing()
        weights, tokens = await self.engine.call(self._attention_layer, pane.layer)
        pane.set_weights(weights, tokens=tokens)
        self._focus_attention()

    # ----- messages ---------------------------------------------------------------------
    def on_model_loading(self, message: ModelLoading) -> None:
        self.query_one(StatusLine).loading(message.stage, message.fraction)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        self.model_name, self.device = message.name, message.device
        self.ready = True
        backend = self.backend
        assert backend is not None
        # A remote backend aborts its request in flight when the user stops a run.
        self.engine.cancel_hooks[:] = [backend.cancel]
        self.update_header()
        self.sessions.model_loaded()
        pane = self.query_one(AttentionPane)
        caps = backend.capabilities
        if not caps.attention or not caps.layers or not caps.heads:
            pane.unavailable(f"attention is not available: {caps.why_not('attention') or 'unknown shape'}")
        else:
            pane.configure(caps.layers, caps.heads)

    def on_step_computed(self, message: StepComputed) -> None:
        """One step (``n``) outside a run: draw it at once."""
        self._add_steps([message.step])
        self._draw_entropy()
        self.request_attention()
        if (line := step_status(message.step)) is not None:
            self.query_one(StatusLine).info(line)

    def _add_steps(self, steps: list[StepResult]) -> None:
        self.query_one(TokenStream).extend(steps)
        if self.view is not None:
            self.view.steps.extend(steps)
            self.view.n_tokens_all += len(steps)

    def _draw_pending(self) -> None:
        """Draw the steps a run made since the last redraw (one layout for all of them)."""
        steps, self._pending = self._pending, []
        if not steps:
            return
        self._add_steps(steps)
        now = self.clock()
        elapsed = now - self._run_started
        self.tokens_per_s = self._run_tokens / elapsed if elapsed > 0 else 0.0
        if now - self._last_chart > CHART_INTERVAL_S:
            self._last_chart = now
            self._draw_entropy()
        notes = [line for step in steps if (line := step_status(step)) is not None]
        self._say_generating(notes[-1] if notes else None)

    def _say_generating(self, note: str | None = None) -> None:
        """``generating 23/128 · 9.1 tok/s · esc stops`` (tokens/s over the run so far)."""
        line = f"generating {self._run_tokens}/{self._run_total}"
        if self._run_tokens:
            line += f" · {self.tokens_per_s:.1f} tok/s"
        line += " · esc stops"
        self.query_one(StatusLine).info(f"{line} · {note}" if note else line)

    def charts_visible(self) -> bool:
        return self._side_tab_visible("tab-chart")

    def _draw_entropy(self) -> None:
        """The entropy chart, or a note to draw it once the Chart tab is shown."""
        if self.charts_visible():
            self.query_one(EntropyChart).show(self.query_one(TokenStream).steps)
        else:
            self._charts_stale = True

    async def on_run_finished(self, message: RunFinished) -> None:
        if message.seconds > 0 and message.tokens:
            self.tokens_per_s = message.tokens / message.seconds
        await self.refresh_view(cursor=self.query_one(TokenStream).cursor)
        why = {"eos": "end of sequence", "stop": "stop sequence", "length": "max tokens reached",
               "constraint": "constraint finished",
               "context": "the model's context is full (delete or branch back to go on)"}.get(
            message.reason or "", "stopped")
        self.query_one(StatusLine).info(
            f"generated {message.tokens} tokens in {message.seconds:.1f} s "
            f"({self.tokens_per_s:.1f} tok/s): {why}")

    def on_token_stream_cursor_moved(self, message: TokenStream.CursorMoved) -> None:
        if message.followed and self.generating:
            # The newest token's table and charts are drawn when the run stops: a redraw during
            # a run stays the token stream and the status line (a table costs the engine ~30 ms).
            return
        stream = self.query_one(TokenStream)
        step = stream.current_step
        if step is not None:
            self._show_distribution(step.distribution, step.token.id,
                                    f"Alternatives at {message.index} (took {step.how})")
        elif stream.in_prompt:
            self.show_prompt_token(stream.position)
        elif self.session is not None and not self.generating:
            self.show_next_distribution()
        self._focus_attention()

    def _show_distribution(self, dist: Distribution | None, chosen: int | None, title: str) -> None:
        if self.model_off:  # the panes grey out and say so (sessions.py)
            dist, chosen, title = None, None, "model off: ctrl+l turns it on"
        self.query_one(AlternativesTable).show(dist, chosen, title)
        if self._side_tab_visible("tab-constraint") or not self.generating:
            self.explain_invalid(dist, self.query_one(TokenStream).cursor)
        self._distribution = (dist, title)
        if self.charts_visible():
            self.query_one(DistributionChart).show(dist, title)
        else:
            self._charts_stale = True

    def on_token_stream_alternative_move(self, message: TokenStream.AlternativeMove) -> None:
        self.query_one(AlternativesTable).move_selection(message.delta)

    def on_token_stream_choose(self) -> None:
        if self.query_one(TokenStream).in_prompt:
            self._say_prompt_is_given()
        elif (cand := self.query_one(AlternativesTable).selected) is not None:
            self.take_alternative(cand.id)

    def _say_prompt_is_given(self) -> None:
        self.query_one(StatusLine).info("prompt tokens are given, not chosen: edit the prompt "
                                        "(tab), or branch at a generated token")

    def on_alternatives_table_chosen(self, message: AlternativesTable.Chosen) -> None:
        self.take_alternative(message.token_id)

    def on_token_stream_delete_last(self) -> None:
        if self.busy():
            return
        session = self.session
        assert session is not None
        self.run_engine(session.delete_last, "deleted the last token")

    def on_params_panel_changed(self, message: ParamsPanel.Changed) -> None:
        self.params = message.params
        session = self.session
        if session is not None:
            self.run_engine(lambda: session.set_params(message.params),
                            "parameters applied", cursor=lambda _: self.query_one(TokenStream).cursor)

    # ----- constraint (the panel asks; the engine thread builds; the panel is told) ---------------
    def on_constraint_panel_requested(self, message: ConstraintPanel.Requested) -> None:
        self.apply_constraint(message.kind, message.text, message.enabled)

    def apply_constraint(self, kind: str, text: str, enabled: bool) -> None:
        panel = self.query_one(ConstraintPanel)
        if self.generating:
            panel.refused("generating: stop first (escape), then change the constraint")
            return
        if self.session is None:
            panel.pending()
            return
        self.run_worker(self._apply_constraint(kind, text, enabled), group="constraint",
                        name="applying the constraint", exit_on_error=False)

    async def _apply_constraint(self, kind: str, text: str, enabled: bool) -> None:
        session = self.session
        assert session is not None
        panel = self.query_one(ConstraintPanel)
        if not enabled:
            await self.engine.call(session.set_constraint, None)
            panel.turned_off()
            line, error = "constraint off: every token is allowed again", False
        else:
            panel.building()
            try:
                description, broken = await self.engine.call(install, session, kind, text)
            except Exception as exc:  # an invalid source, or a tokenizer llguidance cannot read
                why = failure_line(exc, "building the constraint")
                panel.failed(why)
                line, error = f"constraint not applied: {why}", True
            else:
                panel.turned_on(kind, text, description)
                line, error = broken or f"constraint on: {description}", bool(broken)
        await self.refresh_view(cursor=self.query_one(TokenStream).cursor)  # mask the next token anew
        if error:
            self.show_error(line)
        else:
            self.query_one(StatusLine).info(line)

    def explain_invalid(self, dist: Distribution | None, index: int) -> None:
        """Fill the alternatives table's ``why`` column for ``dist`` (shown at ``index``)."""
        table = self.query_one(AlternativesTable)
        session = self.session
        shown = dist.candidates[:ROWS] if dist else ()
        invalid = [c.id for c in shown if not c.valid]
        if session is None or (session.constraint is None and not invalid):
            table.show_reasons(None)
            return
        table.show_reasons({})
        if invalid and not self.generating:
            self.run_worker(self._explain_invalid(session, shown, index, invalid), group="constraint-why",
                            exclusive=True, name="explaining the invalid candidates", exit_on_error=False)

    async def _explain_invalid(self, session: Session, shown: tuple[Any, ...], index: int,
                               invalid: list[int]) -> None:
        try:
            why = await self.engine.call(reasons, session, index, invalid)
        except TokentuiError:
            return  # the branch breaks the constraint: the peek already said so
        table = self.query_one(AlternativesTable)
        if table.candidates == shown:
            table.show_reasons(why)

    def on_prompt_pane_edited(self, message: PromptPane.Edited) -> None:
        self.apply_prompt(message.spec)

    def on_prompt_editor_leave(self) -> None:
        self.query_one(TokenStream).focus()

    @on(TabbedContent.TabActivated)
    def _tab_changed(self) -> None:
        self._redraw_side()

    def _redraw_side(self) -> None:
        """A side tab came into view: draw what was skipped while it was hidden."""
        self.request_attention()
        if self._charts_stale and self.charts_visible():
            self._charts_stale = False
            self.query_one(EntropyChart).show(self.query_one(TokenStream).steps)
            dist, title = self._distribution
            self.query_one(DistributionChart).show(dist, title)

    def failure_prefix(self, group: str) -> str:
        """What a failure in ``group`` leaves as it was (said before the reason)."""
        return {"load": "the model did not load",
                "model": f"model not loaded ({self.model_name} kept)",
                "session-file": "session not opened",
                "save": "not saved"}.get(group, "")

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """The one place worker failures arrive: one status line in words, never a crash."""
        if event.state != WorkerState.ERROR:
            return
        worker = event.worker
        self.show_error(failure_line(worker.error, worker.name, self.failure_prefix(worker.group)))

    def show_error(self, text: str) -> None:
        self.query_one(StatusLine).error(text)

    # ----- branch screen ------------------------------------------------------------------
    async def on_branches_screen_act(self, message: BranchesScreen.Act) -> None:
        session = self.session
        if session is None:
            return
        ops = {
            "switch": lambda: session.switch(message.branch_id),
            "rename": lambda: session.rename(message.branch_id, message.name),
            "delete": lambda: session.delete_branch(message.branch_id),
        }
        try:
            await self.engine.call(ops[message.kind])
        except TokentuiError as exc:
            self.show_error(failure_line(exc))
            return
        screen = self.screen
        if message.kind == "switch" and isinstance(screen, BranchesScreen):
            screen.dismiss(None)
        elif isinstance(screen, BranchesScreen):
            screen.show(await self.engine.call(session.branch_info))
        await self.refresh_view()
        self.query_one(StatusLine).info(f"{message.kind}: branch {message.branch_id}")

    # ----- actions ----------------------------------------------------------------------
    def busy(self) -> bool:
        """Say why a session action cannot run now (no model, no prompt, generating)."""
        if not self.ready:
            self.query_one(StatusLine).info("the model is still loading…")
            return True
        if self.session is None:
            opening = any(w.group == "load" and w.is_running for w in self.workers)
            self.query_one(StatusLine).info(
                "preparing the prompt…" if opening else "type a prompt first (then escape)")
            return True
        if self.generating:
            self.query_one(StatusLine).info("generating: escape stops")
            return True
        if self.model_off:
            self.query_one(StatusLine).info("the model is off: ctrl+l turns it on")
            return True
        return False

    def action_step(self) -> None:
        if self.busy():
            return
        session = self.session
        assert session is not None
        self.step_once()

    @work(exit_on_error=False, group="engine", name="stepping")
    async def step_once(self) -> None:
        session = self.session
        assert session is not None
        step = await self.engine.call(session.step)
        self.post_message(StepComputed(step))  # tokens/s stay those of the last run

    def action_generate(self) -> None:
        if not self.busy():
            self.run_generation()

    def action_stop(self) -> None:
        """``escape``: leave an input (the focus goes to the token stream, so the next key acts
        as a key), stop a run, or clear an attribution."""
        focused = self.focused
        if focused is not None and not isinstance(focused, TokenStream | AlternativesTable) and \
                isinstance(focused, Input | TextArea | Select | SelectOverlay | Checkbox):
            self.query_one(TokenStream).focus()
            if not self.generating:
                self.query_one(StatusLine).info("left the input: keys act again (tab goes back)")
                return
        if self.generating:
            self.engine.cancel()
            self.query_one(StatusLine).info("stopping…")
        elif self.sessions.cancel_load():
            self.query_one(StatusLine).info("cancelling the model load…")
        elif self.attribution_view.clear():
            self.query_one(StatusLine).info("attribution cleared")

    def take_alternative(self, token_id: int) -> None:
        """Branch at the cursor with ``token_id`` (at the next token: force it)."""
        if self.busy():
            return
        session = self.session
        assert session is not None
        stream = self.query_one(TokenStream)
        index = stream.cursor
        if stream.in_prompt:
            self._say_prompt_is_given()
            return
        if stream.at_next:
            self.run_engine(lambda: session.force_token(token_id), "forced the selected token")
            return
        if stream.steps[index].token.id == token_id:
            self.query_one(StatusLine).info("that token is already taken here: pick another with up/down")
            return
        self.run_engine(lambda: session.branch_from(index, token_id),
                        f"new branch at position {index}", cursor=lambda _: index)

    def action_force(self) -> None:
        if self.busy():
            return
        session = self.session
        assert session is not None

        def done(text: str | None) -> None:
            if text:
                self.run_engine(lambda: session.force_text(text), f"forced {len(text)} characters",
                                cursor=lambda steps: steps[-1].index if steps else None)

        self.push_screen(ForceScreen(), done)

    @work(exit_on_error=False, group="engine", name="listing the branches")
    async def action_branches(self) -> None:
        if self.session is None:
            self.query_one(StatusLine).info("no branches yet: type a prompt first")
            return
        infos = await self.engine.call(self.session.branch_info)
        await self.push_screen(BranchesScreen(infos))

    def action_lockstep(self) -> None:
        """Add a second model: the current branch through A and B in lockstep (its own screen)."""
        if self.busy() or self.session is None:
            return
        from tokentui.tui.screens.lockstep import LockstepScreen

        self.push_screen(LockstepScreen(self.session, label_a=self.model_name))

    def action_colour_mode(self) -> None:
        mode = self.query_one(TokenStream).cycle_colour_mode()
        self.query_one(StatusLine).info(f"colours: {mode}")

    def action_layer(self, delta: int) -> None:
        pane = self.query_one(AttentionPane)
        pane.shift_layer(delta)
        pane.stale = True
        self.request_attention()

    def action_head(self, delta: int) -> None:
        self.query_one(AttentionPane).shift_head(delta)

    def action_toggle_side(self) -> None:
        self.query_one("#body").toggle_class("-show-side")
        self._redraw_side()

    def action_next_tab(self) -> None:
        """Cycle the side tabs (Params, Attention, Chart, Constraint) from the keyboard; on a
        small terminal this also brings the side panes into view."""
        tabs = self.query_one("#side", TabbedContent)
        current = SIDE_TABS.index(tabs.active) if tabs.active in SIDE_TABS else -1
        tabs.active = SIDE_TABS[(current + 1) % len(SIDE_TABS)]
        body = self.query_one("#body")
        if body.has_class("-compact") and not body.has_class("-show-side"):
            body.add_class("-show-side")
        self._redraw_side()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_inside(self) -> None:
        """Open the Inside screen at the token under the cursor (the last token at the next slot)."""
        if self.busy():
            return
        stream = self.query_one(TokenStream)
        n_prompt = len(stream.prompt_tokens)
        tokens = [*stream.prompt_tokens, *(s.token for s in stream.steps)]

        def back(index: int | None) -> None:
            if index is not None:
                stream.cursor = index - n_prompt

        assert self.session is not None
        self.push_screen(InsideScreen(min(stream.position, len(tokens) - 1), tokens,
                                      n_prompt=n_prompt, greedy=self.params.is_greedy,
                                      session=self.session, engine=self.engine), back)

    def action_open_attribution_file(self) -> None:
        """Palette: a saved attribution JSON (from ``J`` or ``attribute --json``) as the heatmap."""
        self.push_screen(AttributionFileScreen())

    def action_score(self) -> None:
        """Score a text file (score mode), or list the surprises of the one loaded."""
        if not self.ready or self.generating:
            self.busy()  # says why in the status line
            return
        steps = self.view.steps if self.view is not None else []
        self.push_screen(self._score_screen(self.score_file or "", steps=steps), self._scored)

    def _score_screen(self, path: str, **kwargs: Any) -> ScoreScreen:
        return ScoreScreen(path, backend=self.backend, engine=self.engine, session=self.session,
                           params=self.query_one(ParamsPanel).params, top_n=self.top_n, **kwargs)

    async def _scored(self, result: int | Scored | None) -> None:
        """The score screen closed: install a scored session, or move to a chosen surprise."""
        if not isinstance(result, Scored):
            self._move_cursor(result)
            return
        first = self.session is None
        self.session = result.session
        pane = self.query_one(PromptPane)
        pane.commit(result.session.prompt)
        pane.revert()  # the editor shows the context now in use (nothing left to apply)
        self.query_one(TokenStream).colour_mode = "rank"
        await self.refresh_view(cursor=result.cursor if result.cursor is not None else 0)
        self.query_one(StatusLine).info(result.line)
        panel = self.query_one(ConstraintPanel)
        if first and panel.wanted:
            self.apply_constraint(*panel.source, True)
        self._move_cursor(result.cursor)

    def action_next_surprise(self) -> None:
        stream = self.query_one(TokenStream)
        found = next_surprise(stream.steps, stream.cursor)
        if found is None:
            self.query_one(StatusLine).info("no scored text: s scores a file")
            return
        stream.cursor, k, n = found
        self.query_one(StatusLine).info(f"surprise {k} of {n}: p={stream.steps[stream.cursor].p_base:.3g}")

    def _move_cursor(self, index: int | None) -> None:
        if index is not None:
            stream = self.query_one(TokenStream)
            stream.cursor = index
            stream.focus()

    def action_explain(self) -> None:
        """F1: explain the focused pane (or the screen, when nothing in it has the focus);
        on an explanation, close it."""
        if isinstance(self.screen, ExplainScreen):
            self.screen.dismiss(None)
            return
        self.push_screen(ExplainScreen.for_widget(self.focused or self.screen))

    def action_quit_app(self) -> None:
        lost = self.view.n_tokens_all if self.view else 0
        if lost == 0:
            self.exit()
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.exit()

        fate = ("will be autosaved (reopen with tokentui --session, list with tokentui sessions)"
                if self.data_dir else "are not saved")
        self.push_screen(ConfirmScreen(
            f"Quit? {self.view.branch_count if self.view else 0} branch(es) with {lost} generated "
            f"tokens {fate}.", yes="Quit", no="Stay"), done)

    # ----- prompt ------------------------------------------------------------------------
    def apply_prompt(self, spec: PromptSpec) -> None:
        """Use a new prompt; ask first when it would discard generated tokens."""
        if self._asking or not self.ready:
            return
        if self.session is None:
            self.open_session_worker(spec)
            return
        lost = self.view.n_tokens_all if self.view else 0
        if lost == 0:
            self.run_engine(lambda: self._set_prompt(spec), "prompt applied")
            return

        def done(yes: bool | None) -> None:
            self._asking = False
            if yes:
                self.run_engine(lambda: self._set_prompt(spec), "prompt applied: branches discarded")
            else:
                self.query_one(PromptPane).border_subtitle = "edited · not applied"
                self.query_one(StatusLine).info("prompt kept as typed but not applied; branches kept")

        self._asking = True
        self.push_screen(ConfirmScreen(
            f"The prompt changed. Apply it and discard {self.view.branch_count if self.view else 0} "
            f"branch(es) with {lost} generated tokens?", yes="Discard", no="Keep"), done)

    def _set_prompt(self, spec: PromptSpec) -> None:
        assert self.session is not None
        self.session.set_prompt(spec)
        self.call_from_thread(self.query_one(PromptPane).commit, spec)

    @work(exclusive=True, exit_on_error=False, group="load", name="opening the session")
    async def open_session_worker(self, spec: PromptSpec) -> None:
        await self.open_session(spec)

    # ----- header, attention -----------------------------------------------------------
    def update_header(self) -> None:
        parts = []
        if self.view is not None:
            parts.append(f"branch {self.view.branch_index}/{self.view.branch_count}")
        if self.tokens_per_s > 0 and not self.generating:  # during a run the status line counts
            parts.append(f"{self.tokens_per_s:.1f} tok/s")
        parts.append(self.model_name)
        if self.device:
            parts.append(self.device)
        if self.session is not None and (constraint := self.session.constraint) is not None:
            parts.append(constraint.description)
        self.sub_title = fit_line(parts, self.size.width - len(self.title) - 22)  # icon, clock space, " — "

    def watch_tokens_per_s(self) -> None:
        # A header change lays out the whole screen: not twice a second during a run.
        if not self.generating:
            self.update_header()

    def watch_generating(self, generating: bool) -> None:
        self.query_one(TokenStream).set_class(generating, "-generating")
        self.update_header()

    def attention_visible(self) -> bool:
        return self._side_tab_visible("tab-attention")

    def _side_tab_visible(self, tab: str) -> bool:
        body = self.query_one("#body")
        side_shown = not body.has_class("-compact") or body.has_class("-show-side")
        return side_shown and self.query_one(TabbedContent).active == tab

    def request_attention(self) -> None:
        """Mark the weights stale; fetch them (debounced) only if the pane is on screen."""
        pane = self.query_one(AttentionPane)
        if pane.has_class("-unavailable") or self.session is None or self.model_off:
            return
        pane.stale = True
        if self.attention_visible() and not self.generating:
            self.set_timer(ATTENTION_DEBOUNCE_S, self._fetch_if_stale, name="attention")

    def _fetch_if_stale(self) -> None:
        panes = self.query(AttentionPane)  # the timer can fire while the app is closing
        if panes and panes.first().stale and self.attention_visible() and not self.generating:
            self.fetch_attention()

    def _focus_attention(self) -> None:
        stream = self.query_one(TokenStream)
        last = len(stream.prompt_tokens) + len(stream.steps) - 1
        self.query_one(AttentionPane).focus_row = max(0, min(stream.position, last))

    # ----- the features the App holds: one thin action per key (keys.py) --------------------
    def action_save_session(self) -> None:
        self.sessions.save()

    def action_model(self) -> None:
        self.sessions.choose_model()

    def action_reset(self) -> None:
        self.sessions.reset()

    def action_model_off(self) -> None:
        self.sessions.toggle_model_off()

    def action_chat(self) -> None:
        self.sessions.chat()

    def action_compare(self) -> None:
        self.sessions.compare()

    def action_next_critical(self) -> None:
        self.sessions.next_critical()

    def action_explore(self) -> None:
        self.sessions.explore()

    def action_attribute(self) -> None:
        self.attribution_view.attribute()

    def action_attribution_method(self) -> None:
        self.attribution_view.next_method()

    def action_attribution_options(self) -> None:
        self.attribution_view.options()

    def action_save_attribution(self) -> None:
        self.attribution_view.save()

    def action_export_graph(self) -> None:
        self.attribution_view.export_graph()

    def action_choose(self) -> None:
        """enter in the token stream (the palette's way to it)."""
        self.on_token_stream_choose()

    def action_delete_last(self) -> None:
        """backspace in the token stream (the palette's way to it)."""
        self.on_token_stream_delete_last()

    def on_compare_screen_pick(self, message: CompareScreen.Pick) -> None:
        self.sessions.compare_pick(message)

    def on_explore_screen_start(self, message: ExploreScreen.Start) -> None:
        self.sessions.explore_start(message)

    def on_explore_screen_cancel(self) -> None:
        self.sessions.explore_cancel()

    def on_explore_screen_switch(self, message: ExploreScreen.Switch) -> None:
        self.sessions.explore_switch(message)

    # ----- command palette ---------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_text, action in keys.palette():
            _, name, params = parse_action(action)
            yield SystemCommand(title, help_text, partial(getattr(self, f"action_{name}"), *params))

    async def action_quit(self) -> None:
        self.action_quit_app()

    def on_unmount(self) -> None:
        self.engine.shutdown()
        self.autosave.flush()  # the last changes (the engine is told to stop first)


def build_app(config: RunConfig, session_file: str | None = None,
              score_file: str | None = None) -> TokenApp:
    """The app a RunConfig describes (the CLI builds one from its flags; tests build it here
    too, without a terminal). With ``--session FILE`` and no model named, the file's model."""
    from tokentui.engine.persist.session_file import SessionFileError, load_session_file

    model = config.model
    if session_file:
        with contextlib.suppress(SessionFileError):  # the app says so in one line once it is up
            model = launch.model_for_file(load_session_file(session_file), model, required=False)

    def factory(progress: Callable[[str, float | None], None] | None = None) -> Backend:
        return launch.open_backend(model, progress=progress)

    return TokenApp(factory, params=config.params, prompt=config.prompt or PromptSpec(""),
                    session_file=session_file, constraint=config.constraint, score_file=score_file)


def leave_ui_a_core() -> None:
    """Torch's intra-op threads: one fewer than the cores (at least one), so the UI thread
    keeps a core while the model runs; ``TOKENTUI_TORCH_THREADS`` overrides the count."""
    import os

    import torch

    wanted = os.environ.get("TOKENTUI_TORCH_THREADS", "")
    threads = int(wanted) if wanted.isdigit() and int(wanted) > 0 else max(1, (os.cpu_count() or 1) - 1)
    torch.set_num_threads(threads)


def run_app(config: RunConfig, session_file: str | None = None, score_file: str | None = None) -> None:
    """Build the app from a RunConfig and run it (the model loads inside the app)."""
    from tokentui.engine.persist.session_file import autosave_dir

    app = build_app(config, session_file, score_file)
    if config.model.backend == "local":
        build = app.backend_factory

        def factory(progress: Callable[[str, float | None], None] | None = None) -> Any:
            leave_ui_a_core()  # on the engine thread, before the model loads
            return build(progress=progress)

        app.backend_factory = factory
    app.data_dir = autosave_dir()  # autosaves and recent models (tests leave it None)
    app.run()
