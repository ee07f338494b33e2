"""One palette for both faces: the ramp's ends and middle, and the heat scale the CLI's tables
and the app's attribution share."""

from tokentui.heatmap import shade
from tokentui.palette import HEAT, hex_colour, ramp
from tokentui.tui.attribution_view import heat_style


def test_ramp_ends_middle_and_clamping():
    stops = ((0, 0, 0), (100, 200, 50), (200, 0, 250))
    assert ramp(0.0, stops) == stops[0] and ramp(1.0, stops) == stops[2]
    assert ramp(0.5, stops) == stops[1]
    assert ramp(0.25, stops) == (50, 100, 25)
    assert ramp(-3, stops) == stops[0] and ramp(7, stops) == stops[2]
    assert ramp(0.25, stops[:2], gamma=0.5) == ramp(0.5, stops[:2])


def test_the_cli_table_and_the_app_draw_the_same_heat():
    for value in (0.0, 0.1, 0.5, 0.77, 1.0):
        assert shade(value) == hex_colour(ramp(value, HEAT))
        assert heat_style(value, mono=False).color.name == shade(value)
