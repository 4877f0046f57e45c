"""The stage contract: a table in; kept, rejected and errored rows and stats out.

Calling a stage on a DataFrame returns the kept rows; ``.run(df)`` returns a
:class:`StageResult`. Subclasses implement :meth:`Stage.process`; the base class owns what
every stage does alike: ids (rows without ``_id`` get one, never changed); required fields
(missing from the table: a :class:`StageError`; missing or mistyped in a row: that row
errors); declared added columns (a data column the input has is never overwritten); the
row-failure policy (a user function that raises errors its row, with the exception and the
row's source, until the errored share passes ``max_errored``); the invariant (every input row
ends kept, rejected or errored, or is replaced by a row derived from it: a lost row raises);
and row order (each part in input order, created rows right after their parent, so that
slices run one by one concatenate to one run's output; ``input_order = False`` opts out).

A stage never changes a row in place but derives a new one
(:func:`~curate.core.table.derive_rows`): checkpoints store only what a stage added.
"""
from __future__ import annotations

import difflib
import re
import sys
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import StageError
from .fingerprint import Fingerprint, brief, describe, fingerprint_of
from .tracebacks import TRACEBACK, first_error, user_traceback
from .table import (ID, ORIGIN, PARENT, REASON, REASON_CODE, SOURCE, assign_ids,
                    domain_columns, empty_like, isin, mark, positions, source_locations)

MISSING, WRONG_TYPE = "missing_field", "wrong_type"
PARTS = ("kept", "rejected", "errored")
REJECTION_ROLES = ("duplicate_of", "similarity", "failures", "reference_match")  # why a row went: rejected rows only
TYPE_WORDS = {str: "text", int: "an integer", float: "a number", bool: "true/false",
              list: "a list", dict: "an object", tuple: "a list"}


@dataclass
class StageResult:
    """What a stage returns: every input row ends in exactly one of the three tables, or is
    replaced by a row derived from it (whose ``_parent`` is its ``_id``). Unpacks as
    ``kept, rejected, errored, stats = stage.run(df)``."""

    kept: pd.DataFrame
    rejected: pd.DataFrame
    errored: pd.DataFrame
    stats: dict = field(default_factory=dict)

    def __iter__(self):
        return iter((self.kept, self.rejected, self.errored, self.stats))

    def __repr__(self) -> str:
        return (f"StageResult(stage={self.stats.get('stage', '?')!r}, kept={len(self.kept)}, "
                f"rejected={len(self.rejected)}, errored={len(self.errored)})")


@dataclass
class RowErrors:
    """Rows a stage could not process, by ``_id``: ``(code, reason, field, traceback)``; and
    the ids of the table the stage was given (to tell a plain partition of it)."""

    input_ids: pd.Series | None = None
    by_id: dict[str, tuple[str, str, str | None, str | None]] = field(default_factory=dict)

    def add(self, row_id, code: str, reason: str, field: str | None = None,
            trace: str | None = None) -> None:
        self.by_id.setdefault(row_id, (code, reason, field, trace))

    def __len__(self) -> int:
        return len(self.by_id)


_row_errors: ContextVar[RowErrors | None] = ContextVar("curate_row_errors", default=None)
ROW_ERROR = object()  # what :meth:`Stage.call` returns for a row whose function raised


class TooManyRowErrors(StageError):
    """More rows errored than the stage's ``max_errored`` share allows; ``result`` holds
    what the stage produced (its errored rows included)."""

    def __init__(self, stage: str, message: str, result: StageResult):
        super().__init__(stage, message)
        self.result = result


_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")


