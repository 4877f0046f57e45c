"""The table of examples: bookkeeping columns, ids and lineage.

One example is one row of a pandas DataFrame. Domain fields are plain columns; bookkeeping
columns start with ``_``:

- ``_id``: stable id given when the row enters (a content hash, with an occurrence suffix
  for repeated content), never reused;
- ``_parent``: the ``_id`` a derived row came from (augmentation, repair), else None;
- ``_stage``, ``_reason_code``, ``_reason``: on rejected or errored rows, which stage
  dropped the row, a stable snake_case code and a sentence a person can act on.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

ID, PARENT, STAGE, REASON_CODE, REASON = "_id", "_parent", "_stage", "_reason_code", "_reason"
BOOKKEEPING = (ID, PARENT, STAGE, REASON_CODE, REASON)


def domain_columns(df: pd.DataFrame) -> list[str]:
    """The user's fields: every column that does not start with ``_``."""
    return [c for c in df.columns if not str(c).startswith("_")]


def to_jsonable(value):
    """Turn a cell into plain JSON types (numpy scalars and arrays, NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def canonical_json(value) -> str:
    """JSON with sorted keys and no spaces: equal content gives equal text."""
    return json.dumps(to_jsonable(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_hash(record: Mapping, salt: str = "") -> str:
    """A short hash of a row's domain fields (and an optional salt such as a parent id)."""
    fields = {k: v for k, v in record.items() if not str(k).startswith("_")}
    digest = hashlib.sha1((salt + canonical_json(fields)).encode("utf-8")).hexdigest()
    return digest[:12]


def _unique_ids(hashes: Iterable[str], taken: set[str]) -> list[str]:
    ids = []
    for h in hashes:
        candidate, n = h, 0
        while candidate in taken:
            n += 1
            candidate = f"{h}-{n}"
        taken.add(candidate)
        ids.append(candidate)
    return ids


def with_ids(df: pd.DataFrame) -> pd.DataFrame:
    """Give every row without an ``_id`` a content-hash id, and ensure ``_parent`` exists.

    Rows that already carry an id keep it, so ids stay stable through a pipeline.
    """
    df = df.copy()
    if ID not in df.columns:
        df[ID] = None
    if PARENT not in df.columns:
        df[PARENT] = None
    missing = df[ID].isna()
    if missing.any():
        taken = set(df.loc[~missing, ID])
        records = df.loc[missing].to_dict("records")
        df.loc[missing, ID] = _unique_ids((content_hash(r) for r in records), taken)
    if df[ID].duplicated().any():
        dupes = df.loc[df[ID].duplicated(), ID].head(3).tolist()
        raise ValueError(f"duplicate _id values in the table: {dupes}")
    df.index = pd.RangeIndex(len(df))
    return df


def derive_rows(parents: pd.DataFrame, records: list[dict], parent_ids: list[str],
                taken: set[str] | None = None) -> pd.DataFrame:
    """Build new rows derived from parent rows: each gets a fresh id and its ``_parent``.

    ``records[i]`` holds the new row's fields (missing domain fields are copied from its
    parent); ``parent_ids[i]`` is the parent's ``_id``. ``taken`` is the set of ids already
    in use (updated in place) so that a derived row never reuses an id.
    """
    taken = set(parents[ID]) if taken is None else taken
    by_id = parents.set_index(ID, drop=False)
    rows = []
    for record, pid in zip(records, parent_ids):
        base = {k: v for k, v in by_id.loc[pid].items() if not str(k).startswith("_")}
        base.update(record)
        base[PARENT] = pid
        rows.append(base)
    hashes = [content_hash(r, salt=str(r[PARENT])) for r in rows]
    for row, new_id in zip(rows, _unique_ids(hashes, taken)):
        row[ID] = new_id
    columns = list(dict.fromkeys([*parents.columns, *(k for r in rows for k in r)]))
    return pd.DataFrame(rows, columns=columns) if rows else parents.iloc[0:0].copy()


def mark(df: pd.DataFrame, stage: str, codes, reasons) -> pd.DataFrame:
    """Return ``df`` with ``_stage``, ``_reason_code`` and ``_reason`` set (rejected/errored rows)."""
    df = df.copy()
    df[STAGE] = stage
    df[REASON_CODE] = list(codes) if not isinstance(codes, str) else codes
    df[REASON] = list(reasons) if not isinstance(reasons, str) else reasons
    return df


def empty_like(df: pd.DataFrame) -> pd.DataFrame:
    """An empty table with the same columns plus the rejection columns."""
    out = df.iloc[0:0].copy()
    for col in (STAGE, REASON_CODE, REASON):
        if col not in out.columns:
            out[col] = pd.Series(dtype=object)
    return out


def records(df: pd.DataFrame) -> list[dict]:
    """Rows as plain-JSON dicts (NaN -> None), the form every writer uses."""
    return [to_jsonable(r) for r in df.to_dict("records")]
