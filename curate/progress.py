"""Progress display shared by every stage: rich bars on a terminal, plain lines in a log.

The pipeline runner opens one display for a run; stages ask for a bar with :func:`task`
and advance it. On a terminal the display is ``rich``'s live bars. When standard error is
not a terminal (a CI log, ``nohup``, a pipe), bars would print as truncated lines or not at
all, so the display prints plain lines instead: each stage's start and end with counts (the
runner's :func:`plain_line`), and one line every ``PLAIN_EVERY`` seconds for a long bar.
Outside a run (a notebook, a test) a stage gets a bar of its own on a terminal, and a
silent one otherwise.
"""
from __future__ import annotations

import contextlib
import sys
import time
from contextvars import ContextVar
from datetime import datetime

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

PLAIN_EVERY = 30.0
_current: ContextVar[object | None] = ContextVar("curate_progress", default=None)


def make_progress(**kwargs) -> Progress:
    return Progress(TextColumn("[bold]{task.description:<22}"), BarColumn(),
                    MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), **kwargs)


def _stamp() -> str:
    return datetime.now().strftime("%H:%M:%S")


class PlainProgress:
    """Progress as plain lines: a line when a bar is slow, at most every ``every`` s."""

    def __init__(self, stream=None, every: float = PLAIN_EVERY):
        self.stream, self.every = stream or sys.stderr, every
        self.tasks: dict[int, dict] = {}

    def add_task(self, description: str, total=None, info: str = "") -> int:
        key = len(self.tasks)
        self.tasks[key] = {"description": description, "total": total, "done": 0,
                           "info": info, "start": time.monotonic(), "shown": time.monotonic()}
        return key

    def advance(self, key: int, n: int = 1) -> None:
        task = self.tasks[key]
        task["done"] += n
        now = time.monotonic()
        if now - task["shown"] >= self.every:
            task["shown"] = now
            total = f"/{task['total']:,}" if task["total"] else ""
            share = f" ({task['done'] / task['total']:.0%})" if task["total"] else ""
            info = f" {task['info']}" if task["info"] else ""
            self.line(f"{task['description']}: {task['done']:,}{total}{share}{info}, "
                      f"{now - task['start']:.0f} s")

    def update(self, key: int, info: str | None = None, total=None) -> None:
        if info is not None:
            self.tasks[key]["info"] = info
        if total is not None:
            self.tasks[key]["total"] = total

    def line(self, text: str) -> None:
        print(f"[{_stamp()}] {text}", file=self.stream, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@contextlib.contextmanager
def run_progress(enabled: bool = True, plain: bool | None = None):
    """Open the run-wide display; stages started inside it draw their bars there.

    ``plain``: print lines instead of bars (default: when standard error is not a terminal).
    """
    plain = (not sys.stderr.isatty()) if plain is None else plain
    if not enabled:
        progress = make_progress(disable=True)
    elif plain:
        progress = PlainProgress()
    else:
        progress = make_progress(transient=False)
    token = _current.set(progress)
    try:
        with progress:
            yield progress
    finally:
        _current.reset(token)


def plain_line(text: str, always: bool = False) -> None:
    """A line for the log of a run with plain progress (``always``: for rich bars too)."""
    progress = _current.get()
    if isinstance(progress, PlainProgress):
        progress.line(text)
    elif always and isinstance(progress, Progress) and not progress.disable:
        progress.console.print(text)


class Bar:
    """One stage's bar: ``advance(n)`` and ``info(text)`` (e.g. live token counts)."""

    def __init__(self, progress, description: str, total: int | None):
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
