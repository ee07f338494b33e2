"""The real app in a real terminal (tmux): a session file's prompt and branch names with escape
sequences must not reach the terminal (no title set, no clipboard written, no screen wiped)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.hostile


class Tmux:
    """A tmux server of its own (own socket) running one command in a 120x36 pane."""

    def __init__(self, tmp_path, command: list[str], env: dict[str, str]) -> None:
        self.socket = f"tokentui-hostile-{os.getpid()}-{time.monotonic_ns()}"
        self.base = ["tmux", "-L", self.socket, "-f", "/dev/null"]
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        line = f"env {exports} {shlex.join(command)}; sleep 600"
        subprocess.run([*self.base, "new-session", "-d", "-x", "120", "-y", "36", "-s", "t", line],
                       check=True)
        self.tmux("set-option", "-g", "set-clipboard", "on")
        self.tmux("select-pane", "-t", "t", "-T", "untouched-title")

    def tmux(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=30).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t")

    def wait_for(self, text: str, timeout: float = 180) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.5)
        raise AssertionError(f"{text!r} never appeared; the pane shows:\n{self.screen()}")

    def screen_with_escapes(self) -> str:
        """The pane as tmux holds it, with its colour escapes (-e): what reached the terminal."""
        return self.tmux("capture-pane", "-p", "-e", "-t", "t")

    def title(self) -> str:
        return self.tmux("display-message", "-p", "-t", "t", "#{pane_title}").strip()

    def buffers(self) -> str:
        return self.tmux("list-buffers")

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def tmux_app(tmp_path, hostile_file, tiny_dir):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the app tier: apt-get install -y tmux")
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1", "TERM": "xterm-256color",
           "TOKENIZERS_PARALLELISM": "false", "PATH": os.environ.get("PATH", "")}
    t = Tmux(tmp_path, [sys.executable, "-m", "tokentui", "--session", str(hostile_file),
                        "--model", str(tiny_dir)], env)
    yield t
    t.close()


def test_prompt_editor_and_branch_list_draw_escapes_inert(tmux_app):
    shown = tmux_app.wait_for("PWNED-TITLE")  # the prompt editor shows the escape as text
    assert "\\x1b]2;PWNED-TITLE" in shown
    time.sleep(2)
    assert tmux_app.title() == "untouched-title"
    assert "Prompt" in tmux_app.screen()  # not wiped by ESC [2J
    tmux_app.tmux("send-keys", "-t", "t", "Escape")
    time.sleep(0.5)
    tmux_app.tmux("send-keys", "-t", "t", "b")
    shown = tmux_app.wait_for("enter: switch")  # the branch list, with the hostile names
    assert "\\x1b]2;PWNED-TITLE" in shown
    time.sleep(1)
    assert tmux_app.title() == "untouched-title"
    assert "SGVsbG8" not in tmux_app.buffers()  # OSC 52 wrote no clipboard
    assert tmux_app.buffers().strip() == ""
    raw = tmux_app.screen_with_escapes()
    assert "\x1b]" not in raw and "\x9b" not in raw and "\u202e" not in raw  # only SGR colours
