"""Charts (textual-plotext): the current distribution and entropy/surprisal over the steps."""

from __future__ import annotations

import math

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static
from textual_plotext import PlotextPlot

from tokentui.engine.results import Distribution, StepResult
from tokentui.tui.styling import prob_bar, surprisal, token_text

BARS = 20
"""Candidates drawn in the distribution chart."""


class DistributionChart(Static):
    """Horizontal bars of the top candidates' final probabilities, one line per rank.

    Drawn as text rather than a plot so that every one of the ``BARS`` ranks is labelled
    (a plot thins its axis labels when the pane is shorter than the bar count).
    """

    BAR_WIDTH = 24

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: list[Text] = []
        """The title line and one line per rank, as last drawn (tests read them)."""

    def show(self, dist: Distribution | None, title: str) -> None:
        head = Text(title, style="bold", no_wrap=True, overflow="ellipsis")
        lines = [head]
        if dist is not None and dist.candidates:
            for c in dist.candidates[:BARS]:
                usable = c.kept and c.valid
                line = Text(no_wrap=True, overflow="ellipsis")
                line.append(f"{c.rank:>2} ", style="#8b949e")
                line.append_text(token_text(c.token, style="" if usable else "#6e7681 strike"))
                line.pad_right(max(0, 14 - line.cell_len))
                line.truncate(14, overflow="ellipsis")
                line.append(" ")
                line.append(prob_bar(c.p_final, self.BAR_WIDTH).ljust(self.BAR_WIDTH),
                            style="#58a6ff" if usable else "#6e7681")
                line.append(f" {c.p_final:.3f}", style="" if usable else "#6e7681")
                lines.append(line)
        self.lines = lines
        self.update(Text("\n").join(lines))


class EntropyChart(PlotextPlot):
    """Entropy of each step and the surprisal of the token taken, in bits."""

    def show(self, steps: list[StepResult]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("entropy / surprisal (bits)")
        if steps:
            xs = list(range(1, len(steps) + 1))
            plt.plot(xs, [s.entropy for s in steps], label="entropy", marker="braille")
            sur = [min(20.0, surprisal(s.p_final)) if s.p_final > 0 else 20.0 for s in steps]
            plt.plot(xs, [0.0 if math.isnan(v) else v for v in sur], label="surprisal",
                     marker="braille")
        self.refresh()


class Charts(VerticalScroll):
    """Both charts, stacked (scrolls when the pane is shorter than the top-20 list)."""

    def compose(self):
        yield DistributionChart(id="dist-chart")
        yield EntropyChart(id="entropy-chart")