def check_name(name) -> str:
    """A stage's name, which also names its checkpoint folder: text without a path
    separator or a control character."""
    if not isinstance(name, str) or not name.strip() or _UNSAFE_NAME.search(name):
        raise StageError(str(name), "a stage name names its checkpoint folder: use text "
                                    "without '/', '\\' or control characters (e.g. "
                                    "name='dedup_nlq')")
    return name


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def type_words(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(dict.fromkeys(TYPE_WORDS.get(t, t.__name__) for t in types))


def preview(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Stage:
    """Base class of every stage: subclasses set ``requires`` (or override
    :meth:`required_fields`), :meth:`field_types` and :meth:`added_columns`, and implement
    :meth:`process`, returning :meth:`result`. ``kind``: ``"row"`` when a row's fate depends on
    that row alone (filters, LLM stages), ``"global"`` on the whole table (dedup, sampling).

    Args:
        name: the stage's name in the funnel, the report and every rejected row.
        max_errored: the share of input rows that may be errored before the stage stops the
            run (default 0.5; 1.0 never stops).
    """

    kind = "row"
    input_order = True  # run() puts each part in the contract's row order (see above)
    requires: tuple[str, ...] = ()
    max_errored = 0.5
    declares_columns = False  # set True in a class whose only added columns are
    # `added_columns` (not inherited): the check before a run then looks past it

    def __init__(self, name: str | None = None, *, max_errored: float | None = None):
        self.name = check_name(name or _snake(type(self).__name__))
        if max_errored is not None:
            if not isinstance(max_errored, (int, float)) or not 0 <= max_errored <= 1:
                raise StageError(self.name, f"max_errored must be a share in [0, 1], got "
                                            f"{max_errored!r}")
            self.max_errored = float(max_errored)

    # -- what subclasses implement -------------------------------------------------------
    def process(self, df: pd.DataFrame) -> StageResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def required_fields(self) -> tuple[str, ...]:
        """Fields the table must have, and every row must fill (see :meth:`allows_missing`)."""
        return tuple(self.requires)

    def field_types(self) -> dict[str, type | tuple]:
        """Per-row type expectations, e.g. ``{"nlq": str}``; a row that breaks one errors."""
        return {}

    def allows_missing(self) -> bool:
        """True when a row may leave a required field empty (exact dedup compares them)."""
        return False

    def added_columns(self) -> dict[str, str]:
        """The columns this stage writes, each with its role (``{"_dup_of": "duplicate_of"}``):
        ``duplicate_of``, ``similarity``, ``critique``, ``verdict``, ``measure``, ``failures``,
        ``answer``. A column without a leading ``_`` is data, never overwritten; those whose
        role says why a row was rejected (`REJECTION_ROLES`) are left off the kept rows."""
        return {}

    # -- the public contract ---------------------------------------------------------------
    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        return self.run(df).kept

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def prepare_input(self, df: pd.DataFrame) -> pd.DataFrame:
        """The input as the stage works on it (ids, source locations), after the table-level
        checks: not a DataFrame, duplicate ids or a missing field are one-line errors."""
        if not isinstance(df, pd.DataFrame):
            raise StageError(self.name, f"expected a pandas DataFrame, got {type(df).__name__}")
        try:
            df = assign_ids(df)
        except ValueError as error:
            raise StageError(self.name, str(error)) from None
        if SOURCE not in df.columns:  # rows given in memory: point at their position
            df[SOURCE] = [f"<DataFrame>:{i}" for i in range(1, len(df) + 1)]
        self._check_columns(df)
        return df

    def run(self, df: pd.DataFrame) -> StageResult:
        """Run the stage with the row-failure policy, check the invariant, fill in stats."""
        df = self.prepare_input(df)
        bad, checked = self._row_checks(df)
        good = df[~bad].reset_index(drop=True) if bad.any() else df
        errors = RowErrors(good[ID])
        token = _row_errors.set(errors)
        start = time.perf_counter()
        try:
            result = self.process(good)
        finally:
            _row_errors.reset(token)
        seconds = time.perf_counter() - start
        result = self._route_errors(good, result, errors)
        self._only_on_rejected(result)
        partition = (getattr(result, "_partition", False) and not len(errors) and not len(checked)
                     and len(result.kept) + len(result.rejected) + len(result.errored) == len(df))
        if len(checked):
            result.errored = _concat([checked, result.errored])
        if not partition:  # rows were created, replaced or errored: check every id
            self._mark_origin(df, result)
            self._check_invariant(df, result)
            if self.input_order:
                in_input_order(df, result)
        result.stats = {**self._base_stats(df, result, seconds, partition), **result.stats}
        self._check_error_share(df, result)
        return result

    def fingerprint(self) -> Fingerprint:
        """What decides checkpoint reuse: the class (its code) and every public parameter."""
        params = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return fingerprint_of({"class": type(self), "params": params})

    def params(self) -> dict:
        """Public parameters in a readable, JSON-able form (for the manifest): short values as
        they are; a function, an object or a long value by its name and a digest."""
        described = describe({k: v for k, v in vars(self).items() if not k.startswith("_")})
        return {k: brief(v) for k, v in described.items()}

    # -- helpers for subclasses ------------------------------------------------------------
    def result(self, df: pd.DataFrame, keep, reject_codes=None, reject_reasons=None,
               errored: pd.DataFrame | None = None, **stats) -> StageResult:
        """Split ``df`` by a boolean mask ``keep``; rejected rows get ``reject_codes`` and
        ``reject_reasons``: strings, or Series on ``df``'s index (all of it, or the rejected
        rows' labels)."""
        keep = pd.Series(keep, index=df.index).astype(bool)
        drop = ~keep
        if drop.any():
            labels = df.index[drop.to_numpy()]

            def of_rejected(values):
                if not isinstance(values, pd.Series):
                    return values
                return values if values.index.equals(labels) else values.loc[labels]

            rejected = mark(df.loc[drop], self.name, of_rejected(reject_codes),
                            of_rejected(reject_reasons))
        else:
            rejected = empty_like(df)
        errored = empty_like(df) if errored is None else errored
        result = StageResult(df.loc[keep].reset_index(drop=True), rejected.reset_index(drop=True),
                             errored.reset_index(drop=True), dict(stats))
        given = _row_errors.get()
        # a split of exactly the rows the stage was given: no id checks are needed
        result._partition = not len(errored) and given is not None and \
            given.input_ids is not None and df[ID].equals(given.input_ids)
        return result

    def call(self, fn, value, row_id, what: str = "function", field: str | None = None):
        """Call a user function on one row's value. When it raises, the row is errored
        (``<what>_raised``, with the exception) and :data:`ROW_ERROR` is returned."""
        try:
            return fn(value)
        except Exception as error:
            self.row_error(row_id, f"{what}_raised",
                           f"the {what} raised {type(error).__name__}: {one_line(error)}", field)
            return ROW_ERROR

    def row_error(self, row_id, code: str, reason: str, field: str | None = None) -> None:
        """Error one row by id (taken out of kept and rejected when the stage ends); called
        while handling a user function's exception, the row keeps its last frames."""
        errors = _row_errors.get()
        if errors is None:  # process() called directly, outside run()
            raise StageError(self.name, f"row {row_id}: {reason}", field=field)
        errors.add(row_id, code, reason, field, user_traceback(sys.exc_info()[1]))

    # -- the policy ------------------------------------------------------------------------
    def _only_on_rejected(self, result: StageResult) -> None:
        """Drop from the kept rows the columns that describe a rejection."""
        drop = [c for c, role in self.added_columns().items() if role in REJECTION_ROLES
                and c in result.kept.columns]
        if drop:
            result.kept = result.kept.drop(columns=drop)

    def _check_columns(self, df: pd.DataFrame) -> None:
        known = ", ".join(domain_columns(df))
        for name in self.required_fields():
            if name not in df.columns:
                raise StageError(self.name, f"the table has no field {name!r} (fields: {known})"
                                            f"{did_you_mean(name, df.columns)}", field=name)
        for name in self.added_columns():
            if not str(name).startswith("_") and name in df.columns:
                raise StageError(self.name, f"the input already has a column {name!r}, which "
                                            f"this stage writes; give the stage another output "
                                            f"name (outputs={{...}})", field=name)

    def _row_checks(self, df: pd.DataFrame):
        """Rows with a missing or mistyped required field: (mask, their errored table)."""
        bad = pd.Series(False, index=df.index)
        codes = pd.Series("", index=df.index, dtype=object)
        reasons = pd.Series("", index=df.index, dtype=object)
        fields = pd.Series("", index=df.index, dtype=object)
        types = self.field_types()
        names = dict.fromkeys([*self.required_fields(), *types])
        for name in names:
            if name not in df.columns:
                continue
            column = df[name]
            if name in self.required_fields() and not self.allows_missing():
                missing = column.isna() & ~bad
                codes[missing], fields[missing] = MISSING, name
                reasons[missing] = f"field {name!r} is missing (empty or null)"
                bad |= missing
            if name in types:
                wrong = _wrong_type(column, types[name]) & ~bad
                if wrong.any():
                    codes[wrong], fields[wrong] = WRONG_TYPE, name
                    reasons[wrong] = [f"field {name!r} holds {type(v).__name__} {preview(v)}, "
                                      f"expected {type_words(types[name])}"
                                      for v in column[wrong]]
                    bad |= wrong
        if not bad.any():
            return bad, empty_like(df.iloc[0:0])
        return bad, mark(df[bad], self.name, codes[bad], reasons[bad], fields[bad])

    def _route_errors(self, df: pd.DataFrame, result: StageResult, errors: RowErrors):
        if not len(errors):
            return result
        ids = list(errors.by_id)
        result.kept = result.kept[~isin(result.kept[ID], ids)].reset_index(drop=True)
        result.rejected = result.rejected[~isin(result.rejected[ID], ids)].reset_index(drop=True)
        rows = df[isin(df[ID], ids)]
        info = [errors.by_id[i] for i in rows[ID]]
        marked = mark(rows, self.name, [c for c, _, _, _ in info], [r for _, r, _, _ in info],
                      [f for _, _, f, _ in info])
        # always the column (None where no function raised): batches concatenate alike
        marked[TRACEBACK] = pd.Series([t for *_, t in info], index=marked.index, dtype=object)
        already = result.errored[ID] if ID in result.errored.columns else []
        result.errored = _concat([result.errored, marked[~isin(marked[ID], already)]])
        return result

    def _mark_origin(self, df: pd.DataFrame, result: StageResult) -> None:
        """Rows this stage created get ``_origin`` = its name (what made each kept row)."""
        for part in PARTS:
            table = getattr(result, part)
            if not len(table):
                continue
            new = ~isin(table[ID], df[ID])
            if new.any():
                origin = table[ORIGIN] if ORIGIN in table.columns else \
                    pd.Series(None, index=table.index, dtype=object)
                setattr(result, part, table.assign(**{ORIGIN: origin.where(~new, self.name)}))

    def _check_invariant(self, df: pd.DataFrame, result: StageResult) -> None:
        parts = [result.kept, result.rejected, result.errored]
        if any(ID not in part.columns for part in parts):
            raise StageError(self.name, "stage output lost the _id column")
        out_ids = pd.concat([p[ID] for p in parts], ignore_index=True)
        if out_ids.duplicated().any():
            raise StageError(self.name, f"row ids appear twice in the output: "
                                        f"{out_ids[out_ids.duplicated()].head(3).tolist()}")
        present = isin(df[ID], out_ids)
        if not present.all():
            parents = pd.concat([p[PARENT] for p in parts if PARENT in p.columns]).dropna()
            lost = df.loc[~present & ~isin(df[ID], parents), ID]
            if len(lost):
                raise StageError(self.name, f"{len(lost)} input rows were silently lost "
                                            f"(e.g. {sorted(lost)[:3]})")

    def _base_stats(self, df, result: StageResult, seconds: float, partition: bool = False) -> dict:
        created = replaced = 0
        if not partition:
            out = pd.concat([result.kept[ID], result.rejected[ID], result.errored[ID]],
                            ignore_index=True)
            created = int((~isin(out, df[ID])).sum())
            replaced = int((~isin(df[ID], out)).sum())
        return {"stage": self.name, "type": type(self).__name__, "rows_in": len(df),
                "rows_created": created, "kept": len(result.kept),
                "rejected": len(result.rejected), "errored": len(result.errored),
                "replaced": replaced, "reasons": reason_counts(result.rejected),
                "errors": reason_counts(result.errored), "seconds": round(seconds, 3),
                "added_columns": {str(k): v for k, v in self.added_columns().items()},
                **({"first_error": first_error(result.errored)} if len(result.errored) else {})}

    def _check_error_share(self, df: pd.DataFrame, result: StageResult) -> None:
        n, total = len(result.errored), len(df)
        if not n or not total or n / total <= self.max_errored:
            return
        errored = result.errored
        top = errored[REASON_CODE].value_counts().index[0]
        first = errored[errored[REASON_CODE] == top]
        places = ", ".join(source_locations(first))
        raise TooManyRowErrors(self.name, f"{n} of {total} rows errored ({n / total:.0%} > "
                                          f"max_errored {self.max_errored:.0%}); "
                                          f"{first[REASON].iloc[0]} at {places}", result)


def did_you_mean(name: str, known) -> str:
    """``"; did you mean 'nlq'?"`` for the closest of ``known``, or nothing."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _wrong_type(column: pd.Series, types) -> pd.Series:
    types = types if isinstance(types, tuple) else (types,)
    present = column.notna()
    if column.dtype == object:
        def bad(v):
            return not isinstance(v, types) or (isinstance(v, bool) and bool not in types)
        return present & column.map(bad, na_action="ignore").fillna(False).astype(bool)
    if pd.api.types.is_string_dtype(column.dtype):
        return present & (str not in types)
    if pd.api.types.is_bool_dtype(column.dtype):
        return present & (bool not in types)
    if pd.api.types.is_integer_dtype(column.dtype):
        return present & (int not in types and float not in types)
    if pd.api.types.is_float_dtype(column.dtype):
        return present & (float not in types)
    return present & False


def in_input_order(df: pd.DataFrame, result: StageResult) -> None:
    """Sort each part of ``result`` stably into the contract's row order: by the input
    position of the row or of its first ancestor there, an input row before those made from
    it."""
    parts = [getattr(result, name) for name in PARTS]
    out = pd.concat([p[[ID]].assign(**{PARENT: p[PARENT] if PARENT in p.columns else None})
                     for p in parts], ignore_index=True)
    anchor = positions(out[ID], df[ID])
    made = anchor < 0
    parent = out[PARENT].to_numpy(dtype=object)
    link = np.where(made, positions(parent, out[ID]), -1)  # a parent made in this stage
    anchor = np.where(made, positions(parent, df[ID]), anchor)
    for _ in range(64):  # follow parents made in this stage back, by pointer jumping
        pending = (anchor < 0) & (link >= 0)
        if not pending.any():
            break
        anchor[pending], link[pending] = anchor[link[pending]], link[link[pending]]
    key = np.where(anchor < 0, len(df), anchor) * 2 + made
    start = 0
    for name, part in zip(PARTS, parts):
        own, start = key[start:start + len(part)], start + len(part)
        if len(own) > 1 and (own[1:] < own[:-1]).any():
            setattr(result, name, part.iloc[np.argsort(own, kind="stable")]
                    .reset_index(drop=True))


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p) or len(p.columns)]
    nonempty = [p for p in parts if len(p)]
    if not nonempty:
        return parts[0].iloc[0:0] if parts else pd.DataFrame()
    return pd.concat(nonempty, ignore_index=True)


def reason_counts(df: pd.DataFrame) -> dict:
    """Rows by ``_reason_code``, most common first."""
    if not len(df) or REASON_CODE not in df.columns:
        return {}
    return {str(k): int(v) for k, v in df[REASON_CODE].value_counts().items()}


def one_line(error, limit: int = 200) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
