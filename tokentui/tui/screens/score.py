"""Score mode (``s``, ``tokentui --score FILE``): load a text as given tokens and see its surprises.

The screen asks for a file, scores it on the engine thread (batched passes, a progress bar,
escape keeps what is scored so far), and makes it the session: the text's tokens become the
current branch as *given* steps carrying the model's distribution at each (so the stream
colours them by rank, the Alternatives pane shows what the model expected there, and
``enter`` on an alternative branches at that token, ``n``/``g`` continue from it: what the
model would have written instead). Once a text is loaded the screen lists its most
surprising tokens; ``enter`` on one moves the cursor there, and ``u`` in the main view
jumps to the next surprise.

This screen owns its worker and its cancel event (the app only opens it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from tokentui.engine.analysis.score import SCORED, read_text_file, score_text, text_ids
from tokentui.engine.errors import TokentuiError
from tokentui.engine.results import StepResult
from tokentui.tui.styling import visible

SURPRISES_LISTED = 30
PROGRESS_INTERVAL_S = 0.1


def surprises(steps: Sequence[StepResult]) -> list[int]:
    """Indices of the scored steps, most surprising (lowest probability) first."""
    scored = [i for i, s in enumerate(steps) if s.note == SCORED]
    return sorted(scored, key=lambda i: (steps[i].p_base, i))


def next_surprise(steps: Sequence[StepResult], cursor: int) -> tuple[int, int, int] | None:
    """``(index, k, n)``: the surprise after the one at ``cursor`` (the first one when the
    cursor is elsewhere), its place ``k`` (1-based) among ``n``; None without scored steps."""
    order = surprises(steps)
    if not order:
        return None
    k = order.index(cursor) + 1 if cursor in order else 0
    k %= len(order)
    return order[k], k + 1, len(order)


def surprise_label(index: int, step: StepResult) -> Text:
    """``#index 'token'  p=…  rank …  expected 'a' 'b'`` (token text as data)."""
    label = Text()
    label.append(f"#{index:<5} ", style="dim")
    label.append(visible(step.token.text), style="bold")
    rank = step.rank
    shown = str(rank) if rank is not None else f">{len(step.candidates)}"
    label.append(f"  p={step.p_base:.3g}  rank {shown}", style="dim")
    label.append("  expected ")
    for cand in step.candidates[:3]:
        label.append(visible(cand.token.text), style="cyan")
        label.append(" ")
    return label


