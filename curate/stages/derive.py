"""Derive new rows from each row with a plain function (augmentation without an LLM)."""
from __future__ import annotations

from typing import Callable, Iterable

import pandas as pd

from ..errors import StageError
from ..stage import Stage
from ..table import ID, derive_rows, records


class Derive(Stage):
    """Add the rows ``fn(row)`` returns for every row; originals are kept.

    A deterministic augmenter, e.g. swapping a column of the same kind in the question,
    the column list and the query. Each new row gets a fresh ``_id`` and its ``_parent``;
    fields the function leaves out are copied from the parent.

    Args:
        fn: function of the row (a dict) returning a list of dicts (the new rows' fields).
        name: stage name.
        keep_originals: keep the input rows too (default); when False they are rejected
            as ``replaced_by_derived`` only if they produced a new row, else kept.
    """

    def __init__(self, fn: Callable[[dict], Iterable[dict]], name: str | None = None,
                 keep_originals: bool = True, requires=()):
        if not callable(fn):
            raise StageError(name or "derive", f"fn must be callable, got {fn!r}")
        super().__init__(name or "derive")
        self.fn, self.keep_originals, self.requires = fn, keep_originals, tuple(requires)

    def process(self, df: pd.DataFrame):
        new_records, parents = [], []
        for row in records(df):
            produced = self.call_on_row(self.fn, row, row[ID]) or []
            for rec in produced:
                if not isinstance(rec, dict):
                    raise StageError(self.name, f"fn returned {type(rec).__name__} for row "
                                                f"{row[ID]}; expected dicts")
                new_records.append({k: v for k, v in rec.items() if not str(k).startswith("_")})
                parents.append(row[ID])
        new = derive_rows(df, new_records, parents)
        keep = pd.Series(True, index=df.index)
        if not self.keep_originals:
            keep = ~df[ID].isin(set(parents))
        table = pd.concat([df, new], ignore_index=True) if len(new) else df
        mask = list(keep) + [True] * len(new)
        return self.result(table, mask, "replaced_by_derived",
                           "replaced by the rows derived from it", derived=len(new))
