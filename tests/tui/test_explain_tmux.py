"""F1 in a real terminal: the app started by the CLI inside tmux (tiny model folder), at 120x40 in
colour and at 80x24 under NO_COLOR; the test waits on what the screen shows."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from tokentui.tui.help_texts import explanation

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def screen(name: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True,
                          text=True, check=False).stdout


def wait_for(name: str, check, timeout: float = 120.0) -> str:
    """Poll the pane until ``check(text)`` holds; fail with the last screen."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen(name)
        if check(text):
            return text
        time.sleep(0.25)
    raise AssertionError(f"timed out; the screen shows:\n{text}")


def panel(text: str) -> str:
    """Only what is inside the F1 box (the panes around it stay out of the words)."""
    lines = text.splitlines()
    top = next((i for i, line in enumerate(lines) if "─ F1" in line), None)
    if top is None:
        return ""
    left = lines[top].rfind("╭", 0, lines[top].index("─ F1") + 1)
    right = lines[top].find("╮", left)
    inside = []
    for line in lines[top + 1:]:
        if line[left:left + 1] == "╰":
            break
        inside.append(line[left + 1:right if right > left else None])
    return "\n".join(inside)


def flat(text: str) -> str:
    """Screen text without line breaks, box borders and runs of spaces (wrapped lines joined)."""
    cleaned = "".join(" " if ch in "│┃║▌▐" else ch for ch in text)
    return " ".join(cleaned.split())


@pytest.mark.parametrize(("size", "no_color"), [((120, 40), False), ((80, 24), True)],
                         ids=["120x40", "80x24-no-color"])
def test_f1_in_tmux(tiny_dir, size, no_color):
    name = f"tokentui-explain-{uuid.uuid4().hex[:8]}"
    env = "NO_COLOR=1 " if no_color else ""
    command = (f"env {env}TERM=xterm-256color {shlex.quote(sys.executable)} -m tokentui "
               f"--model {shlex.quote(str(tiny_dir))} --prompt 'Tell me a story'")
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(size[0]), "-y", str(size[1]),
                    command], check=True)
    try:
        wait_for(name, lambda t: "ready:" in t, timeout=180)
        subprocess.run(["tmux", "send-keys", "-t", name, "F1"], check=True)
        want = explanation("token_stream", no_color=no_color)
        shown = wait_for(name, lambda t: "What it shows" in t and flat(want.shows) in flat(panel(t)))
        words = flat(panel(shown))
        assert flat(want.shows) in words and "How to read it" in words
        if size[1] >= 40:  # at 80x24 the formula is further down the scrolling explanation
            assert "surprise = -log2 p(token | everything before it)" in words
        if no_color:
            assert "bold above 70%" in words and "reverse video below 10%" in words
            assert not re.search(r"\b(green|red|yellow|orange|blue|grey)\b", words)
        else:
            assert "green above 70%" in words
        subprocess.run(["tmux", "send-keys", "-t", name, "Escape"], check=True)
        wait_for(name, lambda t: "What it shows" not in t, timeout=30)
        subprocess.run(["tmux", "send-keys", "-t", name, "q"], check=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and subprocess.run(
                ["tmux", "has-session", "-t", name], capture_output=True).returncode == 0:
            time.sleep(0.25)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, check=False)
