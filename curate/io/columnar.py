"""Tables to and from Parquet, keeping every Python value a cell held: columns Arrow holds
exactly are stored natively; other object columns (keys that differ by row, mixed types) as
one JSON text per cell, named in the file's schema metadata and decoded on reading."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ..core.table import to_jsonable
from .atomic import atomic_path

META_KEY = b"curate.columns"
COMPRESSION = "zstd"


def _encode_object_column(series: pd.Series):
    """``(arrow array, how)``: native when Arrow keeps the values exactly, else JSON text."""
    values = series.tolist()
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        array = None
    if array is not None and _exact(array.type):
        return array, "object"
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    texts = [None if v is None or (isinstance(v, float) and v != v) else dumps(to_jsonable(v))
             for v in values]
    return pa.array(texts, type=pa.large_string()), "json"


def _exact(kind) -> bool:
    """Types whose values come back from ``to_pylist`` exactly as they went in."""
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _exact(kind.value_type) and not pa.types.is_null(kind.value_type)
    return kind in (pa.string(), pa.large_string(), pa.null(), pa.bool_(), pa.int64(),
                    pa.float64())


def to_arrow(df: pd.DataFrame):
    """A pyarrow Table of ``df`` (no index), object columns encoded as above."""
    plain = [c for c in df.columns if df[c].dtype != object]
    table = pa.Table.from_pandas(df[plain], preserve_index=False) if plain else None
    arrays, encoded = {}, {}
    for name in df.columns:
        if df[name].dtype == object:
            arrays[name], encoded[str(name)] = _encode_object_column(df[name])
        else:
            arrays[name] = table.column(str(name))
    out = pa.table({str(k): v for k, v in arrays.items()}) if len(df.columns) else \
        pa.table({"__empty__": pa.nulls(len(df))})
    metadata = dict(table.schema.metadata or {}) if table is not None else {}
    metadata[META_KEY] = json.dumps({"encoded": encoded, "rows": len(df)}).encode()
    return out.replace_schema_metadata(metadata)


def from_arrow(table) -> pd.DataFrame:
    """The DataFrame that :func:`to_arrow` stored."""
    meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    encoded = meta.get("encoded", {})
    if table.column_names == ["__empty__"]:
        return pd.DataFrame(index=pd.RangeIndex(meta.get("rows", table.num_rows)))
    plain = [n for n in table.column_names if n not in encoded]
    df = table.select(plain).to_pandas() if plain else \
        pd.DataFrame(index=pd.RangeIndex(table.num_rows))
    loads = json.JSONDecoder().decode
    for name, how in encoded.items():
        values = table.column(name).to_pylist()
        if how == "json":
            values = [None if v is None else loads(v) for v in values]
        df[name] = pd.Series(values, dtype=object, index=df.index)
    return df[table.column_names]


def write_frame(df: pd.DataFrame, path) -> Path:
    """Write ``df`` as a zstd-compressed Parquet file, atomically."""
    import pyarrow.parquet as pq

    table = to_arrow(df)
    # the file is opened here, not by Parquet's writer: a writer that fails as it starts
    # (a full disk) leaves its file open for as long as its traceback lives
    with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink:
        pq.write_table(table, sink, compression=COMPRESSION)
    return Path(path)


def read_frame(path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a file written by :func:`write_frame` (or any Parquet file)."""
    import pyarrow.parquet as pq

    return from_arrow(pq.read_table(path, columns=columns))
