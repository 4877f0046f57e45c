"""The stage contract: a table in; kept, rejected and errored rows and stats out.

A stage is a small object with a name and parameters. Calling it on a DataFrame returns the
kept rows (handy in a notebook); ``.run(df)`` returns a :class:`StageResult`. Subclasses
implement :meth:`Stage.process`; the base class adds ids, checks the fields the stage needs,
times it, and verifies that no row was silently lost.
"""
from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from .errors import StageError
from .fingerprint import describe, fingerprint_of
from .table import ID, PARENT, REASON_CODE, empty_like, mark, with_ids


@dataclass
class StageResult:
    """What a stage returns: every input row ends in exactly one of the three tables.

    A row may also be *replaced* by a row derived from it (repair): the replacement carries
    the original's ``_id`` as its ``_parent``, and the original counts as replaced.
    """

    kept: pd.DataFrame
    rejected: pd.DataFrame
    errored: pd.DataFrame
    stats: dict = field(default_factory=dict)

    def __iter__(self):
        """Unpack as ``kept, rejected, stats = stage.run(df)`` (errored rows: ``.errored``)."""
        return iter((self.kept, self.rejected, self.stats))


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Stage:
    """Base class of every stage.

    Subclasses set ``requires`` (fields the input must have) or override
    :meth:`required_fields`, and implement :meth:`process`, which returns a
    :class:`StageResult` built with :meth:`result`.
    """

    requires: tuple[str, ...] = ()
    field_types: dict = {}

    def __init__(self, name: str | None = None):
        self.name = name or _snake(type(self).__name__)

    # -- what subclasses implement -------------------------------------------------------
    def process(self, df: pd.DataFrame) -> StageResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def required_fields(self) -> tuple[str, ...]:
        return tuple(self.requires)

    # -- the public contract ---------------------------------------------------------------
    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        return self.run(df).kept

    def run(self, df: pd.DataFrame) -> StageResult:
        """Run the stage, check the no-row-lost invariant, and fill in the stats."""
        if not isinstance(df, pd.DataFrame):
            raise StageError(self.name, f"expected a pandas DataFrame, got {type(df).__name__}")
        df = with_ids(df)
        for name in self.required_fields():
            if name not in df.columns:
                known = ", ".join(c for c in df.columns if not str(c).startswith("_"))
                raise StageError(self.name, f"the table has no field {name!r} (fields: {known})",
                                 field=name)
        self._check_types(df)
        start = time.perf_counter()
        result = self.process(df)
        seconds = time.perf_counter() - start
        self._check_invariant(df, result)
        result.stats = {**self._base_stats(df, result, seconds), **result.stats}
        return result

    def fingerprint(self) -> str:
        """A digest of the stage's class and public parameters (decides checkpoint reuse)."""
        params = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return fingerprint_of({"class": describe(type(self)), "params": params})

    def params(self) -> dict:
        """Public parameters in a readable, JSON-able form (for the manifest)."""
        return describe({k: v for k, v in vars(self).items() if not k.startswith("_")})

    # -- helpers for subclasses ------------------------------------------------------------
    def result(self, df: pd.DataFrame, keep, reject_codes=None, reject_reasons=None,
               errored: pd.DataFrame | None = None, **stats) -> StageResult:
        """Split ``df`` by a boolean mask ``keep``; rejected rows get codes and reasons.

        ``reject_codes``/``reject_reasons`` are Series aligned with ``df`` (only the
        rejected positions are read) or single strings.
        """
        keep = pd.Series(keep, index=df.index).astype(bool)
        rejected = df.loc[~keep]
        if len(rejected):
            codes = reject_codes[~keep] if isinstance(reject_codes, pd.Series) else reject_codes
            reasons = (reject_reasons[~keep] if isinstance(reject_reasons, pd.Series)
                       else reject_reasons)
            rejected = mark(rejected, self.name, codes, reasons)
        else:
            rejected = empty_like(df)
        errored = empty_like(df) if errored is None else errored
        return StageResult(df.loc[keep].reset_index(drop=True), rejected.reset_index(drop=True),
                           errored.reset_index(drop=True), dict(stats))

    def _check_types(self, df: pd.DataFrame) -> None:
        for name, types in self.field_types.items():
            if name not in df.columns:
                continue
            bad = ~df[name].map(lambda v: isinstance(v, types))
            if bad.any():
                value = df.loc[bad, name].iloc[0]
                wanted = " or ".join(t.__name__ for t in (types if isinstance(types, tuple)
                                                          else (types,)))
                raise StageError(self.name, f"expected {wanted}, got {type(value).__name__} "
                                            f"{value!r:.60} in row {df.loc[bad, ID].iloc[0]} "
                                            f"({int(bad.sum())} such rows)", field=name)

    def call_on_row(self, fn, value, row_id, field: str | None = None):
        """Call a user function on one row's value; a crash becomes a StageError that
        names the stage, the field and the row instead of a bare traceback."""
        try:
            return fn(value)
        except Exception as exc:
            raise StageError(self.name, f"{getattr(fn, '__name__', 'function')} failed on row "
                                        f"{row_id}: {type(exc).__name__}: {exc}",
                             field=field) from exc

    def _base_stats(self, df, result: StageResult, seconds: float) -> dict:
        in_ids = set(df[ID])
        out = pd.concat([result.kept[[ID]], result.rejected[[ID]], result.errored[[ID]]])
        created = int((~out[ID].isin(in_ids)).sum())
        reasons = Counter(result.rejected[REASON_CODE]) if len(result.rejected) else Counter()
        errors = Counter(result.errored[REASON_CODE]) if len(result.errored) else Counter()
        return {"stage": self.name, "type": type(self).__name__, "rows_in": len(df),
                "rows_created": created, "kept": len(result.kept),
                "rejected": len(result.rejected), "errored": len(result.errored),
                "replaced": len(in_ids - set(out[ID])),
                "reasons": dict(reasons.most_common()), "errors": dict(errors.most_common()),
                "seconds": round(seconds, 3)}

    def _check_invariant(self, df: pd.DataFrame, result: StageResult) -> None:
        parts = [result.kept, result.rejected, result.errored]
        for part in parts:
            if ID not in part.columns:
                raise StageError(self.name, "stage output lost the _id column")
        out_ids = pd.concat([p[ID] for p in parts])
        if out_ids.duplicated().any():
            raise StageError(self.name, f"row ids appear twice in the output: "
                                        f"{out_ids[out_ids.duplicated()].head(3).tolist()}")
        missing = set(df[ID]) - set(out_ids)
        parents = set(pd.concat([p[PARENT] for p in parts if PARENT in p.columns]).dropna())
        lost = missing - parents
        if lost:
            raise StageError(self.name, f"{len(lost)} input rows were silently lost "
                                        f"(e.g. {sorted(lost)[:3]})")
