"""The table of examples: bookkeeping columns, row ids, lineage and row dicts.

One example is one row of a pandas DataFrame: domain fields are plain columns, bookkeeping
columns start with ``_``: ``_id`` (a hash of the row's content, with an occurrence suffix for
repeats, never reused), ``_parent`` (the row a derived row came from), ``_source`` (where the
row or its first ancestor came from: ``seeds.jsonl:12``), ``_origin`` (the stage that created
the row), ``_stage``, ``_reason_code``, ``_reason``, ``_field`` (why a row was rejected or
errored) and per-stage columns (``_dup_of``, ``_rouge_l``, ``_complexity``...). A source may
carry ``_id``, ``_parent``, ``_source`` and ``_source_name`` (set by
:class:`~curate.stages.sampling.Mix`); any other ``_`` column in a source is an input error.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

ID, PARENT, SOURCE, SOURCE_NAME = "_id", "_parent", "_source", "_source_name"
ORIGIN = "_origin"
STAGE, REASON_CODE, REASON, FIELD = "_stage", "_reason_code", "_reason", "_field"
LINEAGE = (ID, PARENT, SOURCE, SOURCE_NAME, ORIGIN)


def is_bookkeeping(column) -> bool:
    return str(column).startswith("_")


def domain_columns(df: pd.DataFrame) -> list[str]:
    """The user's fields: every column that does not start with ``_``."""
    return [c for c in df.columns if not is_bookkeeping(c)]


def domain_record(row: Mapping) -> dict:
    """A row's user fields (bookkeeping columns dropped)."""
    return {k: v for k, v in row.items() if not is_bookkeeping(k)}


# -- plain values ------------------------------------------------------------------------------
_PLAIN = (str, int, float, bool, type(None))


def to_jsonable(value):
    """Turn a cell into plain JSON types (numpy scalars and arrays, NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if type(value) in _PLAIN:  # first: a manifest of plain values never needs numpy
        return None if type(value) is float and math.isnan(value) else value
    if isinstance(value, (list, tuple)) or isinstance(value, np.ndarray):  # numpy: only then
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def canonical_json(value) -> str:
    """JSON with sorted keys and no spaces: equal content gives equal text."""
    return json.dumps(to_jsonable(value), sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))


def column_values(series: pd.Series, jsonable: bool = False) -> list:
    """A column as plain Python values, missing values (NaN, NA, None) as None.

    ``jsonable``: also turn what an object column may hold (numpy arrays and scalars,
    timestamps) into JSON types; other columns' values are native already.
    """
    values = series.tolist()
    missing = series.isna().to_numpy()
    if missing.dtype == bool and missing.any():
        for i in np.flatnonzero(missing):
            values[i] = None
    if jsonable and series.dtype == object:
        values = [v if v is None or type(v) in (str, int, float, bool) else to_jsonable(v)
                  for v in values]
    elif jsonable and pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = [to_jsonable(v) for v in values]
    return values


def row_dicts(df: pd.DataFrame, columns: Iterable[str] | None = None,
              jsonable: bool = False) -> list[dict]:
    """Rows as dicts of plain values (missing -> None): the domain fields, or ``columns``."""
    names = domain_columns(df) if columns is None else list(columns)
    if not names:
        return [{} for _ in range(len(df))]
    lists = [column_values(df[c], jsonable) for c in names]
    return [dict(zip(names, values)) for values in zip(*lists)]


def records(df: pd.DataFrame) -> list[dict]:
    """Every column of every row as plain-JSON dicts (the JSON lines hold what
    ``json.dumps`` writes of each: :mod:`curate.core.json_text`)."""
    return row_dicts(df, list(df.columns), jsonable=True)


# -- membership and positions, vectorised ---------------------------------------------------------
def _arrow(values):
    if isinstance(values, pd.Series):
        values = values.to_numpy(dtype=object) if values.dtype == object else values.array
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def _arrow_pair(values, among):
    """Both as Arrow arrays of one type (None when they cannot be compared that way)."""
    a, b = _arrow(values), _arrow(among)
    if a.type == b.type:
        return a, b
    try:
        if pa.types.is_null(b.type):
            return a, pa.array([], type=a.type)
        if pa.types.is_null(a.type):
            return pa.array([None] * len(a), type=b.type), b
        return a, b.cast(a.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def isin(values, among) -> np.ndarray:
    """``values.isin(among)`` as a bool array, by Arrow's hash kernel (pandas' own is a
    Python loop for Arrow-backed strings)."""
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    pair = _arrow_pair(values, among)
    if pair is None:
        return pd.Series(values, dtype=object).isin(pd.Series(among, dtype=object)).to_numpy()
    found = pc.is_in(pair[0], value_set=pair[1])
    return found.to_numpy(zero_copy_only=False).astype(bool)


def positions(values, among) -> np.ndarray:
    """For each value, its position in ``among`` (-1 when absent); ``among`` has no repeats."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    pair = _arrow_pair(values, among)
    if pair is None:
        return pd.Index(pd.Series(among, dtype=object)).get_indexer(pd.Series(values, dtype=object))
    found = pc.fill_null(pc.index_in(pair[0], value_set=pair[1]), -1)
    return found.to_numpy(zero_copy_only=False).astype(np.int64)


