"""Readers and writers for tables of examples.

Every reader returns a DataFrame and turns bad input into an :class:`InputError` that names
the file and line. Every writer is atomic: it writes a temporary file beside the target and
renames it into place, so a killed run never leaves a half-written file that looks complete.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import pandas as pd

from .errors import InputError
from .table import to_jsonable

TABLE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


# -- atomic writes ---------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path, obj) -> Path:
    return write_text(path, json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path, rows: Iterable[dict]) -> Path:
    """Write dicts as JSON lines (numpy values and NaN made plain), atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(to_jsonable(row), ensure_ascii=False) + "\n")
    return Path(path)


def write_table(df: pd.DataFrame, path) -> Path:
    """Write a table by the file's suffix (.jsonl, .csv, .parquet), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return write_jsonl(path, df.to_dict("records"))
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        elif suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            raise InputError(path, f"unknown table format {suffix!r}; use one of {TABLE_SUFFIXES}")
    return path


# -- reading ---------------------------------------------------------------------------------
def frame_from_records(rows: list[dict]) -> pd.DataFrame:
    """A DataFrame from dicts that keeps ints as ints when some values are missing."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    data = {}
    for col in columns:
        values = [row.get(col) for row in rows]
        if any(v is None for v in values):
            data[col] = pd.Series(values, dtype=object)
        else:
            data[col] = pd.Series(values)
    return pd.DataFrame(data, columns=columns)


def iter_jsonl(path) -> Iterable[tuple[int, dict]]:
    """Yield ``(line_number, object)`` from a JSONL file; bad lines raise InputError."""
    path = Path(path)
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(path, f"not UTF-8 text (byte {exc.start} of the line); "
                                       "re-encode the file as UTF-8", line=number) from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(path, f"malformed JSON: {exc.msg} at column {exc.colno}",
                                 line=number) from None
            if not isinstance(obj, dict):
                raise InputError(path, f"expected a JSON object per line, got "
                                       f"{type(obj).__name__}", line=number)
            yield number, obj


def read_jsonl(path) -> pd.DataFrame:
    return frame_from_records([obj for _, obj in iter_jsonl(path)])


def _read_csv(path: Path, json_columns) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, encoding="utf-8", keep_default_na=False, dtype=str)
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text; re-encode the file as UTF-8",
                         line=_first_non_utf8_line(path)) from None
    except pd.errors.ParserError as exc:
        raise InputError(path, f"malformed CSV: {exc}") from None
    except pd.errors.EmptyDataError:
        raise InputError(path, "the file is empty: no rows to read") from None
    for col in json_columns:
        if col not in df.columns:
            raise InputError(path, f"json column {col!r} is not in the file (columns: "
                                   f"{', '.join(df.columns)})")
        df[col] = [_parse_cell(path, i + 2, col, v) for i, v in enumerate(df[col])]
    return df


def _first_non_utf8_line(path: Path) -> int | None:
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def _parse_cell(path, line, col, value):
    try:
        return json.loads(value) if value != "" else None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"column {col!r} is not JSON: {exc.msg}", line=line) from None


def read_table(source, json_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Read a table from a path (.jsonl, .json, .csv, .parquet, a saved datasets folder),
    a ``datasets.Dataset``, a list of dicts, or a DataFrame (copied).

    ``json_columns`` names CSV columns whose cells hold JSON (lists, objects).
    An empty table is an error: a pipeline over nothing is almost always a wrong path.
    """
    if isinstance(source, pd.DataFrame):
        df, where = source.copy(), "the DataFrame"
    elif isinstance(source, list):
        df, where = frame_from_records(source), "the list of rows"
    elif hasattr(source, "to_pandas") and hasattr(source, "features"):
        df, where = source.to_pandas(), "the datasets.Dataset"
    else:
        path = Path(source)
        where = str(path)
        df = _read_path(path, tuple(json_columns))
    if len(df) == 0:
        raise InputError(where, "no rows to read: the input is empty")
    return df


def _read_path(path: Path, json_columns) -> pd.DataFrame:
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_dir():
        return _read_datasets_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".json":
        return _read_json_array(path)
    if suffix == ".csv":
        return _read_csv(path, json_columns)
    if suffix == ".parquet":
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise InputError(path, f"not a readable parquet file: {exc}") from None
    raise InputError(path, f"unknown table format {suffix!r}; use one of "
                           f"{', '.join(TABLE_SUFFIXES)} or a saved datasets folder")


def _read_json_array(path: Path) -> pd.DataFrame:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text; re-encode the file as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"malformed JSON: {exc.msg}", line=exc.lineno) from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise InputError(path, "expected a JSON array of objects (or use .jsonl)")
    return frame_from_records(data)


def _read_datasets_folder(path: Path) -> pd.DataFrame:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise InputError(path, "a folder, but not one saved by datasets' save_to_disk") from None
    if isinstance(ds, datasets.DatasetDict):
        split = "train" if "train" in ds else next(iter(ds))
        ds = ds[split]
    return ds.to_pandas()


def save_dataset_folder(df: pd.DataFrame, path) -> Path:
    """Save rows as a datasets folder (``datasets.load_from_disk`` reads it back)."""
    import datasets

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    datasets.Dataset.from_list([to_jsonable(r) for r in df.to_dict("records")]).save_to_disk(str(tmp))
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path
