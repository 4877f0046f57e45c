"""Deterministic filters: any predicate, a complexity band, and level-1 assertions."""
from __future__ import annotations

import importlib
import re
from collections import Counter
from typing import Callable, Mapping, Sequence

import pandas as pd

from ..errors import StageError
from ..progress import task
from ..stage import Stage
from ..table import ID, mark, records


def _as_failures(result) -> list[tuple[str, str]]:
    """Normalise a checker's return value to ``[(rule, message), ...]``."""
    if result is None or result is True:
        return []
    if result is False:
        return [("check_failed", "the check returned False")]
    if isinstance(result, str):
        return [("check_failed", result)]
    out = []
    for failure in result:
        if hasattr(failure, "rule"):
            out.append((str(failure.rule), str(getattr(failure, "message", failure.rule))))
        elif isinstance(failure, (tuple, list)) and len(failure) == 2:
            out.append((str(failure[0]), str(failure[1])))
        else:
            out.append(("check_failed", str(failure)))
    return out


def load_callable(ref: str | Callable, stage: str) -> Callable:
    """Accept a callable or a ``"module:function"`` reference."""
    if callable(ref):
        return ref
    if not isinstance(ref, str) or ":" not in ref:
        raise StageError(stage, f"expected a function or 'module:function', got {ref!r}")
    module, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise StageError(stage, f"cannot load {ref!r}: {exc}") from None


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower() or "filter"


class Filter(Stage):
    """Keep rows for which ``predicate(row)`` is true.

    The predicate returns a bool, or ``(False, "reason")`` to say why a row fails (the
    datatrove filter contract). Rejected rows get ``_reason_code`` = the filter's name.

    Args:
        predicate: function of the row (a dict of its fields).
        name: stable snake_case name, used as stage name and reason code.
        requires: fields the predicate reads (checked before running).
    """

    def __init__(self, predicate: Callable[[dict], object], name: str | None = None,
                 requires: Sequence[str] = ()):
        if not callable(predicate):
            raise StageError(name or "filter", f"predicate must be callable, got {predicate!r}")
        super().__init__(name or _slug(getattr(predicate, "__name__", "filter")))
        self.predicate, self.requires = predicate, tuple(requires)

    def process(self, df: pd.DataFrame):
        keep, reasons = [], []
        with task(self.name, total=len(df)) as bar:
            verdicts = []
            for row in records(df):
                verdicts.append(self.call_on_row(self.predicate, row, row[ID]))
                bar.advance()
        for verdict in verdicts:
            ok, why = (verdict[0], verdict[1]) if isinstance(verdict, tuple) else (verdict, None)
            keep.append(bool(ok))
            reasons.append(why or f"{self.name} returned False")
        return self.result(df, keep, self.name, pd.Series(reasons, index=df.index))


class ComplexityFilter(Stage):
    """Keep rows whose complexity lies within ``[min_value, max_value]``.

    Args:
        measure: function giving a number; of the field's value when ``field`` is given,
            else of the whole row. The Honeycomb one counts query parts
            (``assertions.honeycomb.complexity``).
        field: the field to measure (optional).
        min_value, max_value: inclusive bounds; either may be None.
        column: where the measured value is stored (default ``complexity``).
    """

    def __init__(self, measure: Callable | str, field: str | None = None, min_value=None,
                 max_value=None, column: str = "complexity", name: str | None = None):
        super().__init__(name or "complexity_filter")
        if min_value is None and max_value is None:
            raise StageError(self.name, "give min_value, max_value or both")
        if min_value is not None and max_value is not None and min_value > max_value:
            raise StageError(self.name, f"min_value {min_value} > max_value {max_value}")
        self.measure = load_callable(measure, self.name)
        self.field, self.min_value, self.max_value, self.column = field, min_value, max_value, column
        self.requires = (field,) if field else ()

    def process(self, df: pd.DataFrame):
        values = []
        for row in records(df):
            value = self.call_on_row(self.measure, row[self.field] if self.field else row,
                                     row[ID], self.field)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise StageError(self.name, f"the measure returned {type(value).__name__} "
                                            f"{value!r:.40} for row {row[ID]}; expected a number",
                                 field=self.field)
            values.append(value)
        df = df.assign(**{self.column: values})
        series = pd.Series(values, index=df.index, dtype=float)
        low = series < self.min_value if self.min_value is not None else series != series
        high = series > self.max_value if self.max_value is not None else series != series
        codes = pd.Series("too_simple", index=df.index).where(low, "too_complex")
        reasons = [f"{self.column} {v:g} < {self.min_value}" if lo else
                   f"{self.column} {v:g} > {self.max_value}" for v, lo in zip(series, low)]
        return self.result(df, ~(low | high), codes, pd.Series(reasons, index=df.index))


class AssertionFilter(Stage):
    """Run a level-1 checker on named fields; reject rows with any failure.

    Rejected rows carry ``_reason_code`` ``assertion_<first rule>``, a reason listing every
    failure (``rule: message``), and a ``failures`` column (list of ``{rule, message}``)
    that a repair stage can feed back to a model. Stats count failures per rule.

    Args:
        check: a checker function or ``"module:function"`` (e.g.
            ``"assertions.honeycomb:check"``) returning a list of failures with ``.rule``
            and ``.message`` (tuples or strings also work).
        fields: how checker arguments map to row fields: a list (positional) or a dict
            ``{argument: field}``.
    """

    def __init__(self, check: Callable | str, fields: Sequence[str] | Mapping[str, str],
                 name: str | None = None):
        super().__init__(name or "assertions")
        self.check = load_callable(check, self.name)
        self.fields = dict(fields) if isinstance(fields, Mapping) else list(fields)
        if not self.fields:
            raise StageError(self.name, "fields is empty: name the row fields the checker reads")

    def required_fields(self):
        return tuple(self.fields.values() if isinstance(self.fields, dict) else self.fields)

    def _call(self, row: dict):
        if isinstance(self.fields, dict):
            return self.check(**{arg: row[f] for arg, f in self.fields.items()})
        return self.check(*(row[f] for f in self.fields))

    def _checked(self, row: dict, errored_ids: list, errors: list, bar) -> list:
        bar.advance()
        try:
            return _as_failures(self._call(row))
        except Exception as exc:  # a crashing checker must not lose the row
            errored_ids.append(row[ID])
            errors.append(f"checker raised {type(exc).__name__}: {exc}")
            return []

    def process(self, df: pd.DataFrame):
        keep, codes, reasons, failures_col = [], [], [], []
        per_rule, errored_ids, errors = Counter(), [], []
        with task(self.name, total=len(df)) as bar:
            results = [self._checked(row, errored_ids, errors, bar) for row in records(df)]
        for failures in results:
            per_rule.update(rule for rule, _ in failures)
            keep.append(not failures)
            codes.append(f"assertion_{failures[0][0]}" if failures else "")
            reasons.append("; ".join(f"{r}: {m}" for r, m in failures))
            failures_col.append([{"rule": r, "message": m} for r, m in failures] or None)
        df = df.assign(failures=failures_col)
        is_error = df[ID].isin(errored_ids)
        errored = mark(df[is_error], self.name, "checker_error", errors) if errored_ids else None
        res = self.result(df[~is_error], pd.Series(keep, index=df.index)[~is_error],
                          pd.Series(codes, index=df.index)[~is_error],
                          pd.Series(reasons, index=df.index)[~is_error], errored=errored,
                          rule_failures=dict(per_rule.most_common()))
        res.kept = res.kept.drop(columns=["failures"])
        return res
