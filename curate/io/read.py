"""Readers: a table of examples from a file, a folder, a list of dicts or a DataFrame.

Every reader adds a ``_source`` column (``file:line``, or ``<list>:N`` for rows given in
memory) and turns bad input into an :class:`~curate.errors.InputError` naming the file and
line. Files may start with a UTF-8 byte-order mark and may be compressed (``.gz``, ``.bz2``,
``.zst``, ``.lz4``). Flat JSONL is parsed by pyarrow's multi-threaded reader; what it cannot
keep exactly as written (keys that differ by row, mixed types, timestamps) line by line with
``json``.
"""
from __future__ import annotations

import functools
import io
import json
import os
import re
import stat
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..core.json_text import join_texts, text_column
from ..core.table import ID, LINEAGE, SOURCE, frame_from_records, is_bookkeeping
from ..errors import InputError
from .columnar import read_frame
from .json_depth import check_depth

TABLE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
BOM = b"\xef\xbb\xbf"


def table_suffix(path: Path) -> tuple[str, str | None]:
    """``(".jsonl", ".gz")`` for ``rows.jsonl.gz``; ``(".csv", None)`` for ``rows.csv``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        return (suffixes[-2] if len(suffixes) > 1 else ""), suffixes[-1]
    return (suffixes[-1] if suffixes else ""), None


def display_path(path: Path) -> str:
    """The path as a person would write it: relative to the working folder when inside it."""
    resolved = Path(path).resolve()
    return os.path.relpath(resolved) if resolved.is_relative_to(Path.cwd()) else str(resolved)


def check_readable(path: Path) -> None:
    """Refuse a path that is missing, or is neither a regular file nor a folder (a named
    pipe or a device would be read forever)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(path.resolve(), "no such file or folder") from None
    except OSError as error:
        raise InputError(path, f"cannot read the file: {error.strerror or error}") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a character device"
            if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode) else "a socket"
            if stat.S_ISSOCK(mode) else "not a file")
    raise InputError(path, f"not a regular file ({kind}); give a table file or a saved "
                           f"datasets folder")


def _read_bytes(path: Path) -> bytes:
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            data = stream.read()
    except OSError as error:
        raise InputError(path, f"cannot read the file: {error}") from None
    return data[len(BOM):] if data.startswith(BOM) else data


# -- JSONL ------------------------------------------------------------------------------------
def iter_jsonl(path, data: bytes | None = None) -> Iterable[tuple[int, dict]]:
    """Yield ``(line_number, object)`` from a JSONL file; bad lines raise InputError."""
    path = Path(path)
    data = _read_bytes(path) if data is None else data
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(path, f"not UTF-8 text (byte {exc.start + 1} of the line); "
                                   "re-encode the file as UTF-8", line=number) from None
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            end = exc.pos >= len(text.rstrip("\r\n"))
            where = "at the end of the line" if end else f"at column {exc.pos + 1}"
            raise InputError(path, f"malformed JSON: {exc.msg} {where}", line=number) from None
        except RecursionError:  # `check_depth` ran first: only a deep stack gets here
            raise InputError(path, "JSON nested too deeply to read", line=number) from None
        if not isinstance(obj, dict):
            raise InputError(path, f"expected a JSON object per line, got "
                                   f"{type(obj).__name__}", line=number)
        yield number, obj


def _content_lines(data: bytes) -> np.ndarray:
    """1-based numbers of the lines that hold something other than whitespace.

    Only a line whose first byte is whitespace (or which is empty) can be blank, so only
    those few are looked at one by one; the rest is one pass over the line breaks."""
    if not data:
        return np.zeros(0, dtype=np.int64)
    raw = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(raw == 10)
    starts = np.concatenate([[0], breaks + 1])
    starts = starts[starts < len(raw)]
    ends = np.append(breaks, len(raw))
    maybe_blank = np.isin(raw[starts], list(b" \t\r\n\f\v"))
    has = ~maybe_blank
    for i in np.flatnonzero(maybe_blank):
        has[i] = bool(data[starts[i]:ends[i]].strip())
    return np.flatnonzero(has) + 1


def _row_lines(data: bytes, rows: int) -> np.ndarray:
    """The line number of each of ``rows`` rows read from ``data``: 1..n when the file has
    exactly as many lines as rows (no blank line: one count of line breaks), else the
    numbers of the lines with content."""
    count = data.count(b"\n") + (not data.endswith(b"\n"))
    if count == rows:
        return np.arange(1, rows + 1, dtype=np.int64)
    return _content_lines(data)