# -- content hashes and ids ----------------------------------------------------------------------
def _is_nested(series: pd.Series) -> bool:
    if series.dtype != object:
        return False
    sample = series.dropna()
    return bool(len(sample)) and not sample.map(type).isin((str,)).all()


def _cell_json(value) -> str | None:
    """A nested cell as canonical JSON; a value JSON cannot hold by its type and repr."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    try:
        return canonical_json(value)
    except (TypeError, ValueError):
        return f"{type(value).__qualname__}:{value!r}"


def _hashable(series: pd.Series):
    """A column's values, by position, in a form ``hash_pandas_object`` takes: nested cells
    as canonical JSON, categories as their values."""
    if _is_nested(series):
        return series.map(_cell_json).to_numpy()
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.astype(object).to_numpy()
    return series.to_numpy() if series.dtype == object else series.array


def row_hashes(df: pd.DataFrame, columns: Iterable | None = None) -> np.ndarray:
    """A stable 64-bit hash per row of the given columns (default: the domain fields), their
    names included: pandas' siphash with a fixed key, values taken by position."""
    labels = sorted(domain_columns(df) if columns is None else columns, key=str)
    names = [str(label) for label in labels]
    if not len(df):
        return np.zeros(0, dtype=np.uint64)
    salt = np.uint64(int(hashlib.sha256("\x1f".join(names).encode()).hexdigest()[:16], 16))
    if not names:
        return np.full(len(df), salt, dtype=np.uint64)
    frame = pd.DataFrame({i: _hashable(df[label]) for i, label in enumerate(labels)},
                         index=pd.RangeIndex(len(df)))
    return pd.util.hash_pandas_object(frame, index=False).to_numpy() ^ salt


def _hex_id_column(hashes: np.ndarray, index) -> pd.Series:
    """`content_ids` of distinct hashes as a text column built in one piece (no Python
    string per row)."""
    data = hashes.astype(">u8").tobytes().hex().encode("ascii")
    offsets = np.arange(0, 16 * len(hashes) + 1, 16, dtype=np.int64)
    texts = pa.LargeStringArray.from_buffers(len(hashes), pa.py_buffer(offsets),
                                             pa.py_buffer(data))
    return pd.Series(pd.arrays.ArrowStringArray(texts), index=index).astype("str")


def content_ids(hashes: np.ndarray, taken: set[str] | None = None) -> list[str]:
    """Ids from row hashes: their 16-character hex form, made unique by `unique_ids` when
    hashes repeat or meet an id already ``taken`` (distinct hashes are checked as integers)."""
    text = hashes.astype(">u8").tobytes().hex()
    bases = [text[i:i + 16] for i in range(0, len(text), 16)]
    if not taken and pd.Index(hashes).is_unique:
        return bases
    return unique_ids(bases, taken)


def unique_ids(bases: list[str], taken: set[str] | None = None) -> list[str]:
    """``bases`` with ``-1``, ``-2``... appended to repeats and to ids already ``taken``."""
    series = pd.Series(bases, dtype=object)
    occurrence = series.groupby(series, sort=False).cumcount().to_numpy()
    ids = [b if n == 0 else f"{b}-{n}" for b, n in zip(bases, occurrence)]
    taken = set(taken or ())
    if taken or len(set(ids)) != len(ids):
        out, seen = [], set(taken)
        for b in ids:
            candidate, n = b, 0
            while candidate in seen:
                n += 1
                candidate = f"{b}~{n}"
            seen.add(candidate)
            out.append(candidate)
        return out
    return ids


def assign_ids(df: pd.DataFrame) -> pd.DataFrame:
    """Give every row without an ``_id`` a content-hash id (given ids are kept) and ensure
    ``_parent`` exists; a ``ValueError`` names ids that two rows share."""
    df = df.copy() if ID in df.columns and PARENT in df.columns else df.assign()
    for column in (ID, PARENT):
        if column not in df.columns:
            df[column] = pd.Series([None] * len(df), index=df.index, dtype=object)
    missing = df[ID].isna().to_numpy()
    if missing.any():
        hashes = row_hashes(df.loc[missing])
        if missing.all() and pd.Index(hashes).is_unique:  # the usual source: built whole
            df[ID] = _hex_id_column(hashes, df.index)
        else:
            fresh = content_ids(hashes, set(df.loc[~missing, ID]))
            ids = df[ID].astype(object).to_numpy(copy=True)
            ids[missing] = fresh
            df[ID] = ids
    # fresh ids are unique and avoid the given ones by construction: only given ids can repeat
    if not (df.loc[~missing, ID] if missing.any() else df[ID]).is_unique:
        duplicated = df[ID].duplicated(keep=False)
        raise ValueError(f"duplicate _id values: {df.loc[duplicated, ID].unique()[:3].tolist()}")
    df.index = pd.RangeIndex(len(df))
    return df