class ScoreScreen(ModalScreen[int | None]):
    """A file to score, its progress, and the surprises of the loaded text.

    Dismisses with a completion index to move the cursor to (a chosen surprise), or None.
    """

    DEFAULT_CSS = """
    ScoreScreen { align: center middle; }
    ScoreScreen #score { width: 90%; height: 80%; border: round $accent; background: $surface;
        padding: 0 1; }
    ScoreScreen #score-path { margin: 1 0 0 0; }
    ScoreScreen #score-surprises { height: 1fr; }
    ScoreScreen #score-status { height: auto; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel_or_close", "Cancel / close")]

    def __init__(self, path: str = "", *, steps: Sequence[StepResult] = (),
                 autostart: bool = False) -> None:
        super().__init__()
        self.path = path
        self.steps = list(steps)
        self.autostart = autostart
        self.running = False
        self.stop = threading.Event()

    def compose(self):
        with Vertical(id="score"):
            yield Input(self.path, placeholder="a UTF-8 text file to score", id="score-path")
            yield ProgressBar(total=1, id="score-progress", show_eta=False)
            yield OptionList(id="score-surprises")
            yield Static(Text("enter: score the file (it replaces the prompt and branches) · "
                              "escape: close"), id="score-status")

    def on_mount(self) -> None:
        self.query_one("#score").border_title = "Score a text"
        self.show_surprises(self.steps)
        if self.autostart and self.path:
            self.start(self.path)
        elif self.steps:
            self.query_one(OptionList).focus()
        else:
            self.query_one(Input).focus()

    def show_surprises(self, steps: Sequence[StepResult]) -> None:
        self.steps = list(steps)
        options = self.query_one(OptionList)
        options.clear_options()
        order = surprises(steps)[:SURPRISES_LISTED]
        options.add_options([Option(surprise_label(i, steps[i]), id=str(i)) for i in order])
        if order:
            self.status(f"the {len(order)} most surprising tokens: enter moves there · u in the "
                        "main view jumps to the next one")

    def status(self, text: str, *, error: bool = False) -> None:
        self.query_one("#score-status", Static).update(Text(text, style="bold red" if error else ""))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip() and not self.running:
            self.start(event.value.strip())

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if not self.running and event.option.id is not None:
            self.dismiss(int(event.option.id))

    def action_cancel_or_close(self) -> None:
        if self.running:
            self.stop.set()
            self.status("stopping: what is scored so far is kept…")
        else:
            self.dismiss(None)

    def start(self, path: str) -> None:
        self.running = True
        self.stop.clear()
        self.status(f"scoring {path}… escape stops (keeps what is scored)")
        self.run_score(path)

    @work(exclusive=True, exit_on_error=False, group="score")
    async def run_score(self, path: str) -> None:
        app: Any = self.app
        try:
            text = read_text_file(path)
            if app.backend is None:
                raise TokentuiError("the model is still loading: try again in a moment")
            bar = self.query_one(ProgressBar)
            last = [0.0]

            def progress(done: int, total: int) -> None:
                now = time.monotonic()
                if now - last[0] >= PROGRESS_INTERVAL_S or done == total:
                    last[0] = now
                    app.call_from_thread(bar.update, total=total, progress=done)

            session = await app.engine.call(self._score_into_session, app, text, progress)
        except TokentuiError as exc:
            self.running = False
            self.status(str(exc), error=True)
            return
        self.running = False
        first = app.session is None
        app.session = session
        if first:
            from tokentui.tui.widgets.constraint_panel import ConstraintPanel

            app.query_one(ConstraintPanel).attach()
        from tokentui.tui.widgets.prompt import PromptPane
        from tokentui.tui.widgets.token_stream import TokenStream

        pane = app.query_one(PromptPane)
        pane.commit(session.prompt)
        pane.revert()  # the editor shows the context now in use (nothing left to apply)
        app.query_one(TokenStream).colour_mode = "rank"
        steps = session.current.steps
        order = surprises(steps)
        await app.refresh_view(cursor=order[0] if order else 0)
        result = self._result
        said = (f"scored {result.n_tokens} tokens: perplexity {result.perplexity:.2f}, "
                f"{result.bits_per_token:.2f} bits per token"
                if result.perplexity is not None else f"scored {result.n_tokens} tokens")
        if result.cancelled:
            said += " (stopped early: the rest is not loaded)"
        app.query_one("#status").info(said + " · u: next surprise · s: the list · enter on an "
                                      "alternative: branch there")
        self.dismiss(order[0] if order else None)

    def _score_into_session(self, app: Any, text: str, progress: Any) -> Any:
        """On the engine thread: tokenise, score (in windows when longer than the context),
        and load the result into the app's session (a new one when there is none)."""
        from tokentui.engine.session import Session

        backend = app.backend
        prefix, ids = text_ids(backend.tokenizer, text)
        context = backend.capabilities.max_context
        long = context is not None and len(prefix) + len(ids) > context
        result = score_text(backend, ids, prefix_ids=prefix, top_n=app.top_n,
                            stride=context // 2 if long and context else None,
                            progress=progress, stop_event=self.stop)
        self._result = result
        session = app.session or Session(backend, prompt_ids=prefix or ids[:1],
                                         params=app.params, top_n=app.top_n)
        session.load_scored(prefix, result)
        return session
