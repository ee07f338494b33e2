"""The token stream's incremental wrapping gives exactly what wrapping everything again gives."""

from __future__ import annotations

import random

from rich.text import Text

from tokentui.tui.stream_layout import WrappedLines

WORDS = ["a", " the", " lighthouse", " keeper", ",", " 灯台", "\n", " " * 30, "x" * 45, "", "é", " 🙂"]


def piece(word: str, style: str = "") -> Text:
    return Text(word.replace("\n", "⏎"), style=style)


def snapshot(layout: WrappedLines) -> tuple:
    return ([[(f.order, f.x, f.text.plain, str(f.text.style)) for f in line] for line in layout.lines],
            list(layout.starts))


def test_incremental_updates_match_a_full_wrap() -> None:
    rng = random.Random(7)
    for width in (1, 7, 20, 33):
        words = [rng.choice(WORDS) for _ in range(40)]
        styles = [""] * len(words)
        layout = WrappedLines()
        layout.reset(width, [piece(w) for w in words], ["\n" in w for w in words])
        for _ in range(150):
            op = rng.random()
            if op < 0.4:  # a run appends a batch
                new = [rng.choice(WORDS) for _ in range(rng.randint(1, 5))]
                dirty = {len(words) - 1}  # the old newest token loses the cursor
                words += new
                styles += [""] * len(new)
            elif op < 0.7:  # the cursor moves: two pieces restyled (the mono marker widens one)
                i, j = rng.randrange(len(words)), rng.randrange(len(words))
                styles[i], styles[j] = "reverse", ""
                words[i] = "▸" + words[i] if not words[i].startswith("▸") else words[i][1:]
                dirty = {i, j}
            elif op < 0.85 and len(words) > 1:  # the end shrinks (the next-token slot goes)
                del words[-1], styles[-1]
                dirty = set()
            else:  # one piece in the middle changes width
                i = rng.randrange(len(words))
                words[i] = rng.choice(WORDS)
                dirty = {i}
            pieces = [piece(w, s) for w, s in zip(words, styles, strict=True)]
            breaks = ["\n" in w for w in words]
            before = [layout.line_text(k).plain for k in range(layout.n_lines)]
            changed = layout.update(pieces, breaks, dirty)
            full = WrappedLines()
            full.reset(width, pieces, breaks)
            assert snapshot(layout) == snapshot(full)
            after = [layout.line_text(k).plain for k in range(layout.n_lines)]
            # lines outside the reported range are the lines that were there before
            for k in range(layout.n_lines):
                if not changed.first <= k < changed.end:
                    assert after[k] == before[k]


def test_no_line_is_wider_than_the_pane_and_clicks_find_pieces() -> None:
    layout = WrappedLines()
    words = [" hello", " 灯台灯台灯台", "x" * 25, "\n", " end"]
    layout.reset(10, [piece(w) for w in words], ["\n" in w for w in words])
    assert all(layout.line_text(k).cell_len <= 10 for k in range(layout.n_lines))
    assert "".join(layout.line_text(k).plain for k in range(layout.n_lines)) == \
        "".join(piece(w).plain for w in words)
    assert layout.piece_at(0, 0) == 0
    assert layout.piece_at(layout.starts[4], layout.lines[layout.starts[4]][0].x) == 4
    assert layout.piece_at(99, 0) is None


def test_an_append_redraws_only_the_last_lines() -> None:
    layout = WrappedLines()
    words = [" word"] * 200
    layout.reset(20, [piece(w) for w in words], [False] * 200)
    lines_before = layout.n_lines
    changed = layout.update([piece(w) for w in [*words, " more"]], [False] * 201, {199})
    assert changed.first >= lines_before - 2
