"""Charts (textual-plotext): the current distribution and entropy/surprisal over the steps."""

from __future__ import annotations

import math

from textual.containers import Vertical
from textual_plotext import PlotextPlot

from tokentui.engine.results import Distribution, StepResult
from tokentui.tui.styling import surprisal, visible

BARS = 20
"""Candidates drawn in the distribution chart."""


class DistributionChart(PlotextPlot):
    """Horizontal bars of the top candidates' final probabilities."""

    def show(self, dist: Distribution | None, title: str) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        if dist is not None and dist.candidates:
            cands = dist.candidates[:BARS]
            labels = [f"{c.rank:>2} {visible(c.text)[:12]}" for c in cands][::-1]
            plt.bar(labels, [c.p_final for c in cands][::-1], orientation="horizontal", width=0.4)
            plt.xlim(0, 1)
            plt.xlabel("p_final")
        self.refresh()


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


class Charts(Vertical):
    """Both charts, stacked."""

    def compose(self):
        yield DistributionChart(id="dist-chart")
        yield EntropyChart(id="entropy-chart")
