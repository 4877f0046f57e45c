"""What the LLM stages share: calling user prompt functions, progress, failure bookkeeping.

Stages report the client's counters in their stats under ``"llm"`` (a flat dict of numbers:
requests, cached, retried, failed, truncated, prompt_tokens, completion_tokens, cost_usd)
and a small sample of failures under ``"failure_sample"``.
"""
from __future__ import annotations

import contextlib
import inspect
import time

import pandas as pd

from ..errors import StageError
from ..progress import task
from ..table import empty_like, mark
from .accounting import Usage
from .limits import one_line
from .types import Failure, as_messages

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
def metered(description: str, total: int):
    """``with metered(name, n) as meter:`` a bar plus a fresh :class:`Usage` (``meter.usage``)."""
    usage = Usage()
    with task(description, total) as bar:
        meter = Meter(bar, usage, total)
        try:
            yield meter
        finally:
            meter.close()


def _arity(fn) -> int | None:
    """How many positional arguments ``fn`` takes (None: any number)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def call_user(stage: str, what: str, fn, *args):
    """Call a user function with as many of ``args`` as it accepts (``prompt(row)`` or
    ``prompt(row, examples)``), turning its exceptions into a one-line :class:`StageError`."""
    n = _arity(fn)
    try:
        return fn(*(args if n is None else args[:n]))
    except StageError:
        raise
    except Exception as error:
        raise StageError(stage, f"the {what} function raised {type(error).__name__}: "
                                f"{one_line(str(error), 200)}") from error


def build_messages(stage: str, fn, *args) -> list[dict]:
    """Call a prompt function and check it returned a string or a list of messages."""
    value = call_user(stage, "prompt", fn, *args)
    try:
        return as_messages(value)
    except TypeError as error:
        raise StageError(stage, f"the prompt function must return a string or a list of "
                                f"{{'role', 'content'}} messages: {error}") from None


def domain_record(row: dict) -> dict:
    """A row's user fields (bookkeeping columns dropped)."""
    return {k: v for k, v in row.items() if not str(k).startswith("_")}


def failure_sample(items: list[tuple[str, Failure]], limit: int = SAMPLE_SIZE) -> list[dict]:
    """The first few failures as plain dicts (row id, code, reason, start of the reply)."""
    out = []
    for row_id, failure in items[:limit]:
        entry = {"_id": row_id, "code": failure.code, "reason": failure.reason}
        if failure.text:
            entry["reply"] = failure.text[:300]
        out.append(entry)
    return out


def errored_frame(stage: str, df: pd.DataFrame, failures: dict[int, Failure]) -> pd.DataFrame:
    """The rows at ``failures``' positions, marked errored with each failure's code and reason."""
    if not failures:
        return empty_like(df)
    positions = sorted(failures)
    rows = df.iloc[positions]
    return mark(rows, stage, [failures[p].code for p in positions],
                [failures[p].reason for p in positions])

