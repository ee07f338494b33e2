"""The Inside screen (``i``): what the model did with the token under the cursor.

One pane per part of :func:`tokentui.engine.analysis.inside.inspect`: the token's pieces and
bytes, its embedding, the position signal, the logit lens, attention by layer and the
temperature knob. The report is computed on the app's :class:`EngineWorker` (a Textual
worker, ``exclusive``: moving fast cancels the previous request, and a request that is
no longer wanted when the engine thread reaches it returns at once). A pane the model
cannot give is greyed with its reason; the others still show.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, VerticalScroll
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from tokentui.engine.analysis import inside
from tokentui.engine.analysis.inside import InsideReport, Inspector
from tokentui.engine.engine_thread import EngineWorker
from tokentui.engine.results import Token
from tokentui.engine.session import Session
from tokentui.tui.failures import failure_line
from tokentui.tui.screens.explain import ExplainScreen
from tokentui.tui.widgets.inside_charts import EmbeddingPane, PositionPane, TemperaturePane
from tokentui.tui.widgets.inside_panes import (
    InsidePane,
    LayerAttentionPane,
    LensPane,
    TokenPane,
    piece,
)

if TYPE_CHECKING:
    from tokentui.engine.backends.base import Backend

LENS_TOP_K = 6
"""Guesses per layer asked of the engine; the lens pane shows as many as fit its width."""
COMPACT_WIDTH, COMPACT_HEIGHT = 100, 30
"""Below either, the panes stack in one scrolling column."""
CONTEXT_TOKENS = 6
"""Tokens shown either side of the inspected one in the header."""

_inspectors: weakref.WeakKeyDictionary[Any, Inspector] = weakref.WeakKeyDictionary()
"""One Inspector per backend (it caches the embedding norms and neighbours)."""


def inspector_for(backend: Backend) -> Inspector:
    """The backend's Inspector, built once (raises InsideError for a remote backend)."""
    try:
        found = _inspectors.get(backend)
    except TypeError:  # not weak-referenceable: no cache
        return Inspector(backend)
    if found is None:
        found = _inspectors[backend] = Inspector(backend)
    return found


