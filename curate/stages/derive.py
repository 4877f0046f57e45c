"""Derive new rows from each row with a plain function (augmentation without an LLM)."""
from __future__ import annotations

from typing import Callable, Iterable

import pandas as pd

from ..core.stage import ROW_ERROR, Stage
from ..core.table import ID, derive_rows, isin, row_dicts
from ..errors import StageError

KEEPS = ("all", "new")


class Derive(Stage):
    """Add the rows ``fn(row)`` returns for every row.

    A deterministic augmenter, e.g. swapping a column of the same kind in the question,
    the column list and the query. Each new row gets a fresh ``_id``, its ``_parent`` and
    its parent's ``_source``; fields the function leaves out are copied from the parent.
    A function that raises on a row, or returns something other than dicts, errors it.

    Args:
        fn: function of the row (a dict) returning a list of dicts (the new rows' fields).
        name: stage name.
        keep: ``"all"`` (default) keeps the input rows and the new ones; ``"new"`` replaces
            each row that produced new rows by them (counted as replaced; a row that
            produced none is kept).
        requires: fields ``fn`` reads (checked before running).
    """

    def __init__(self, fn: Callable[[dict], Iterable[dict]], name: str | None = None,
                 keep: str = "all", requires=(), **kwargs):
        if not callable(fn):
            raise StageError(name or "derive", f"fn must be callable, got {fn!r}")
        super().__init__(name or "derive", **kwargs)
        if keep not in KEEPS:
            raise StageError(self.name, f"keep must be one of {KEEPS}, got {keep!r}")
        self.fn, self.keep, self.requires = fn, keep, tuple(requires)

    def _produce(self, row: dict, row_id) -> list[dict]:
        produced = self.call(self.fn, row, row_id, "fn")
        if produced is ROW_ERROR or not produced:
            return []
        if isinstance(produced, dict) or not all(isinstance(r, dict) for r in produced):
            self.row_error(row_id, "fn_bad_result", f"fn returned {type(produced).__name__}; "
                                                    f"expected a list of dicts")
            return []
        return [{k: v for k, v in r.items() if not str(k).startswith("_")} for r in produced]

    def process(self, df: pd.DataFrame):
        new_records, parents = [], []
        for row_id, row in zip(df[ID], row_dicts(df)):
            for rec in self._produce(row, row_id):
                new_records.append(rec)
                parents.append(row_id)
        new = derive_rows(df, new_records, parents)
        originals = df[~isin(df[ID], parents)] if self.keep == "new" else df
        table = pd.concat([originals, new], ignore_index=True) if len(new) else originals
        return self.result(table, [True] * len(table), derived=len(new))
