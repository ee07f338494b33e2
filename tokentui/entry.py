"""The ``tokentui`` command: answers ``--help`` from a cache before importing anything heavy.

Building typer's commands imports pydantic (typer 0.29 validates every typed option through it)
and rich, which costs more than printing the text. The help of ``tokentui`` and of each
subcommand only changes when the CLI's code, the installed typer or the terminal width does, so
the first ``--help`` renders it as usual and keeps the text; later ones print it at the cost of
starting Python. Everything else goes straight to :func:`tokentui.cli.main`.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sys
from contextlib import redirect_stdout
from importlib.util import find_spec
from pathlib import Path

HELP_FLAGS = ("--help", "-h")


def help_request(argv: list[str]) -> bool:
    """``tokentui --help`` or ``tokentui COMMAND --help``, nothing else."""
    if len(argv) == 1:
        return argv[0] in HELP_FLAGS
    return len(argv) == 2 and argv[1] in HELP_FLAGS and not argv[0].startswith("-")


def help_key(argv: list[str]) -> str:
    """What the help text depends on: the arguments, the width, the CLI's and typer's code."""
    parts = ["\0".join(argv), str(shutil.get_terminal_size().columns), sys.version]
    cli = Path(__file__).resolve().parent / "cli"
    sources = [*sorted(cli.glob("*.py")), cli.parent / "engine" / "launch.py"]
    typer_spec = find_spec("typer")
    if typer_spec is not None and typer_spec.origin:
        sources.append(Path(typer_spec.origin))
    for path in sources:
        stat = path.stat()
        parts.append(f"{path}:{stat.st_mtime_ns}:{stat.st_size}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def help_cache_dir() -> Path:
    """``help/`` in tokentui's cache folder (``models.cache_dir``: that module imports no torch)."""
    from tokentui.engine.models import cache_dir

    return cache_dir() / "help"


def main() -> None:
    argv = sys.argv[1:]
    if not help_request(argv):
        from tokentui.cli import main as cli_main

        cli_main(argv)
        return
    path = help_cache_dir() / f"{help_key(argv)}.txt"
    try:
        sys.stdout.write(path.read_text(encoding="utf-8"))
        return
    except OSError:
        pass
    from tokentui.cli import main as cli_main

    captured = io.StringIO()
    code = 0
    try:
        with redirect_stdout(captured):
            cli_main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    text = captured.getvalue()
    sys.stdout.write(text)
    if code == 0 and text.startswith("Usage:"):
        try:  # a cache that cannot be written only costs the next --help its speed
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass
    sys.exit(code)