class InsideScreen(ModalScreen[int]):
    """Six panes about one position; left/right move to the previous/next token."""

    DEFAULT_CSS = """
    InsideScreen { background: $background; }
    #inside-head { height: 2; padding: 0 1; background: $panel; }
    #inside-head.-error { background: $error 30%; }
    #inside-scroll { height: 1fr; }
    #inside-grid {
        grid-size: 2;
        grid-columns: 2fr 3fr;
        grid-rows: 1fr;
        height: 1fr;
    }
    InsideScreen.-compact #inside-grid {
        grid-size: 1;
        grid-columns: 1fr;
        grid-rows: 14;
        height: auto;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1)", "Prev token", priority=True),
        Binding("right", "move(1)", "Next token", priority=True),
        Binding("home", "move_to(0)", "First token", show=False, priority=True),
        Binding("end", "move_to(-1)", "Last token", show=False, priority=True),
        Binding("f1", "explain", "Explain"),
        Binding("escape,i", "close", "Close"),
    ]

    index: reactive[int] = reactive(0, init=False)
    """Position (0-based, prompt + completion) being inspected."""

    def __init__(self, index: int, tokens: Sequence[Token], *, n_prompt: int, session: Session,
                 engine: EngineWorker, greedy: bool = False) -> None:
        super().__init__()
        self.session = session
        self.engine = engine
        """The app's engine thread: the report is computed there (attributes down, no app reads)."""
        self.tokens = list(tokens)
        """The whole sequence as the main screen shows it (for the header and labels)."""
        self.n_prompt = n_prompt
        self.greedy = greedy
        self.report: InsideReport | None = None
        self.error: str | None = None
        self._ticket = 0
        """Bumped per request; the engine skips a request whose ticket is stale."""
        self.set_reactive(InsideScreen.index, max(0, min(index, len(self.tokens) - 1)))

    def compose(self) -> ComposeResult:
        yield Static(Text(""), id="inside-head")
        with VerticalScroll(id="inside-scroll"), Grid(id="inside-grid"):
            yield TokenPane(id="inside-token")
            yield LensPane(id="inside-lens")
            yield EmbeddingPane(id="inside-embedding")
            yield LayerAttentionPane(id="inside-attention")
            yield PositionPane(id="inside-position")
            yield TemperaturePane(id="inside-temperature")
        yield Footer()

    def on_mount(self) -> None:
        self._fit(self.app.size.width, self.app.size.height)
        self.query_one(TokenPane).focus()
        self._request()

    def on_resize(self, event: Any) -> None:
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        self.set_class(width < COMPACT_WIDTH or height < COMPACT_HEIGHT, "-compact")

    @property
    def panes(self) -> list[InsidePane]:
        return list(self.query(InsidePane).results(InsidePane))

    # ----- moving -------------------------------------------------------------------------
    def action_move(self, delta: int) -> None:
        self.index = max(0, min(len(self.tokens) - 1, self.index + delta))

    def action_move_to(self, index: int) -> None:
        self.index = len(self.tokens) - 1 if index < 0 else min(index, len(self.tokens) - 1)

    def watch_index(self) -> None:
        self._request()

    def _request(self) -> None:
        self._ticket += 1
        for pane in self.panes:
            pane.add_class("-stale")
        self._draw_head("computing…")
        self.compute(self.index, self._ticket)

    # ----- computing (engine thread) ----------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="inside")
    async def compute(self, index: int, ticket: int) -> None:
        session = self.session

        def run() -> InsideReport | None:
            if ticket != self._ticket:  # the user moved on before the engine got here
                return None
            return inside.inspect(session, index, top_k=LENS_TOP_K, strict=False,
                                     inspector=inspector_for(session.backend))

        try:
            report = await self.engine.call(run)
        except Exception as exc:  # one line, in the failure handler's words, never a crash
            self._fail(failure_line(exc, "computing the Inside report"))
            return
        if report is None or ticket != self._ticket or not self.is_mounted:
            return
        self.show_report(report)

    def show_report(self, report: InsideReport) -> None:
        """Draw every pane from ``report`` (missing ones grey themselves)."""
        self.report, self.error = report, None
        context = {"tokens": self.tokens, "greedy": self.greedy}
        for pane in self.panes:
            try:
                pane.show(report, **context)
            except Exception as exc:  # a drawing bug greys one pane, the others still show
                pane.fail(failure_line(exc, "drawing this pane"))
        missing = len(report.missing)
        self._draw_head(f"{missing} pane{'s' if missing != 1 else ''} unavailable (greyed)"
                        if missing else "")

    def _fail(self, reason: str) -> None:
        self.error = reason.strip().splitlines()[0] if reason.strip() else "error"
        for pane in self.panes:
            pane.fail(self.error)
        self._draw_head(f"✗ {self.error}")

    # ----- header ---------------------------------------------------------------------------
    def _draw_head(self, state: str) -> None:
        i = self.index
        line = Text()
        lo, hi = max(0, i - CONTEXT_TOKENS), min(len(self.tokens), i + CONTEXT_TOKENS + 1)
        if lo > 0:
            line.append("… ", style="dim")
        for j in range(lo, hi):
            cell = piece(self.tokens[j], 14)
            if j == i:
                cell.stylize(Style(reverse=True, bold=True))
            elif j < self.n_prompt:
                cell.stylize("dim")
            line.append_text(cell)
            line.append(" ")
        if hi < len(self.tokens):
            line.append("…", style="dim")
        where = "prompt" if i < self.n_prompt else f"completion token {i - self.n_prompt}"
        info = Text(f"position {i} of {len(self.tokens)} · {where} · ←/→ move · F1 explain · "
                    "escape back", style="dim")
        if state:
            info.append("  ")
            info.append(state, style=Style(bold=True, color="red" if state.startswith("✗") else None))
        head = self.query_one("#inside-head", Static)
        head.set_class(state.startswith("✗"), "-error")
        head.update(Text("\n").join([line, info]))

    # ----- actions ---------------------------------------------------------------------------
    def action_explain(self) -> None:
        self.app.push_screen(ExplainScreen.for_widget(self.focused, default="inside_token"))

    def action_close(self) -> None:
        self._ticket += 1  # drop a request still queued on the engine
        self.dismiss(self.index)
