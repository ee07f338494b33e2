"""Two models in lockstep (``D``): the session's prefix through model A and a second model B.

Opened over the app's current branch, the screen asks for model B with the model dialog,
loads it on its own worker, and reads the branch's tokens through both models. Then both
step together: ``n`` one token, ``g`` generate, ``d`` swaps which model picks. For the
position under the cursor it shows both top-10 side by side (each candidate with its rank
under the other model), KL both ways, Jensen-Shannon, the top-10 overlap and the rank of
the taken token under the model that did not pick it. The strip shades every position by
Jensen-Shannon; ``j``/``k`` jump to the next / previous largest divergence. ``o`` branches
at the cursor to the other model's first choice (both models branch together). Closing the
screen drops model B; the app's own session is never changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from tokentui.engine.analysis.lockstep import Lockstep, StepDivergence, over_session, summarize
from tokentui.engine.errors import TokentuiError
from tokentui.engine.launch import ModelConfig, open_backend
from tokentui.engine.session import Session
from tokentui.tui.screens.model import ModelScreen
from tokentui.tui.styling import token_text
from tokentui.tui.widgets.divergence_strip import DivergenceStrip


def _p(p: float | None) -> Text:
    return Text("-" if p is None else f"{p:.1%}", style="dim" if p is None else "")


def _rank(r: int | None) -> Text:
    return Text("-" if r is None else str(r), style="bold green" if r == 1 else "")


def top_table(div: StepDivergence, side: str, title: str) -> Table:
    """One model's top-10 with each candidate's probability and rank under the other model."""
    other = "B" if side == "a" else "A"
    table = Table(title=title, title_justify="left", pad_edge=False, expand=True)
    for name, justify in (("#", "right"), ("token", "left"), ("p", "right"),
                          (f"p {other}", "right"), (f"rank {other}", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for c in div.top_a if side == "a" else div.top_b:
        style = "bold reverse" if c.token.id == div.token.id else ""
        table.add_row(Text(str(c.rank)), token_text(c.token, style=style), _p(c.p), _p(c.p_other),
                      _rank(c.rank_other))
    return table


def stats_text(div: StepDivergence, driver_now: str) -> Text:
    approx = "≈" if div.estimated else ""
    other = "B" if div.driver == "a" else "A"
    text = Text()
    text.append(f"position {div.index} · ")
    text.append(token_text(div.token))
    text.append(f" ({div.how} by {div.driver.upper()})\n")
    text.append(f"KL(A‖B) {approx}{div.kl_ab:.4f} bits · KL(B‖A) {approx}{div.kl_ba:.4f} bits · "
                f"JS {approx}{div.js:.4f} · top-10 overlap {div.overlap}/10 · "
                f"rank under {other}: {div.rank_other if div.rank_other is not None else '-'}")
    text.append(f"\np A {'-' if div.p_a is None else f'{div.p_a:.1%}'} · "
                f"p B {'-' if div.p_b is None else f'{div.p_b:.1%}'} · next: {driver_now.upper()} drives"
                + (" · ≈ estimated over the top-N a server returns" if div.estimated else ""),
                style="dim")
    return text


class LockstepScreen(Screen[None]):
    """The app's branch through two models; owns its worker (group ``lockstep``)."""

    DEFAULT_CSS = """
    LockstepScreen { layout: vertical; }
    LockstepScreen #ls-head { height: auto; padding: 0 1; background: $boost; }
    LockstepScreen #ls-strip { padding: 0 1; border: round $accent; height: auto; }
    LockstepScreen #ls-stats { height: auto; padding: 0 1; }
    LockstepScreen #ls-tops { height: 1fr; }
    LockstepScreen #ls-tops Static { width: 1fr; padding: 0 1; }
    LockstepScreen #ls-status { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "step", "Step"),
        Binding("space", "step", "Step both", show=False),
        Binding("g", "generate", "Generate"),
        Binding("d", "swap_driver", "Swap driver"),
        Binding("j", "jump(1)", "Next JS"),
        Binding("k", "jump(-1)", "Previous largest JS", show=False),
        Binding("left", "move(-1)", "Left", show=False),
        Binding("right", "move(1)", "Right", show=False),
        Binding("o", "other_choice", "Other's pick"),
        Binding("backspace", "delete_last", "Delete last", show=False),
        Binding("escape", "stop_or_close", "Close"),
        Binding("q", "close", "Drop B"),
    ]

    @dataclass
    class Changed(Message):
        """The lockstep's current branch after an operation (sent from the worker)."""

        divergences: tuple[StepDivergence, ...]
        driver: str
        note: str = ""
        cursor: int | None = None
        """Where to put the cursor (None: the last position)."""

    @dataclass
    class Failed(Message):
        error: str

    def __init__(self, session: Session, *, model_b: ModelConfig | None = None,
                 label_a: str = "A", opener: Callable[[ModelConfig], Any] = open_backend) -> None:
        super().__init__()
        self.session = session
        self.model_b = model_b
        self.label_a = label_a
        self.label_b = model_b.label if model_b else "B"
        self.opener = opener
        self.lockstep: Lockstep | None = None
        self.divs: tuple[StepDivergence, ...] = ()
        self.driver = "a"
        self.cursor: int | None = None
        self.busy = False
        self._jump_order: list[int] = []
        self._jump_at = -1
        self._cancel = threading.Event()

    def compose(self):
        with Vertical():
            yield Static(id="ls-head")
            yield DivergenceStrip(mono=self.app.no_color, id="ls-strip")
            yield Static(id="ls-stats")
            with Horizontal(id="ls-tops"):
                yield Static(id="ls-top-a")
                yield Static(id="ls-top-b")
            yield Static(id="ls-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#ls-strip").border_title = "Jensen-Shannon per token"
        self._head()
        if self.model_b is not None:
            self._start(self.model_b)
            return

        def chosen(config: ModelConfig | None) -> None:
            if config is None:
                self.dismiss(None)
            else:
                self._start(config)

        self.app.push_screen(ModelScreen(current=f"A: {self.label_a} (choose model B)"), chosen)

    # ----- the worker -----------------------------------------------------------------------
    def _start(self, config: ModelConfig) -> None:
        self.model_b = config
        self.label_b = config.label + (f" ({config.dtype})" if config.dtype != "auto" else "")
        self._head()
        self.status(f"loading model B: {config.label} ...")
        self._run(lambda cancel: self._open(config, cancel))

    def _open(self, config: ModelConfig, cancel: threading.Event) -> str:
        backend_b = self.opener(config)
        self.lockstep = over_session(self.session, backend_b, driver=self.driver)
        ids = self.session.current.ids
        for _ in self.lockstep.force_ids(ids, cancel):
            self._post()
        return (f"model B loaded; read {len(ids)} tokens of the branch through both"
                if ids else "model B loaded: n steps both models, g generates")

    def _post(self, note: str = "", cursor: int | None = None) -> None:
        assert self.lockstep is not None
        self.post_message(self.Changed(tuple(self.lockstep.divergences), self.lockstep.driver, note, cursor))

    @work(thread=True, exclusive=True, exit_on_error=False, group="lockstep")
    def _run(self, job: Callable[[threading.Event], str]) -> None:
        self._cancel = cancel = threading.Event()
        self.busy = True
        try:
            note = job(cancel)
            if self.lockstep is not None:
                self._post(note)
        except TokentuiError as exc:
            self.post_message(self.Failed(str(exc)))
        except Exception as exc:
            self.post_message(self.Failed(f"{type(exc).__name__}: {exc}"))
        finally:
            self.busy = False

    def _ready(self) -> Lockstep | None:
        if self.busy:
            self.status("busy: escape stops")
            return None
        if self.lockstep is None:
            self.status("model B is not loaded")
        return self.lockstep

    # ----- messages -------------------------------------------------------------------------
    def on_lockstep_screen_changed(self, message: Changed) -> None:
        self.divs = message.divergences
        self.driver = message.driver
        self._jump_order = []
        if message.cursor is not None:
            self.cursor = message.cursor
        else:
            self.cursor = len(self.divs) - 1 if self.divs else None
        if message.note:
            self.status(message.note)
        self.refresh_view()

    def on_lockstep_screen_failed(self, message: Failed) -> None:
        self.status(f"error: {message.error}")
        if self.lockstep is None:
            self.app.notify(message.error, severity="error")

    # ----- drawing --------------------------------------------------------------------------
    def status(self, text: str) -> None:
        self.query_one("#ls-status", Static).update(Text(text))

    def _head(self) -> None:
        text = Text()
        text.append("A ", style="bold cyan")
        text.append(self.label_a)
        text.append("  ·  ")
        text.append("B ", style="bold magenta")
        text.append(self.label_b)
        text.append(f"  ·  {self.driver.upper()} drives")
        if self.divs:
            s = summarize(self.divs)
            text.append(f"  ·  {s.steps} tokens · mean KL(A‖B) {s.mean_kl_ab:.3f} · "
                        f"largest JS {s.max_js:.3f} at {s.max_js_at}")
        self.query_one("#ls-head", Static).update(text)

    def refresh_view(self) -> None:
        self._head()
        strip = self.query_one(DivergenceStrip)
        strip.values = tuple(d.js for d in self.divs)
        strip.cursor = self.cursor
        if self.cursor is None or not self.divs:
            for name in ("#ls-stats", "#ls-top-a", "#ls-top-b"):
                self.query_one(name, Static).update("")
            return
        div = self.divs[self.cursor]
        self.query_one("#ls-stats", Static).update(stats_text(div, self.driver))
        self.query_one("#ls-top-a", Static).update(top_table(div, "a", f"A · {self.label_a}"))
        self.query_one("#ls-top-b", Static).update(top_table(div, "b", f"B · {self.label_b}"))

    # ----- actions --------------------------------------------------------------------------
    def action_step(self) -> None:
        if (ls := self._ready()) is not None:
            self._run(lambda cancel: f"{ls.step().token.text!r} taken by {ls.driver.upper()}")

    def action_generate(self) -> None:
        if (ls := self._ready()) is not None:
            def job(cancel: threading.Event) -> str:
                n = 0
                for _ in ls.generate(stop_event=cancel):
                    n += 1
                    self._post()
                return f"generated {n} tokens in lockstep ({ls.driver.upper()} drove)"
            self._run(job)

    def action_swap_driver(self) -> None:
        if (ls := self._ready()) is not None:
            self.driver = ls.swap_driver()
            self.status(f"{self.driver.upper()} drives now")
            self.refresh_view() if self.divs else self._head()

    def action_move(self, delta: int) -> None:
        if self.divs:
            self.cursor = max(0, min(len(self.divs) - 1, (self.cursor or 0) + delta))
            self.refresh_view()

    def action_jump(self, delta: int) -> None:
        """Visit positions in order of falling Jensen-Shannon (``j`` next, ``k`` back)."""
        if not self.divs:
            return
        if not self._jump_order:
            self._jump_order = sorted(range(len(self.divs)), key=lambda i: (-self.divs[i].js, i))
            self._jump_at = -1 if delta > 0 else 0
        self._jump_at = (self._jump_at + delta) % len(self._jump_order)
        self.cursor = self._jump_order[self._jump_at]
        self.status(f"divergence #{self._jump_at + 1} of {len(self.divs)} by JS: position {self.cursor}")
        self.refresh_view()

    def action_other_choice(self) -> None:
        """Branch at the cursor to the first choice of the model that did not pick there."""
        if (ls := self._ready()) is None or self.cursor is None:
            return
        div = self.divs[self.cursor]
        top = div.top_b if div.driver == "a" else div.top_a
        if not top or top[0].token.id == div.token.id:
            self.status("both models' first choice is the token taken here: nothing to branch to")
            return
        index, token_id = self.cursor, top[0].token.id

        def job(cancel: threading.Event) -> str:
            ls.branch_from(index, token_id)
            return f"branched at {index} to {'B' if div.driver == 'a' else 'A'}'s choice in both models"
        self._run(job)

    def action_delete_last(self) -> None:
        if (ls := self._ready()) is not None:
            def job(cancel: threading.Event) -> str:
                ls.delete_last()
                return "deleted the last token in both"
            self._run(job)

    def action_stop_or_close(self) -> None:
        if self.busy:
            self._cancel.set()
            self.status("stopping after this step ...")
        else:
            self.action_close()

    def action_close(self) -> None:
        self._cancel.set()
        self.lockstep = None  # model B is dropped with the lockstep
        self.dismiss(None)
