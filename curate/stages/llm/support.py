"""What the LLM loop (:mod:`.base`) leans on: user functions called with the context they
ask for, the progress meter, the failure sample of the health report, and the row a
``when`` reads while an estimate plans (columns no reply has written yet)."""
from __future__ import annotations

import contextlib
import inspect
import time
from typing import Callable

from ...errors import StageError
from ...llm.accounting import Usage
from ...llm.types import Failure
from ...progress import task

SAMPLE_SIZE = 5


class Meter:
    """Advances a stage's progress bar and shows the live token/cost/cache line."""

    def __init__(self, bar, usage: Usage, total: int):
        self.bar, self.usage, self.total = bar, usage, total
        self._shown = 0.0

    def advance(self, n: int = 1) -> None:
        self.bar.advance(n)
        now = time.monotonic()
        if now - self._shown > 0.1:
            self._shown = now
            self.bar.info(self.usage.summary())

    def grow(self, n: int) -> None:
        self.total += n
        self.bar.total(self.total)

    def close(self) -> None:
        self.bar.info(self.usage.summary())


@contextlib.contextmanager
def metered(description: str, total: int, usage: Usage):
    """``with metered(name, n, usage) as meter:`` a bar that shows ``usage`` as it grows."""
    with task(description, total) as bar:
        meter = Meter(bar, usage, total)
        try:
            yield meter
        finally:
            meter.close()


def _parameters(fn) -> tuple[list[str], list[str], bool] | None:
    """(names after the first, the required ones among them, takes **kwargs); None if
    the signature cannot be read."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        params = params[1:]
    names = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    required = [p.name for p in params if p.default is p.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return names, required, any(p.kind is p.VAR_KEYWORD for p in params)


class UserFunction:
    """A user's ``fn(row, **context)``, called with the context names it asks for."""

    def __init__(self, stage: str, what: str, fn: Callable, offered: tuple[str, ...]):
        if not callable(fn):
            raise StageError(stage, f"{what} must be a function, got {fn!r}")
        self.stage, self.what, self.fn, self.offered = stage, what, fn, offered
        info = _parameters(fn)
        self._all = info is None or info[2]
        self._names = [] if info is None else [n for n in info[0] if n in offered]
        unknown = [] if info is None else [n for n in info[1] if n not in offered]
        if unknown:
            hint = f"{what}(row, {', '.join(offered)})" if offered else f"{what}(row)"
            raise StageError(stage, f"the {what} function asks for {unknown[0]!r}, which this "
                                    f"stage does not provide (it provides: "
                                    f"{', '.join(offered) or 'nothing beyond the row'}); "
                                    f"write it as {hint}")

    def __call__(self, row, **context):
        chosen = context if self._all else {k: context[k] for k in self._names if k in context}
        return self.fn(row, **chosen)

    def fingerprint(self):
        from ...core.fingerprint import fingerprint_of
        return fingerprint_of(self.fn)


def failure_sample(items: list[tuple[str, Failure]], limit: int = SAMPLE_SIZE) -> list[dict]:
    """The first few failures as plain dicts (row id, code, reason, start of the reply)."""
    out = []
    for row_id, failure in items[:limit]:
        entry = {"_id": row_id, "code": failure.code, "reason": failure.reason}
        if failure.text:
            entry["reply"] = failure.text[:300]
        out.append(entry)
    return out


def add_counts(total: dict, more: dict) -> dict:
    """``total`` with ``more`` added in: numbers summed, nested dicts of counts merged."""
    for key, value in more.items():
        if isinstance(value, dict):
            add_counts(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value
    return total


class Unknown(Exception):
    """A ``when`` function read a column that no reply has written yet."""


class PlannedRow(dict):
    """A row as a ``when`` sees it while an estimate plans: reading one of ``unknown`` (a
    column an earlier LLM stage writes) raises :class:`Unknown`, and the row counts as
    chosen (the estimate's upper bound)."""

    def __init__(self, row: dict, unknown: set):
        super().__init__(row)
        self._unknown = unknown

    def _check(self, key):
        if key in self._unknown:
            raise Unknown(key)

    def __getitem__(self, key):
        self._check(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._check(key)
        return super().get(key, default)

    def __contains__(self, key):
        self._check(key)
        return super().__contains__(key)
