"""Drive the real app in a real terminal: a detached tmux session of a given size.

The tests (and ``benchmarks/app_rate.py``) start ``python -m tokentui ...`` in tmux, send
keys, and wait on what the screen shows (``tmux capture-pane -p``: the plain text a person
would read, no colours), so they check the app as a terminal user gets it, beside the
Pilot tests that check it from inside.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def have_tmux() -> bool:
    return shutil.which("tmux") is not None


class TmuxApp:
    """One app in one detached tmux session; use as a context manager (it cleans up)."""

    def __init__(self, args: list[str], *, width: int = 120, height: int = 40,
                 env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.name = f"tokentui-test-{uuid.uuid4().hex[:8]}"
        self.tmux = ["tmux", "-L", self.name]
        """A server of its own (``-L``): nothing here touches anyone else's tmux sessions."""
        self.width, self.height = width, height
        environ = {"TERM": "xterm-256color", "COLORTERM": "truecolor", **(env or {})}
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in environ.items())
        command = f"cd {shlex.quote(str(cwd))} && env {exports} " \
                  f"{shlex.quote(sys.executable)} -m tokentui {shlex.join(args)}"
        # remain-on-exit keeps the last screen when the app fails, so the error can be read
        subprocess.run([*self.tmux, "-f", "/dev/null", "new-session", "-d", "-s", self.name,
                        "-x", str(width), "-y", str(height), command,
                        ";", "set-option", "-t", self.name, "remain-on-exit", "on"],
                       check=True, env={**os.environ, "TMUX": ""})

    def __enter__(self) -> TmuxApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def capture(self) -> str:
        """The screen as plain text (one line per row)."""
        out = subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name],
                             capture_output=True, text=True, check=False)
        return out.stdout

    def send_keys(self, *keys: str, literal: bool = False) -> None:
        """tmux key names (``Escape``, ``Tab``, ``C-o``) or, with ``literal``, text."""
        args = [*self.tmux, "send-keys", "-t", self.name, *(["-l"] if literal else []), *keys]
        subprocess.run(args, check=True)

    def press(self, *keys: str, pause: float = 0.15) -> None:
        """Send ``keys`` one at a time, ``pause`` seconds apart (as a person types)."""
        for key in keys:
            self.send_keys(key)
            time.sleep(pause)

    def wait_for(self, what: str | Callable[[str], bool], timeout: float = 30.0,
                 interval: float = 0.02) -> str:
        """Poll the screen until it shows ``what`` (a text, or a test on the whole screen);
        returns that screen. Fails with the last screen in the message."""
        test = what if callable(what) else (lambda screen: what in screen)
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.capture()
            if test(screen):
                return screen
            time.sleep(interval)
        raise AssertionError(f"the screen did not show {what!r} within {timeout} s:\n{screen}")

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], check=False, capture_output=True)