def table_digest(df: pd.DataFrame) -> str:
    """A digest of a table's content: column names and dtypes, every row's hash, and the
    index (its labels by position) unless it is the default ``0..n-1``."""
    frame = df if df.columns.is_unique else df.set_axis(range(df.shape[1]), axis=1)
    index = df.index
    default = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 \
        and not any(index.names)
    header = [[str(c), str(t)] for c, t in zip(df.columns, df.dtypes)]
    if not default:
        header.append(["index", [str(n) for n in index.names],
                       [str(index.get_level_values(i).dtype) for i in range(index.nlevels)]])
    h = hashlib.sha256(json.dumps(header).encode())
    if len(df):
        h.update(row_hashes(frame, list(frame.columns)).tobytes())
        if not default:
            levels = pd.DataFrame({i: index.get_level_values(i).array
                                   for i in range(index.nlevels)}, index=pd.RangeIndex(len(df)))
            h.update(row_hashes(levels, list(levels.columns)).tobytes())
    return h.hexdigest()[:20]


# -- derived rows and outcomes -------------------------------------------------------------------
def derive_rows(parents: pd.DataFrame, records: list[dict], parent_ids: list[str],
                taken: set[str] | None = None) -> pd.DataFrame:
    """New rows from ``records[i]`` (fields it leaves out are copied from its parent) and
    ``parent_ids[i]``: each gets a fresh id avoiding ``taken`` (default: the parents' ids),
    its ``_parent`` and the parent's ``_source``."""
    if not records:
        return parents.iloc[0:0].copy()
    taken = set(parents[ID]) if taken is None else set(taken)
    position = positions(list(parent_ids), parents[ID])
    if (position < 0).any():
        unknown = [p for p, i in zip(parent_ids, position) if i < 0][:3]
        raise ValueError(f"derive_rows: unknown parent ids {unknown}")
    base = parents.iloc[position]
    fields = domain_columns(parents)
    rows = [{**b, **domain_record(r)} for b, r in zip(row_dicts(base, fields), records)]
    columns = list(dict.fromkeys([*fields, *(k for r in rows for k in r)]))
    out = frame_from_records(rows, columns)
    out[PARENT] = list(parent_ids)
    out[SOURCE] = base[SOURCE].to_numpy() if SOURCE in base.columns else None
    salted = row_hashes(out) ^ row_hashes(out, [PARENT])
    out[ID] = content_ids(salted, taken)
    return out


def frame_from_records(rows: list[dict], columns: list[str] | None = None) -> pd.DataFrame:
    """A DataFrame from dicts that keeps Python values as they are (ints stay ints when
    some are missing, lists and dicts stay whole)."""
    columns = list(dict.fromkeys(k for row in rows for k in row)) if columns is None else columns
    data = {}
    for col in columns:
        values = [row.get(col) for row in rows]
        whole = any(v is None or isinstance(v, (list, dict, tuple)) for v in values)
        data[col] = pd.Series(values, dtype=object if whole else None)
    return pd.DataFrame(data, columns=columns, index=pd.RangeIndex(len(rows)))


def mark(df: pd.DataFrame, stage: str, codes, reasons, field=None) -> pd.DataFrame:
    """``df`` with ``_stage``, ``_reason_code``, ``_reason`` (and ``_field``) set."""
    df = df.copy()
    df[STAGE] = stage
    df[REASON_CODE] = _positional(codes)
    df[REASON] = _positional(reasons)
    if field is not None:
        df[FIELD] = _positional(field)
    return df


def _positional(values):
    """A string, or values taken in row order (a Series' own index is not aligned on)."""
    if isinstance(values, str):
        return values
    if isinstance(values, pd.Series):
        return values.array
    return list(values)


def empty_like(df: pd.DataFrame) -> pd.DataFrame:
    """An empty table with the same columns plus the outcome columns."""
    out = df.iloc[0:0].copy()
    for col in (STAGE, REASON_CODE, REASON):
        if col not in out.columns:
            out[col] = pd.Series(dtype=object)
    return out


def source_locations(df: pd.DataFrame, limit: int = 3) -> list[str]:
    """The first ``limit`` rows' source locations (their ``_source``, else their ``_id``)."""
    head = df.head(limit)
    ids = head[ID] if ID in head.columns else head.index
    sources = head[SOURCE] if SOURCE in head.columns else [None] * len(head)
    return [str(s) if s is not None and s == s else f"row {i}" for s, i in zip(sources, ids)]
