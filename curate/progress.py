"""Progress display shared by every stage.

The pipeline runner opens one ``rich`` progress display for a run; stages ask for a task
bar with :func:`task` and advance it. Outside a run (a notebook, a test) a stage gets a
bar of its own when the output is a terminal, and a silent one otherwise.
"""
from __future__ import annotations

import contextlib
import sys
from contextvars import ContextVar

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

_current: ContextVar[Progress | None] = ContextVar("curate_progress", default=None)


def make_progress(**kwargs) -> Progress:
    return Progress(TextColumn("[bold]{task.description:<22}"), BarColumn(),
                    MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), **kwargs)


@contextlib.contextmanager
def run_progress(enabled: bool = True):
    """Open the run-wide display; stages started inside it draw their bars there."""
    progress = make_progress(disable=not enabled, transient=False)
    token = _current.set(progress)
    try:
        with progress:
            yield progress
    finally:
        _current.reset(token)


class Bar:
    """One stage's bar: ``advance(n)`` and ``info(text)`` (e.g. live token counts)."""

    def __init__(self, progress: Progress | None, description: str, total: int | None):
        self._progress = progress
        self._task = progress.add_task(description, total=total, info="") if progress else None

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def info(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, info=text)

    def total(self, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=total)


@contextlib.contextmanager
def task(description: str, total: int | None):
    """A progress bar for one stage, in the run's display or a private one."""
    progress = _current.get()
    if progress is not None:
        yield Bar(progress, description, total)
        return
    own = make_progress(disable=not sys.stderr.isatty(), transient=True)
    with own:
        yield Bar(own, description, total)
