"""What the LLM loop (:mod:`.base`) leans on: user functions called with the context they
ask for, the progress meter, parts of the health report, the columns a stage writes, a
checker's failures on a candidate row, and the row a ``when`` reads while an estimate plans."""
from __future__ import annotations

import contextlib
import inspect
import time
from typing import Callable

import pandas as pd

from assertions.calling import CheckerCallError, call_checker

from ...core.stage import ROW_ERROR, one_line
from ...core.table import domain_record
from ...errors import StageError
from ...llm.accounting import Usage
from ...llm.types import Failure
from ...progress import task
from .prompts import describe_failure

SAMPLE_SIZE = 5
UNCONSTRAINED_FIX = "; install it as `make` does: pip install --no-deps xgrammar apache-tvm-ffi"


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


@contextlib.contextmanager
def metered(description: str, total: int, usage: Usage):
    """``with metered(name, n, usage) as meter:`` a bar that shows ``usage`` as it grows."""
    with task(description, total) as bar:
        try:
            yield Meter(bar, usage, total)
        finally:
            bar.info(usage.summary())


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


def check_callable(stage: str, what: str, fn, expected: str = "a function") -> None:
    """Refuse a parameter that should be a function (None passes: not given)."""
    if fn is not None and not callable(fn):
        raise StageError(stage, f"{what} must be {expected}, got {fn!r}")


class UserFunction:
    """A user's ``fn(row, **context)``, called with the context names it asks for."""

    def __init__(self, stage: str, what: str, fn: Callable, offered: tuple[str, ...]):
        check_callable(stage, what, fn)
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
    return [{"_id": row_id, "code": failure.code, "reason": failure.reason,
             **({"reply": failure.text[:300]} if failure.text else {})}
            for row_id, failure in items[:limit]]


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


def checker_failures(stage, candidate: dict, row_id) -> list[str] | object:
    """``stage.check``'s failures on a candidate row as ``rule: message`` lines (none
    without a checker); ROW_ERROR when it raised (the row is errored). A field the checker
    needs and the table lacks is a spec mistake: a :class:`StageError`."""
    try:
        found = call_checker(stage.check, candidate, stage.check_fields) if stage.check else []
    except CheckerCallError as error:
        raise StageError(stage.name, str(error), field=error.field) from None
    except Exception as error:
        stage.row_error(row_id, "check_raised", f"the checker raised "
                                                f"{type(error).__name__}: {one_line(error)}")
        return ROW_ERROR
    return [describe_failure(f) for f in found]


def structured_warnings(llm, schema, stats: dict) -> list[str]:
    """``stats["structured"]`` for a stage with a schema; a warning when decoding was
    unconstrained though it need not be (a package missing, the endpoint refusing)."""
    status = getattr(llm, "structured_status", None)
    if schema is None or not callable(status):
        return []
    stats["structured"] = status()
    if "missing" not in stats["structured"] and "refused" not in stats["structured"]:
        return []
    fix = UNCONSTRAINED_FIX if "xgrammar" in stats["structured"] else ""
    return [f"replies were not held to the schema while decoding "
            f"({stats['structured']}), so more of them fail to parse{fix}"]


def column(values: list) -> pd.Series:
    """A column the stage writes: floats as floats, anything else as Python objects."""
    floats = bool(values) and all(isinstance(v, float) for v in values)
    return pd.Series(values, dtype=float if floats else object)


def shown_fields(row: dict, fields: list[str] | None) -> dict:
    """The fields a prompt shows: the named ones, else every domain field."""
    fields_of = domain_record(row)
    return {f: fields_of[f] for f in fields if f in fields_of} if fields else fields_of
