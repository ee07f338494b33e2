"""Colour ramps shared by both faces, as plain ``(r, g, b)`` values (no UI import).

One heat scale for attribution and association heatmaps, in the app and in the CLI's tables,
so the same score looks the same wherever it is drawn; ``ramp`` and ``hex_colour`` are the one
blend every other shaded cell (attention, lens, divergence strip) uses.
"""

from __future__ import annotations

from collections.abc import Sequence

RGB = tuple[int, int, int]

HEAT: tuple[RGB, ...] = ((48, 54, 61), (240, 136, 62), (255, 234, 160))
"""Attribution heat: cold grey, orange, hot pale yellow."""


def ramp(value: float, stops: Sequence[RGB], *, gamma: float = 1.0) -> RGB:
    """The colour at ``value`` in [0, 1] along evenly spaced ``stops``; ``gamma`` < 1 lifts
    small values (0.5: a square-root scale)."""
    t = max(0.0, min(1.0, float(value))) ** gamma
    if len(stops) == 1:
        return stops[0]
    span = t * (len(stops) - 1)
    i = min(int(span), len(stops) - 2)
    low, high, f = stops[i], stops[i + 1], span - i
    r, g, b = (round(a + (c - a) * f) for a, c in zip(low, high, strict=True))
    return r, g, b


def hex_colour(rgb: RGB) -> str:
    """``#rrggbb``, which both rich and Textual take as a colour."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def heat(value: float) -> str:
    """The heat colour of a normalised score in [0, 1]."""
    return hex_colour(ramp(value, HEAT))
