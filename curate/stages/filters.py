"""Deterministic filters: any predicate, a complexity band, and level-1 assertions."""
from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from assertions.calling import CheckerCallError, call_checker, checker_fields, load_function

from ..core.stage import ROW_ERROR, Stage
from ..core.table import ID, row_dicts
from ..errors import StageError
from ..progress import task

_CODE = re.compile(r"^[a-z][a-z0-9_]*$")


def load_callable(ref, stage: str, what: str = "function") -> Callable:
    """A callable or a ``"module:function"`` reference, as a one-line StageError if it fails."""
    try:
        return load_function(ref, what)
    except ValueError as error:
        raise StageError(stage, str(error)) from None


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower() or "filter"


def verdict_of(value, default_code: str) -> tuple[bool, str, str | None]:
    """A predicate's return value as ``(keep, code, sentence)``.

    A bool; ``(False, code)``; or ``(False, code, sentence)``. A second item that is not a
    snake_case code is taken as the sentence, and its code is made from it.
    """
    if isinstance(value, tuple):
        keep = bool(value[0]) if value else False
        code = str(value[1]) if len(value) > 1 and value[1] is not None else default_code
        sentence = str(value[2]) if len(value) > 2 and value[2] is not None else None
        if not _CODE.match(code):
            sentence, code = sentence or code, _slug(code)[:60]
        return keep, code, sentence
    return bool(value), default_code, None


class Filter(Stage):
    """Keep rows for which ``predicate(row)`` is true.

    The predicate returns a bool, or says why a row fails (datatrove's filter contract):
    ``(False, "too_short")`` or ``(False, "too_short", "12 words, fewer than 20")``. Rejected
    rows get that code as ``_reason_code`` and the stats count each code; a plain ``False``
    is counted under the filter's name. A predicate that raises on a row errors that row.

    Args:
        predicate: function of the row (a dict of its fields); with ``batched=True``, a
            function of the whole DataFrame returning a boolean mask (array or Series), or a
            tuple ``(mask, codes)`` / ``(mask, codes, sentences)`` of arrays.
        name: stable snake_case name (default: the function's name, ``filter`` for a lambda).
        requires: fields the predicate reads (checked before running).
        batched: call the predicate once on the table instead of once per row (vectorised
            pandas code: ``lambda df: df["text"].str.len() > 40``).
    """

    declares_columns = True

    def __init__(self, predicate: Callable, name: str | None = None,
                 requires: Sequence[str] = (), batched: bool = False, **kwargs):
        if not callable(predicate):
            raise StageError(name or "filter", f"predicate must be callable, got {predicate!r}")
        default = getattr(predicate, "__name__", "filter")
        super().__init__(name or ("filter" if default == "<lambda>" else _slug(default)),
                         **kwargs)
        self.predicate, self.requires, self.batched = predicate, tuple(requires), batched

    def process(self, df: pd.DataFrame):
        if self.batched:
            return self._batched(df)
        keep, codes, reasons = [], [], []
        with task(self.name, total=len(df)) as bar:
            for row_id, row in zip(df[ID], row_dicts(df)):
                value = self.call(self.predicate, row, row_id, "predicate")
                ok, code, sentence = ((True, "", "") if value is ROW_ERROR
                                      else verdict_of(value, self.name))
                if sentence is None:
                    sentence = (f"{self.name} returned False" if code == self.name
                                else f"{self.name}: {code}")
                keep.append(ok)
                codes.append(code)
                reasons.append(sentence)
                bar.advance()
        return self.result(df, keep, pd.Series(codes, index=df.index, dtype=object),
                           pd.Series(reasons, index=df.index, dtype=object))

    def _batched(self, df: pd.DataFrame):
        try:
            value = self.predicate(df)
        except Exception as error:
            raise StageError(self.name, f"the batched predicate raised {type(error).__name__}: "
                                        f"{error}") from None
        mask, codes, sentences = (value + (None, None))[:3] if isinstance(value, tuple) else \
            (value, None, None)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(df),):
            raise StageError(self.name, f"the batched predicate returned {mask.shape[0] if mask.ndim else 'a scalar'} "
                                        f"values for {len(df)} rows; return one bool per row")
        codes = pd.Series(self.name if codes is None else np.asarray(codes, dtype=object),
                          index=df.index, dtype=object)
        default = f"{self.name} returned False"
        reasons = pd.Series(default if sentences is None else np.asarray(sentences, dtype=object),
                            index=df.index, dtype=object)
        return self.result(df, mask, codes, reasons)


