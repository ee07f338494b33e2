"""The attention heatmap labels its rows (position and piece) and columns (piece, or position
where a piece does not fit), in colour and under NO_COLOR, at 120x40 and 80x24."""

from __future__ import annotations

import pytest

from tests.tui.conftest import SIZE, ready, settle
from tokentui.tui.widgets.attention import AttentionPane
from tokentui.visible import visible


def lines(pane: AttentionPane) -> list[str]:
    return [pane.render_line(y).text for y in range(pane.size.height)]


async def open_attention(pilot, steps: int = 2) -> AttentionPane:
    app = pilot.app
    await ready(pilot)
    await pilot.press(*("n" * steps))
    await settle(pilot)
    await pilot.press("t")  # Params -> Attention (on a small terminal this shows the side panes)
    await pilot.pause(0.5)
    await settle(pilot)
    pane = app.query_one(AttentionPane)
    assert pane.weights is not None
    return pane


@pytest.mark.parametrize(("size", "no_color"), [(SIZE, False), (SIZE, True), ((80, 24), False)])
async def test_rows_and_columns_are_labelled(make_app, monkeypatch, size, no_color):
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    app = make_app()
    async with app.run_test(size=size) as pilot:
        pane = await open_attention(pilot)
        shown = lines(pane)
        n = pane.weights.shape[-1]
        gutter, cell, rows, cols = pane.geometry(n)
        r0, c0 = pane.window(rows, cols, n)
        assert pane.title.startswith("Attention · layer 0 of 0-1 · mean of heads")
        header = shown[0][gutter:]
        if cell >= 3:  # wide cells: each column carries its piece
            for k, c in enumerate(range(c0, min(n, c0 + cols))):
                label = header[k * cell:(k + 1) * cell - 1].rstrip()
                piece = visible(pane.tokens[c].text)
                assert piece.startswith(label.rstrip("…")) and label, (c, label, piece)
        else:  # positions every 5 or 10 columns, at their column
            numbers = [int(w) for w in header.split()]
            assert numbers and all(0 <= v < n for v in numbers)
            for v in numbers:
                at = (v - c0) * cell
                assert header[at:at + len(str(v))] == str(v)
        for y in range(1, min(rows, n - r0) + 1):
            row = r0 + y - 1
            label = shown[y][2:gutter].split()
            assert int(label[0]) == row
            if len(label) > 1:  # the piece, cut with an ellipsis where it is long
                piece = visible(pane.tokens[row].text).strip()
                assert piece.startswith(" ".join(label[1:]).rstrip("…")[:3])
        focus = min(pane.focus_row, n - 1)
        if r0 <= focus < r0 + rows:
            assert shown[focus - r0 + 1].startswith("▶ ")
        assert shown[-1].startswith("▶ ") and " attends to " in shown[-1]  # the caption line
        print("\n".join(shown))
