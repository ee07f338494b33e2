"""``tokentui --help`` from its cache: the same text as a fresh render, without importing typer,
and a new render when what the text depends on changes (here: the terminal width)."""

from __future__ import annotations

import os
import subprocess
import sys

from tokentui.entry import help_request

PROBE = ("import sys, runpy\n"
         "sys.argv = ['tokentui', *sys.argv[1:]]\n"
         "try:\n    runpy.run_module('tokentui', run_name='__main__')\nexcept SystemExit:\n    pass\n"
         "print('TYPER=' + str('typer' in sys.modules), file=sys.stderr)\n")


def run(tmp_path, *argv, columns="100"):
    env = {**os.environ, "TOKENTUI_CACHE": str(tmp_path), "COLUMNS": columns}
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                         env=env, timeout=300)
    return out.stdout, "TYPER=True" in out.stderr


def test_help_requests_are_recognised_narrowly():
    assert help_request(["--help"]) and help_request(["-h"]) and help_request(["score", "--help"])
    assert not help_request([]) and not help_request(["score"])
    assert not help_request(["--model", "--help"]) and not help_request(["generate", "hi", "--help"])


def test_second_help_comes_from_the_cache_and_matches(tmp_path):
    first, typer_first = run(tmp_path, "generate", "--help")
    second, typer_second = run(tmp_path, "generate", "--help")
    assert first.startswith("Usage: tokentui generate") and "Sampling:" in first
    assert second == first
    assert typer_first and not typer_second, "the cached help imports no typer"
    assert len(list((tmp_path / "help").glob("*.txt"))) == 1


def test_another_width_renders_again(tmp_path):
    wide, _ = run(tmp_path, "--help", columns="160")
    narrow, typer_used = run(tmp_path, "--help", columns="60")
    assert typer_used and wide != narrow
    assert max(len(line) for line in narrow.splitlines()) <= 60
    assert len(list((tmp_path / "help").glob("*.txt"))) == 2


def test_errors_are_not_cached(tmp_path):
    run(tmp_path, "no-such-command", "--help")
    assert not (tmp_path / "help").exists() or not list((tmp_path / "help").glob("*.txt"))
