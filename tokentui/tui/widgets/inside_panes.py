"""The Inside screen's panes: one per part of the report, each greyed with its reason when missing.

Every pane is a focusable scroll container that knows its explanation id (``explain_id``,
read by F1) and draws one :class:`InsideReport` field with :meth:`InsidePane.show`. The
text panes (token, logit lens, attention by layer) live here; the plotext charts in
``inside_charts.py``. Token text is data: ``rich.text.Text`` only, never markup.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from tokentui.engine.analysis.inside import InsideReport, LayerAttention, LensLayer
from tokentui.engine.results import Token
from tokentui.palette import hex_colour, ramp
from tokentui.tui.styling import visible

DARK = (22, 27, 34)
BLUE = (88, 166, 255)
GREEN_LOW, GREEN_HIGH = (20, 60, 30), (63, 185, 80)
"""Probability shading: blue for ordinary cells, green for the token that actually comes next."""
LENS_CELL = 14
"""Characters per lens cell: a piece of up to 8 characters, a space and ``0.00``."""


def shade(value: float, low: tuple[int, int, int] = DARK, high: tuple[int, int, int] = BLUE) -> str:
    """A colour between ``low`` and ``high``; the square root makes small values visible."""
    return hex_colour(ramp(value, (low, high), gamma=0.5))


def piece(token: Token, width: int | None = None) -> Text:
    """A token as visible text (specials in magenta), cut to ``width`` with an ellipsis."""
    text = visible(token.text)
    if width is not None and len(text) > width:
        text = text[: max(1, width - 1)] + "…"
    return Text(text, style=Style(color="magenta", bold=True) if token.special else "")


class InsidePane(VerticalScroll, can_focus=True):
    """One bordered pane of the Inside screen; ``-missing`` greys it and shows the reason."""

    DEFAULT_CSS = """
    InsidePane {
        border: round $primary 50%;
        border-title-color: $text;
        border-subtitle-color: $text-muted;
        height: 1fr;
        scrollbar-size-vertical: 1;
        padding: 0 1;
    }
    InsidePane:focus { border: round $accent; }
    InsidePane.-missing { border: round $panel; border-title-color: $text-disabled; }
    InsidePane.-stale > * { opacity: 60%; }
    InsidePane .inside-reason { display: none; color: $text-disabled; }
    InsidePane.-missing .inside-reason { display: block; }
    InsidePane.-missing .inside-body { display: none; }
    """

    explain_id: ClassVar[str] = ""
    """Key into ``tokentui.tui.help_texts.EXPLANATIONS`` (what F1 shows)."""
    title: ClassVar[str] = ""
    field: ClassVar[str] = ""
    """The ``InsideReport`` attribute this pane draws (and its key in ``missing``)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.report: InsideReport | None = None
        self.context: dict[str, Any] = {}
        """What the screen knows beyond the report (sequence tokens, greedy)."""

    def compose_body(self) -> ComposeResult:
        yield Static(Text("computing…"), classes="inside-body", id=f"{self.id}-text")

    def compose(self) -> ComposeResult:
        yield from self.compose_body()
        yield Static(Text(""), classes="inside-reason")

    def on_mount(self) -> None:
        self.border_title = self.title

    def show(self, report: InsideReport, **context: Any) -> None:
        """Draw this pane's part of ``report``, or grey the pane with the reason it is missing."""
        self.report, self.context = report, context
        self.remove_class("-stale")
        data = getattr(report, self.field)
        if data is None:
            reason = report.missing.get(self.field, "not available for this model")
            self.add_class("-missing")
            self.query_one(".inside-reason", Static).update(Text(f"unavailable: {reason}"))
            self.border_subtitle = "unavailable"
            return
        self.remove_class("-missing")
        self.draw(data, report)

    def fail(self, reason: str) -> None:
        """The whole report failed: grey the pane with one line."""
        self.add_class("-missing")
        self.remove_class("-stale")
        self.query_one(".inside-reason", Static).update(Text(reason))

    def draw(self, data: Any, report: InsideReport) -> None:
        """Render ``data`` (never None); subclasses override."""

    def body(self) -> Static:
        return self.query_one(f"#{self.id}-text", Static)

    def on_resize(self) -> None:
        if self.report is not None and getattr(self.report, self.field) is not None:
            self.draw(getattr(self.report, self.field), self.report)

    @property
    def inner_width(self) -> int:
        return max(20, self.scrollable_content_region.width - 1)


class TokenPane(InsidePane):
    """Id, piece, bytes, the word the piece belongs to, and the token that follows."""

    explain_id = "inside_token"
    title = "Token"
    field = "token"

    def draw(self, data: Any, report: InsideReport) -> None:
        info = data
        out = Text()
        out.append("position ", style="dim")
        out.append(f"{info.index} of {report.sequence_length}")
        out.append("  (prompt)" if info.in_prompt else "  (completion)", style="dim")
        out.append("\nid       ", style="dim")
        out.append(f"{info.token.id}")
        out.append(f"  of {info.vocab_size} in the vocabulary", style="dim")
        out.append("\npiece    ", style="dim")
        name = piece(info.token)
        if not info.token.special:
            name.stylize("bold")
        out.append_text(name)
        if info.token.special:
            out.append("  special marker token", style="magenta")
        out.append("\nbytes    ", style="dim")
        out.append(info.raw.hex(" ") or "(none)")
        out.append("\nword     ", style="dim")
        for i, tok in enumerate(info.word.pieces, start=info.word.start):
            cell = piece(tok)
            if i == info.index:
                cell.stylize(Style(reverse=True, bold=True))
            out.append("[", style="dim")
            out.append_text(cell)
            out.append("]", style="dim")
        n = len(info.word.pieces)
        out.append(f"  {n} piece{'s' if n != 1 else ''}", style="dim")
        out.append("\nnext     ", style="dim")
        if report.target is not None:
            out.append_text(piece(report.target))
            out.append("  (green in the logit lens)", style="dim")
        else:
            out.append("not generated yet: the lens shows the model's guesses only", style="dim")
        self.body().update(out)
        self.border_subtitle = f"id {info.token.id}"


