"""The core loop in a real terminal (tmux): what a person sees, as plain text.

Each test starts ``python -m tokentui`` on the tiny random model saved as a folder (fast;
the numbers do not matter here), sends keys, and waits on the screen.
"""

from __future__ import annotations

import re

import pytest

from tests.tmux_driver import TmuxApp, have_tmux

pytestmark = pytest.mark.skipif(not have_tmux(), reason="tmux is not installed (apt-get install tmux)")

READY = "Next token (position 0)"
"""The prompt is set and its next-token distribution is shown: the app is idle."""
START_TIMEOUT = 120.0
"""Python, torch and the tiny model load inside the app (slow on a busy machine)."""


def app(tiny_dir, *extra: str, width: int = 120, height: int = 40, env: dict[str, str] | None = None,
        prompt: str = "Once upon a time") -> TmuxApp:
    return TmuxApp(["--model", str(tiny_dir), "-p", prompt, *extra], width=width, height=height,
                   env=env)


def param_line(screen: str, label: str) -> str:
    """The Params pane's line for ``label`` (``temperature  0.7``), from the right column."""
    for line in screen.splitlines():
        if f"│{label}" in line:
            return line.split(f"│{label}", 1)[1].split("│", 1)[0].strip()
    raise AssertionError(f"no {label!r} line in:\n{screen}")


def test_escape_leaves_a_params_field_and_the_next_key_steps(tiny_dir):
    with app(tiny_dir, "--seed", "3") as term:
        term.wait_for(READY, timeout=START_TIMEOUT)
        term.press(*["Tab"] * 5, pause=0.6)  # stream -> ... -> temperature
        term.send_keys("5", literal=True)
        screen = term.wait_for(lambda s: param_line(s, "temperature") == "0.75")
        assert "Alternatives at 0" not in screen
        term.press("Escape", pause=0.3)  # a pause: ESC then n at once reads as alt+n
        term.send_keys("n", literal=True)
        screen = term.wait_for("Alternatives at 0")  # n stepped: the first token was taken
        assert param_line(screen, "temperature") == "0.75"  # and was not typed into the field
        term.send_keys("n", literal=True)
        screen = term.wait_for("Alternatives at 1")
        assert param_line(screen, "temperature") == "0.75"


def test_escape_leaves_the_system_prompt_input(tiny_dir):
    with app(tiny_dir) as term:
        term.wait_for(READY, timeout=START_TIMEOUT)
        term.press("BTab", "BTab", pause=0.6)  # stream -> chat template -> system prompt
        term.send_keys("x", literal=True)
        term.wait_for(lambda s: re.search(r"│x\s+\[", s) is not None)
        term.press("Escape", pause=0.3)  # a pause: ESC then n at once reads as alt+n
        term.send_keys("n", literal=True)
        screen = term.wait_for(lambda s: re.search(r"Alternatives at \d", s) is not None, timeout=30)
        assert re.search(r"│xn", screen) is None  # n stepped instead of typing into the field
        assert re.search(r"│x<\|im_end\|>", screen)  # and the system prompt was applied


def test_checkboxes_read_on_and_off_in_plain_text(tiny_dir):
    with app(tiny_dir, "--greedy") as term:
        screen = term.wait_for(READY, timeout=START_TIMEOUT)
        assert "[x] greedy" in screen
        assert "[ ] ignore EOS" in screen
        assert "[x] chat template" in screen
        assert "▐X▌" not in screen
        term.press(*["Tab"] * 5, pause=0.6)
        term.press(*["Tab"] * 10, pause=0.6)  # temperature -> ... -> the greedy checkbox
        term.send_keys("space")
        screen = term.wait_for("[ ] greedy")
        assert "[x] greedy" not in screen


def test_the_preset_box_names_the_preset_in_force(tiny_dir):
    with app(tiny_dir, "--preset", "creative") as term:
        screen = term.wait_for(READY, timeout=START_TIMEOUT)
        assert re.search(r"│creative\s+▼", screen), screen


def test_status_line_counts_while_generating(tiny_dir):
    with app(tiny_dir, "-n", "60", "--ignore-eos") as term:
        term.wait_for(READY, timeout=START_TIMEOUT)
        term.send_keys("g")
        status = re.compile(r"generating (\d+)/60 · ([\d.]+) tok/s · esc stops")
        screen = term.wait_for(lambda s: status.search(s) is not None, timeout=60, interval=0.01)
        done, rate = status.search(screen).groups()
        assert 1 <= int(done) <= 60 and float(rate) > 0
        screen = term.wait_for("generated 60 tokens", timeout=240)
        assert re.search(r"generated 60 tokens in [\d.]+ s \([\d.]+ tok/s\): max tokens reached", screen)
        assert re.search(r"tokentui — branch 1/1 · [\d.]+ tok/s", screen)  # the header keeps the rate


def alternatives_rows(screen: str) -> list[int]:
    """The ranks shown in the Alternatives box, top to bottom (up to its bottom border)."""
    lines = screen.splitlines()
    top = next((i for i, line in enumerate(lines)
                if re.search(r"╭─ (Next token|Alternatives)", line)), None)
    if top is None:  # a capture taken while the box's border was being redrawn: poll again
        return []
    ranks = []
    for line in lines[top + 2:]:  # the title, then the column header
        if line.startswith("╰"):
            break
        if found := re.match(r"│ [●✗ ]\s+(\d+)\s", line):
            ranks.append(int(found.group(1)))
    return ranks


@pytest.mark.parametrize("size", [(100, 30), (80, 24), (120, 40)])
def test_the_top_10_alternatives_are_fully_visible(tiny_dir, size):
    width, height = size
    with app(tiny_dir, width=width, height=height) as term:
        term.wait_for(READY, timeout=START_TIMEOUT)
        # waited for whole (a capture can land in the middle of a redraw)
        screen = term.wait_for(lambda s: alternatives_rows(s) == list(range(1, 11)), timeout=30)
        lines = screen.splitlines()
        assert len(lines) == height and all(len(line) <= width for line in lines)
        assert any("─ Tokens ─" in line for line in lines)  # the tokens pane is still there


def test_no_color_run_is_readable(tiny_dir):
    with app(tiny_dir, width=80, height=24, env={"NO_COLOR": "1"}) as term:
        screen = term.wait_for(READY, timeout=START_TIMEOUT)
        term.send_keys("n")
        # the cursor is marked by a glyph, not only reverse video (waited for: the stream and the
        # alternatives pane are drawn in separate refreshes)
        screen = term.wait_for(lambda t: "Alternatives at 0" in t and "▸" in t)
        assert "bands:" in screen  # the legend names the bands
        term.send_keys("v")  # the side panes (80x24 is compact)
        screen = term.wait_for("greedy")
        assert "[ ] greedy" in screen and "[ ] ignore EOS" in screen


def test_status_and_header_are_cut_with_an_ellipsis_at_80x24(tiny_dir, tmp_path):
    long_name = tmp_path / "a-model-folder-whose-name-is-far-too-long-for-an-80-column-header"
    long_name.symlink_to(tiny_dir, target_is_directory=True)
    with app(long_name, width=80, height=24) as term:
        screen = term.wait_for(READY, timeout=START_TIMEOUT)
        header = screen.splitlines()[0].rstrip()
        # the long model name gives way, with an ellipsis; the device at the end still shows
        assert "a-model-folder-whose" in header and "…" in header and header.endswith("cpu"), header
        status = screen.splitlines()[-2]
        assert status.strip().startswith("ready:")
