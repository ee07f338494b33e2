"""How a token looks: probability bands, colour modes, visible whitespace.

Token text is data: every function here returns ``rich.text.Text`` built with ``append``,
never a markup string, so ``[bold]`` in a token stays literal.
"""

from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text

from tokentui.engine.results import StepResult, Token
from tokentui.palette import hex_colour, ramp
from tokentui.visible import visible

COLOUR_MODES = ("bands", "probability", "entropy", "rank")
"""What colours completion tokens; ``c`` cycles through them."""

BANDS: tuple[tuple[float, str, str], ...] = (
    (0.70, ">70%", "#3fb950"),
    (0.50, "50-70%", "#a3d930"),
    (0.30, "30-50%", "#e3c31a"),
    (0.10, "10-30%", "#f0883e"),
    (0.00, "<10%", "#f85149"),
)
"""Lower bound, label and colour of the five probability bands."""

MONO_BAND_STYLES = (
    Style(bold=True),
    Style(),
    Style(dim=True),
    Style(underline=True),
    Style(reverse=True),
)
"""The same bands without colour (NO_COLOR, monochrome terminals): weight, underline, reverse."""

def token_text(token: Token, *, style: Style | str = "") -> Text:
    """A token as one plain ``Text`` (specials in magenta)."""
    return Text(visible(token.text), style=Style(color="magenta", bold=True) if token.special else style)


def band(p: float) -> int:
    """Index of the probability band (0 = most likely)."""
    for i, (low, _, _) in enumerate(BANDS):
        if p > low or (i == len(BANDS) - 1):
            return i
    return len(BANDS) - 1


RED, YELLOW, GREEN = (248, 81, 73), (227, 195, 26), (63, 185, 80)
BLUE, MAGENTA = (88, 166, 255), (219, 97, 162)


def step_style(step: StepResult, mode: str, *, mono: bool) -> Style:
    """The style of a completion token in a colour mode."""
    if mono:
        return MONO_BAND_STYLES[band(step.p_final)] if mode == "bands" else _mono_scale(step, mode)
    if mode == "bands":
        return Style(color=BANDS[band(step.p_final)][2])
    if mode == "probability":
        p = step.p_final
        return Style(color=hex_colour(ramp(p, (RED, YELLOW, GREEN))))
    if mode == "entropy":
        return Style(color=hex_colour(ramp(step.entropy / 6.0, (BLUE, MAGENTA))))
    rank = step.rank
    colour = {1: "#3fb950", 2: "#e3c31a"}.get(rank or 0, "#f0883e" if rank and rank <= 5 else "#f85149")
    return Style(color=colour)


def _mono_scale(step: StepResult, mode: str) -> Style:
    """Entropy and rank without colour: the same five styles, by their own thresholds."""
    if mode == "entropy":
        level = min(4, int(step.entropy // 1.5))
    elif mode == "rank":
        rank = step.rank or 99
        level = 0 if rank == 1 else 1 if rank == 2 else 3 if rank <= 5 else 4
    else:
        level = band(step.p_final)
    return MONO_BAND_STYLES[level]


def legend(mode: str, *, mono: bool) -> Text:
    """One line that says what the colours (or glyphs) of the current mode mean."""
    out = Text(f"{mode}: ")
    if mode == "bands":
        for i, (_, label, colour) in enumerate(BANDS):
            style = MONO_BAND_STYLES[i] if mono else Style(color=colour)
            out.append(label, style=style)
            out.append(" ")
    elif mode == "probability":
        out.append("low", style=Style(color="#f85149") if not mono else Style(reverse=True))
        out.append(" → ")
        out.append("high", style=Style(color="#3fb950") if not mono else Style(bold=True))
    elif mode == "entropy":
        out.append("certain", style=Style(color="#58a6ff") if not mono else Style(bold=True))
        out.append(" → ")
        out.append("uncertain", style=Style(color="#db61a2") if not mono
                   else Style(reverse=True))
    else:
        for label, colour, level in (("#1", "#3fb950", 0), ("#2", "#e3c31a", 1),
                                     ("#3-5", "#f0883e", 3), ("#6+", "#f85149", 4)):
            out.append(label, style=MONO_BAND_STYLES[level] if mono else Style(color=colour))
            out.append(" ")
    return out


def prob_bar(p: float, width: int = 10) -> str:
    """A bar of eighth blocks for a probability in [0, 1]."""
    eighths = round(max(0.0, min(1.0, p)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")).ljust(width)


def surprisal(p: float) -> float:
    """Bits of surprise of an outcome of probability p."""
    return -math.log2(p) if p > 0 else float("inf")
