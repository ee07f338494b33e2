"""The CLI's progress bars: one transient rich bar on stderr, nothing when stderr is no terminal.

Two callbacks, one bar: ``stages`` takes ``(stage, fraction)`` (a model loading), ``counts``
takes ``(done, total)`` (rows attributed, prompts of a batch, tokens scored).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

StageCallback = Callable[[str, "float | None"], None]
CountCallback = Callable[[int, int], None]


@contextlib.contextmanager
def _bar(description: str, *, quiet: bool, counted: bool) -> Iterator[object]:
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
    if counted:
        columns.append(MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        yield bar


@contextlib.contextmanager
def stages(description: str = "loading", *, quiet: bool = False) -> Iterator[StageCallback]:
    """A bar for work that reports what it is doing and how far it is (``fraction`` in [0, 1])."""
    from tokentui.visible import one_line

    with _bar(description, quiet=quiet, counted=False) as bar:
        if bar is None:
            yield lambda stage, fraction: None
            return
        task = bar.add_task(description, total=1.0)  # type: ignore[attr-defined]

        def update(stage: str, fraction: float | None) -> None:
            bar.update(task, description=one_line(stage), completed=fraction or 0.0)  # type: ignore[attr-defined]

        yield update


@contextlib.contextmanager
def counts(description: str, *, quiet: bool = False, total: int | None = None) -> Iterator[CountCallback]:
    """A bar for work counted in items: ``update(done, total)``."""
    with _bar(description, quiet=quiet, counted=True) as bar:
        if bar is None:
            yield lambda done, total: None
            return
        task = bar.add_task(description, total=total)  # type: ignore[attr-defined]
        yield lambda done, total: bar.update(task, completed=done, total=total)  # type: ignore[attr-defined]