class ComplexityFilter(Stage):
    """Keep rows whose complexity lies within ``[min_value, max_value]``.

    Args:
        measure: function giving a number (or a ``"module:function"`` reference); of the
            field's value when ``field`` is given, else of the whole row. The Honeycomb one
            counts query parts (``assertions.honeycomb.complexity``).
        field: the field to measure (optional).
        min_value, max_value: inclusive bounds; either may be None.
        outputs: ``{"complexity": column}``: where the measured value is written (default
            ``_complexity``, bookkeeping; name a plain column to export it).

    A measure that raises, or returns something that is not a number, errors the row.
    """

    declares_columns = True

    def __init__(self, measure: Callable | str, field: str | None = None, min_value=None,
                 max_value=None, outputs: Mapping[str, str] | None = None,
                 name: str | None = None, **kwargs):
        super().__init__(name or "complexity_filter", **kwargs)
        if min_value is None and max_value is None:
            raise StageError(self.name, "give min_value, max_value or both")
        if min_value is not None and max_value is not None and min_value > max_value:
            raise StageError(self.name, f"min_value {min_value} > max_value {max_value}")
        self.measure = load_callable(measure, self.name, "measure")
        self.field, self.min_value, self.max_value = field, min_value, max_value
        self.column = dict(outputs or {}).get("complexity", "_complexity")
        self.requires = (field,) if field else ()

    def added_columns(self) -> dict[str, str]:
        return {self.column: "measure"}

    def process(self, df: pd.DataFrame):
        values = []
        inputs = df[self.field].tolist() if self.field else row_dicts(df)
        for row_id, value in zip(df[ID], inputs):
            measured = self.call(self.measure, value, row_id, "measure", self.field)
            if measured is not ROW_ERROR and (isinstance(measured, bool) or
                                               not isinstance(measured, (int, float))):
                self.row_error(row_id, "measure_not_a_number", f"the measure returned "
                               f"{type(measured).__name__} {measured!r:.40}; expected a number",
                               self.field)
                measured = ROW_ERROR
            values.append(np.nan if measured is ROW_ERROR else measured)
        series = pd.Series(values, index=df.index, dtype=float)
        df = df.assign(**{self.column: series})
        low = series < self.min_value if self.min_value is not None else series != series
        high = series > self.max_value if self.max_value is not None else series != series
        codes = pd.Series("too_simple", index=df.index, dtype=object).where(low, "too_complex")
        label = self.column.lstrip("_")
        reasons = [f"{label} {v:g} < {self.min_value}" if lo else f"{label} {v:g} > {self.max_value}"
                   for v, lo in zip(series, low)]
        return self.result(df, ~(low | high), codes, pd.Series(reasons, index=df.index))


class AssertionFilter(Stage):
    """Run a level-1 checker on each row; reject rows with any failure.

    The checker is called by the project's one convention (:mod:`assertions.calling`): its
    parameter names are the row fields it reads (``check(query, columns)`` gets the row's
    ``query`` and ``columns``); ``check_fields`` maps parameters whose field is named differently.

    Rejected rows carry ``_reason_code`` ``assertion_<first rule>``, a reason listing every
    failure (``rule: message``), and ``_failures`` (a list of ``{rule, message}``) that a
    repair stage can feed back to a model. Stats count failures per rule. A checker that
    raises on a row errors that row.

    Args:
        check: a checker function or ``"module:function"`` (``"assertions.honeycomb:check"``).
        check_fields: the fields the checker reads: ``{parameter: field}`` for parameters
            named differently from their field (or a list of fields in the order of the
            checker's parameters); the same word on :class:`~curate.Repair`.
    """

    declares_columns = True

    def __init__(self, check: Callable | str,
                 check_fields: Sequence[str] | Mapping[str, str] | None = None,
                 name: str | None = None, **kwargs):
        super().__init__(name or "assertions", **kwargs)
        self.check = load_callable(check, self.name, "checker")
        self.check_fields = dict(check_fields) if isinstance(check_fields, Mapping) else \
            (list(check_fields) if check_fields is not None else None)
        if not checker_fields(self.check, self.check_fields):
            raise StageError(self.name, "the checker takes no named parameters: name the row "
                                        "fields it reads with check_fields={...}")

    def required_fields(self):
        return tuple(dict.fromkeys(checker_fields(self.check, self.check_fields).values()))

    def added_columns(self) -> dict[str, str]:
        return {"_failures": "failures"}

    def _failures(self, row: dict, row_id) -> list | object:
        try:
            return call_checker(self.check, row, self.check_fields)
        except CheckerCallError as error:
            self.row_error(row_id, "missing_field", str(error), error.field)
        except Exception as error:  # a crashing checker must not lose the row
            self.row_error(row_id, "check_raised", f"the checker raised "
                           f"{type(error).__name__}: {error}")
        return ROW_ERROR

    def process(self, df: pd.DataFrame):
        keep, codes, reasons, failures_col = [], [], [], []
        per_rule: Counter = Counter()
        with task(self.name, total=len(df)) as bar:
            for row_id, row in zip(df[ID], row_dicts(df, self.required_fields())):
                found = self._failures(row, row_id)
                found = [] if found is ROW_ERROR else found
                per_rule.update(f.rule for f in found)
                keep.append(not found)
                codes.append(f"assertion_{found[0].rule}" if found else "")
                reasons.append("; ".join(f"{f.rule}: {f.message}" for f in found))
                failures_col.append([{"rule": f.rule, "message": f.message} for f in found]
                                    or None)
                bar.advance()
        df = df.assign(_failures=pd.Series(failures_col, index=df.index, dtype=object))
        return self.result(df, keep, pd.Series(codes, index=df.index),
                           pd.Series(reasons, index=df.index),
                           rule_failures=dict(per_rule.most_common()))
