"""Progress display shared by every stage: rich bars on a terminal, plain lines in a log.

The runner opens one display for a run (:func:`run_progress`); stages ask it for a bar with
:func:`task`. When standard error is not a terminal (CI, ``nohup``, a pipe) the display prints
plain lines: each stage's start and end (:func:`plain_line`) and one line every
``PLAIN_EVERY`` seconds for a long bar. Outside a run a stage gets a bar of its own on a
terminal, and a silent one otherwise.
"""
from __future__ import annotations

import contextlib
import sys
import threading
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


class PlainProgress:
    """Progress as plain lines: every ``every`` seconds, one line for each bar still open
    (whether or not it moved), so a long stage shows it is alive in a log."""

    def __init__(self, stream=None, every: float = PLAIN_EVERY):
        self.stream, self.every = stream or sys.stderr, every
        self.tasks: dict[int, dict] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add_task(self, description: str, total=None, info: str = "") -> int:
        with self._lock:
            key = len(self.tasks)
            self.tasks[key] = {"description": description, "total": total, "done": 0,
                               "info": info, "start": time.monotonic()}
        return key

    def advance(self, key: int, n: int = 1) -> None:
        self.tasks[key]["done"] += n

    def update(self, key: int, info: str | None = None, total=None) -> None:
        given = {"info": info, "total": total}
        self.tasks[key].update({k: v for k, v in given.items() if v is not None})

    def line(self, text: str) -> None:
        with self._lock:
            print(f"[{datetime.now():%H:%M:%S}] {text}", file=self.stream, flush=True)

    def _report(self) -> None:
        now = time.monotonic()
        for task in list(self.tasks.values()):
            total, done = task["total"], task["done"]
            if (total is not None and done >= total) or now - task["start"] < self.every:
                continue
            count = f"{done:,}/{total:,} ({done / total:.0%})" if total else f"{done:,}"
            info = f", {task['info']}" if task["info"] else ""
            self.line(f"{task['description']}: {count}{info}, {now - task['start']:.0f} s")

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self._report()

    def __enter__(self):
        self._thread = threading.Thread(target=self._beat, name="curate-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        return False


@contextlib.contextmanager
def run_progress(enabled: bool = True, plain: bool | None = None):
    """Open the run-wide display, where stages started inside draw their bars; ``plain``:
    print lines instead of bars (default: when standard error is not a terminal)."""
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
        self._task = progress.add_task(description, total=total, info="")

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)

    def info(self, text: str) -> None:
        self._progress.update(self._task, info=text)

    def total(self, total: int) -> None:
        self._progress.update(self._task, total=total)


@contextlib.contextmanager
def task(description: str, total: int | None):
    """A progress bar for one stage, in the run's display or a private one."""
    progress = _current.get()
    if progress is not None:
        yield Bar(progress, description, total)
        return
    with make_progress(disable=not sys.stderr.isatty(), transient=True) as own:
        yield Bar(own, description, total)