def _arrow_frame(data: bytes) -> pd.DataFrame | None:
    """The rows through pyarrow's JSON reader, or None when it cannot keep every value
    exactly as written (nested objects, mixed types, values it would reinterpret)."""
    import pyarrow.json as pj

    try:
        table = pj.read_json(pa.BufferReader(data))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        return None
    columns = {}
    for name, column in zip(table.column_names, table.columns):
        kind = column.type
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            return None  # the text would come back as a timestamp: keep what was written
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            if not _scalar_type(kind.value_type) or (pa.types.is_floating(kind.value_type)
                                                     and _past_int64(pc.list_flatten(column))):
                return None
            columns[name] = pd.Series(column.to_pylist(), dtype=object)
        elif pa.types.is_struct(kind) or pa.types.is_map(kind):
            return None
        elif pa.types.is_null(kind):
            columns[name] = pd.Series([None] * len(table), dtype=object)
        elif column.null_count and (pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
            nullable = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
            columns[name] = column.to_pandas(types_mapper=nullable.get)
        elif pa.types.is_floating(kind) and _past_int64(column):
            return None  # an integer past int64 became a float (and so did the column's ints)
        else:
            columns[name] = column.to_pandas()
    return pd.DataFrame(columns, index=pd.RangeIndex(len(table)))


def _past_int64(column) -> bool:
    """Whether a float column holds a whole number outside int64's range: an integer the
    reader could not keep (a float written that large is read exactly by ``json`` too)."""
    big = pc.greater_equal(pc.abs(column), 2.0 ** 63)
    return bool(pc.any(pc.and_(big, pc.equal(pc.floor(column), column))).as_py())


def _scalar_type(kind) -> bool:
    return (pa.types.is_string(kind) or pa.types.is_large_string(kind) or
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_jsonl(path) -> pd.DataFrame:
    path = Path(path)
    data = _read_bytes(path)
    if re.match(rb"\s*\[", data):
        raise InputError(path, "this file holds one JSON array; name it .json or write one "
                               "object per line", line=1)
    check_depth(path, data, lines=True)
    frame = _arrow_frame(data) if data.strip() and _is_utf8(data) else None
    lines = _row_lines(data, len(frame)) if frame is not None else None
    if frame is None or len(lines) != len(frame):
        numbered = list(iter_jsonl(path, data))
        frame = frame_from_records([obj for _, obj in numbered])
        lines = np.array([n for n, _ in numbered], dtype=np.int64)
    return _with_source(frame, display_path(path), lines)


def _with_source(df: pd.DataFrame, where: str, numbers) -> pd.DataFrame:
    """Each row's ``_source``: the one it carries, else its own file and line."""
    if SOURCE not in df.columns:
        df[SOURCE] = source_locations(where, numbers, df.index)
        return df
    missing = df[SOURCE].isna().to_numpy()
    if missing.any():
        values = df[SOURCE].to_numpy(dtype=object, copy=True)
        values[missing] = source_locations(where, np.asarray(numbers)[missing],
                                           df.index[missing]).to_numpy(dtype=object)
        df[SOURCE] = pd.Series(values, index=df.index, dtype=object)
    return df


def source_locations(where: str, numbers, index) -> pd.Series:
    """``"<where>:<number>"`` for each line number, as one text column."""
    numbers = pa.array(np.asarray(numbers, dtype=np.int64))
    return text_column(join_texts([f"{where}:", numbers], len(numbers)), index)


# -- other formats ------------------------------------------------------------------------------
def _read_csv(path: Path, json_columns) -> pd.DataFrame:
    data = _read_bytes(path)
    if not _is_utf8(data):
        raise InputError(path, "not UTF-8 text; re-encode the file as UTF-8",
                         line=_first_non_utf8_line(data))
    try:
        df = pd.read_csv(io.BytesIO(data), encoding="utf-8", keep_default_na=False, dtype=str)
    except pd.errors.ParserError as exc:
        raise InputError(path, f"malformed CSV: {exc}") from None
    except pd.errors.EmptyDataError:
        raise InputError(path, "the file is empty: no rows to read") from None
    for col in json_columns:
        if col not in df.columns:
            raise InputError(path, f"json column {col!r} is not in the file (columns: "
                                   f"{', '.join(df.columns)})")
        df[col] = pd.Series([_parse_cell(path, i + 2, col, v) for i, v in enumerate(df[col])],
                            dtype=object)
    return _with_source(df, display_path(path), np.arange(2, len(df) + 2))


def _first_non_utf8_line(data: bytes) -> int | None:
    lines = enumerate(data.splitlines(), start=1)
    return next((number for number, raw in lines if not _is_utf8(raw)), None)


def _parse_cell(path, line, col, value):
    try:
        return json.loads(value) if value != "" else None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"column {col!r} is not JSON: {exc.msg}", line=line) from None
    except RecursionError:
        raise InputError(path, f"column {col!r}: JSON nested too deeply to read",
                         line=line) from None


def _read_json_array(path: Path) -> pd.DataFrame:
    data = _read_bytes(path)
    check_depth(path, data, lines=False)
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text; re-encode the file as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"malformed JSON: {exc.msg} at column {exc.colno}",
                         line=exc.lineno) from None
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise InputError(path, "expected a JSON array of objects (or use .jsonl)")
    return _with_source(frame_from_records(value), display_path(path),
                        np.arange(1, len(value) + 1))


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        df = read_frame(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(path, f"not a readable parquet file: {exc}") from None
    return _with_source(df, display_path(path), np.arange(1, len(df) + 1))


def _read_datasets_folder(path: Path) -> pd.DataFrame:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise InputError(path, "a folder, but not one saved by datasets' save_to_disk") from None
    if isinstance(ds, datasets.DatasetDict):
        split = "train" if "train" in ds else next(iter(ds))
        ds = ds[split]
    return _with_source(ds.to_pandas(), display_path(path), np.arange(1, len(ds) + 1))


def _read_path(path: Path, json_columns) -> pd.DataFrame:
    check_readable(path)
    if path.is_dir():
        return _read_datasets_folder(path)
    suffix, _ = table_suffix(path)
    readers = {".jsonl": read_jsonl, ".json": _read_json_array, ".parquet": _read_parquet,
               ".csv": functools.partial(_read_csv, json_columns=json_columns)}
    if suffix in readers:
        return readers[suffix](path)
    raise InputError(path, f"unknown table format {''.join(path.suffixes)!r}; use one of "
                           f"{', '.join(TABLE_SUFFIXES)} (optionally compressed: "
                           f"{', '.join(COMPRESSED)}) or a saved datasets folder")


def check_columns(df: pd.DataFrame, where) -> None:
    """Refuse reserved bookkeeping columns and repeated ``_id`` values in a source."""
    reserved = [c for c in df.columns if is_bookkeeping(c) and c not in LINEAGE]
    if reserved:
        raise InputError(where, f"column {reserved[0]!r} is reserved for the library's "
                                f"bookkeeping (columns starting with '_' other than "
                                f"{', '.join(LINEAGE)}); rename it")
    if ID in df.columns:
        repeated = df[ID].notna() & df[ID].duplicated(keep=False)
        if repeated.any():
            rows = df[repeated]
            places = (rows[SOURCE].tolist() if SOURCE in rows.columns else
                      [f"row {i + 1}" for i in rows.index])[:4]
            raise InputError(where, f"_id {rows[ID].iloc[0]!r} and others repeat: rows at "
                                    f"{', '.join(map(str, places))}; ids must be unique")


def read_table(source, json_columns: Iterable[str] = (), origin: str | None = None) -> pd.DataFrame:
    """Read a table from a path (.jsonl, .json, .csv, .parquet, optionally compressed, or a
    saved datasets folder), a ``datasets.Dataset``, a list of dicts, or a DataFrame (copied).

    The result has a ``_source`` column naming each row's file and line (``origin``: the
    label used for rows given in memory, default ``<list>`` / ``<DataFrame>``).
    ``json_columns`` names CSV columns whose cells hold JSON (lists, objects). An empty
    table is an error: a pipeline over nothing is almost always a wrong path.
    """
    if isinstance(source, pd.DataFrame):
        df, where = source.copy(), origin or "<DataFrame>"
        df.index = pd.RangeIndex(len(df))
        _with_source(df, where, np.arange(1, len(df) + 1))
    elif isinstance(source, list):
        where = origin or "<list>"
        if not all(isinstance(r, dict) for r in source):
            raise InputError(where, "expected a list of dicts (one per row)")
        df = _with_source(frame_from_records(source), where, np.arange(1, len(source) + 1))
    elif hasattr(source, "to_pandas") and hasattr(source, "features"):
        where = origin or "<datasets.Dataset>"
        df = _with_source(source.to_pandas(), where, np.arange(1, len(source) + 1))
    else:
        path = Path(source)
        where = str(path)
        df = _read_path(path, tuple(json_columns))
    if len(df) == 0:
        raise InputError(where, "no rows to read: the input is empty")
    check_columns(df, where)
    return df