class LensPane(InsidePane):
    """Layers down, the top-k guesses across, coloured by probability; the actual next token in green."""

    explain_id = "inside_logit_lens"
    title = "Logit lens"
    field = "logit_lens"
    shown_k: int = 0
    """Guesses per layer that fit the pane's width at the last draw."""
    highlighted: list[int]
    """Layers whose shown cells contain the actual next token (marked green)."""

    DEFAULT_CSS = "LensPane .lens-head { dock: top; height: 2; }"

    def compose_body(self) -> ComposeResult:
        yield Static(Text(""), classes="inside-body lens-head", id=f"{self.id}-head")
        yield from super().compose_body()

    def draw(self, data: Any, report: InsideReport) -> None:
        layers: tuple[LensLayer, ...] = data
        target = report.target
        room = self.inner_width - 4 - (15 if target is not None else 0)
        k = max(1, min(len(layers[0].top) if layers else 1, room // (LENS_CELL + 1)))
        self.shown_k = k
        self.highlighted = []
        head = Text("colour: probability · ", style="dim")
        head.append("▸green", style=Style(color="#3fb950", bold=True))
        head.append(" = the token that actually comes next" if target is not None
                    else " marks the next token; none yet at the last position", style="dim")
        head.append("\n  L ", style="bold")
        for j in range(k):
            head.append(f"#{j + 1}".ljust(LENS_CELL + 1), style="bold")
        if target is not None:
            head.append("actual rank   p", style="bold")
        rows: list[Text] = []
        for layer in layers:
            row = Text(f"{layer.layer:>3} ", style="dim")
            for entry in layer.top[:k]:
                hit = target is not None and entry.token.id == target.id
                if hit:
                    self.highlighted.append(layer.layer)
                bg = shade(entry.p, GREEN_LOW, GREEN_HIGH) if hit else shade(entry.p)
                cell = Text("▸" if hit else " ")
                cell.append_text(piece(entry.token, 8))
                cell.append(f" {entry.p:.2f}")
                cell.truncate(LENS_CELL, pad=True)
                cell.stylize(Style(bgcolor=bg, color="white", bold=hit))
                row.append_text(cell)
                row.append(" ")
            if target is not None and layer.target_rank is not None:
                found = layer.target_rank <= k
                row.append(f"{layer.target_rank:>11} {layer.target_p or 0.0:.2f}",
                           style=Style(color="#3fb950", bold=True) if found else "")
            rows.append(row)
        self.query_one(f"#{self.id}-head", Static).update(head)
        self.body().update(Text("\n").join(rows))
        self.border_subtitle = f"{len(layers)} layers · last row = the model's output"
        self.call_after_refresh(self.scroll_end, animate=False)


class LayerAttentionPane(InsidePane):
    """A heatmap: layers down, earlier positions across, the head-mean weight as colour."""

    explain_id = "inside_attention"
    title = "Attention by layer"
    field = "attention_by_layer"

    def draw(self, data: Any, report: InsideReport) -> None:
        layers: tuple[LayerAttention, ...] = data
        tokens: list[Token] = self.context.get("tokens", [])
        n = len(layers[0].mean) if layers else 0
        room = max(4, self.inner_width - 4 - 12)
        if n <= room:
            columns: list[int | None] = list(range(n))
        else:  # keep position 0 (often an attention sink), then the most recent ones
            columns = [0, None, *range(n - (room - 2), n)]
        cell_w = max(1, min(3, room // max(1, len(columns))))
        out = Text()
        out.append("L".rjust(3) + " ", style="dim")
        out.append(f"← position 0{' … ' if None in columns else ' '}… {n - 1} (this token)", style="dim")
        out.append("   H bits\n", style="dim")
        for layer in layers:
            out.append(f"{layer.layer:>3} ", style="dim")
            for col in columns:
                if col is None:
                    out.append("┊" * cell_w, style="dim")
                else:
                    out.append(" " * cell_w, style=Style(bgcolor=shade(layer.mean[col])))
            mean_h = sum(layer.head_entropy) / max(1, len(layer.head_entropy))
            out.append(f"  {mean_h:4.1f}\n", style="dim")
        totals = [sum(layer.mean[j] for layer in layers) / max(1, len(layers)) for j in range(n)]
        best = sorted(range(n), key=lambda j: -totals[j])[:3]
        out.append("most attended (mean of all layers): ", style="dim")
        for rank, j in enumerate(best):
            if rank:
                out.append(" · ", style="dim")
            if j < len(tokens):
                out.append_text(piece(tokens[j], 10))
            out.append(f" @{j} {totals[j]:.2f}", style="dim")
        self.body().update(out)
        max_h = f"{math.log2(n):.1f}" if n > 1 else "0"
        self.border_subtitle = f"brighter = more attention · H: head entropy, max {max_h} bits"
