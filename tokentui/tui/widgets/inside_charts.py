"""The Inside screen's chart panes (textual-plotext): embedding, position, temperature.

Each pane is a line or two of numbers above a plot. Vectors longer than the plot is
wide are drawn in bins, each bar the value of largest magnitude in its bin (said in the
pane's subtitle), so a spike is never averaged away.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static
from textual_plotext import PlotextPlot

from tokentui.engine.analysis.inside import EmbeddingInfo, InsideReport, PositionInfo, TemperatureSweep
from tokentui.tui.widgets.inside_panes import InsidePane, piece

SWEEP_COLOURS = (("blue+", "color(12)"), ("green+", "color(10)"), ("magenta+", "color(13)"),
                 ("cyan+", "color(14)"))
"""(plotext, rich) colour of each top token's line; the legend is the text line above the plot."""


def binned(values: Sequence[float], bins: int) -> tuple[list[int], list[float], int]:
    """``(x, y, per_bin)``: one bar per bin, the value of largest magnitude in it (sign kept)."""
    n = len(values)
    per = max(1, -(-n // max(1, bins)))
    xs, ys = [], []
    for start in range(0, n, per):
        chunk = values[start:start + per]
        xs.append(start)
        ys.append(max(chunk, key=abs))
    return xs, ys, per


class _ChartPane(InsidePane):
    """A text line (``#<id>-text``) above a plotext plot (``#<id>-plot``)."""

    DEFAULT_CSS = """
    _ChartPane PlotextPlot { height: 1fr; min-height: 6; }
    _ChartPane Static { height: auto; }
    """

    def compose_body(self) -> ComposeResult:
        yield Static(Text("computing…"), classes="inside-body", id=f"{self.id}-text")
        yield PlotextPlot(classes="inside-body", id=f"{self.id}-plot")

    def plot(self) -> PlotextPlot:
        return self.query_one(f"#{self.id}-plot", PlotextPlot)

    def fresh_plot(self) -> Any:
        """The plot's ``plt``, cleared."""
        plt = self.plot().plt
        plt.clear_data()
        plt.clear_figure()
        return plt

    @property
    def plot_columns(self) -> int:
        return max(10, self.plot().size.width - 10)

    def bars(self, values: Sequence[float]) -> str:
        """Bar chart of a vector; returns the subtitle that says how it was binned."""
        plt = self.fresh_plot()
        xs, ys, per = binned(values, self.plot_columns)
        plt.bar(xs, ys, width=0.6)
        n = len(values)
        plt.xticks(sorted({0, n // 4, n // 2, 3 * n // 4, n - 1}))  # fixed ticks: same picture every draw
        plt.xlabel("dimension")
        self.plot().refresh()
        return f"{len(values)} dims" + (f", {per} per bar (largest |x|)" if per > 1 else "")


class EmbeddingPane(_ChartPane):
    """The token's input-embedding row, its norm, and the nearest tokens by cosine."""

    explain_id = "inside_embedding"
    title = "Embedding"
    field = "embedding"

    def draw(self, data: Any, report: InsideReport) -> None:
        info: EmbeddingInfo = data
        out = Text()
        out.append(f"{len(info.values)} numbers · L2 norm {info.norm:.3f}\n")
        out.append("nearest: ", style="dim")
        for i, n in enumerate(info.nearest):
            if i:
                out.append("  ")
            out.append_text(piece(n.token, 12))
            out.append(f" {n.cosine:.2f}", style="dim")
        self.body().update(out)
        self.border_subtitle = self.bars(info.values)


class PositionPane(_ChartPane):
    """What the architecture uses: rotary cos/sin per pair, a learned vector, or nothing."""

    explain_id = "inside_position"
    title = "Position"
    field = "position"

    def draw(self, data: Any, report: InsideReport) -> None:
        pos: PositionInfo = data
        out = Text()
        if pos.kind == "rope":
            half = (pos.head_dim or len(pos.cos)) // 2
            out.append(f"rotary · position {pos.index} · base {pos.base:g} · {half} pairs · "
                       f"{pos.rope_type}\n" if pos.base is not None else
                       f"rotary · position {pos.index} · {half} pairs · {pos.rope_type}\n")
            out.append("pair 0 turns ", style="dim")
            out.append(f"{pos.angle[0]:.3f} rad" if pos.angle else "?")
            out.append(f", pair {half - 1} ", style="dim")
            out.append(f"{pos.angle[-1]:.2g} rad" if pos.angle else "?")
            self.body().update(out)
            plt = self.fresh_plot()
            xs = list(range(half))
            plt.plot(xs, list(pos.cos[:half]), label="cos", marker="braille")
            plt.plot(xs, list(pos.sin[:half]), label="sin", marker="braille")
            plt.ylim(-1.05, 1.05)
            plt.xticks(sorted({0, half // 4, half // 2, 3 * half // 4, half - 1}))
            plt.xlabel("pair j (fast → slow)")
            self.plot().refresh()
            self.border_subtitle = "the model's own cos/sin at this position"
        elif pos.kind == "learned":
            out.append(f"learned vector · position {pos.index} · norm {pos.vector_norm or 0:.3f} · "
                       f"token + position norm {pos.sum_norm or 0:.3f}")
            self.body().update(out)
            self.border_subtitle = self.bars(pos.vector)
        else:
            out.append(pos.note)
            self.body().update(out)
            self.fresh_plot()
            self.plot().refresh()
            self.border_subtitle = "no position signal found"


class TemperaturePane(_ChartPane):
    """The top tokens' probability and the entropy as T goes 0.1 .. 2.0; T now and the cuts marked."""

    explain_id = "inside_temperature"
    title = "Temperature knob"
    field = "temperature_sweep"

    def draw(self, data: Any, report: InsideReport) -> None:
        sweep: TemperatureSweep = data
        greedy = bool(self.context.get("greedy"))
        t_now = sweep.current_temperature
        out = Text()
        out.append(f"T now {t_now:g}" + (" (greedy: the top token is taken)" if greedy else ""))
        for cut in sweep.cuts:
            out.append(" · ", style="dim")
            if cut.kept is None:
                out.append(f"{cut.name} off", style="dim")
            else:
                out.append(f"{cut.name} {cut.setting:g} keeps {cut.kept}")
        out.append(f" · {sweep.kept} survive all", style="bold")
        lines = list(zip(sweep.tokens, sweep.p, sweep.p_final, SWEEP_COLOURS, strict=False))
        out.append("\n")
        for tok, _, p_final, (_, colour) in lines:
            out.append("━ ", style=colour)
            out.append_text(piece(tok, 10))
            out.append(f" {p_final:.0%}  ", style="dim")
        out.append("━ entropy", style="color(8)")
        self.body().update(out)
        plt = self.fresh_plot()
        temps = list(sweep.temperatures)
        for _, ps, _, (colour, _) in lines:
            plt.plot(temps, list(ps), marker="braille", color=colour)
        plt.plot(temps, list(sweep.entropy), marker="braille", yside="right", color="gray")
        if t_now > 0:
            plt.vline(t_now, "red")
            for cut in sweep.cuts:
                if cut.kept is not None and cut.last_kept_p is not None:
                    plt.scatter([t_now], [cut.last_kept_p], marker="x", color="red")
        plt.ylim(0, 1)
        plt.xlabel("temperature T")
        self.plot().refresh()
        self.border_subtitle = "% = p now · red line: T now · x: smallest p each filter keeps"
