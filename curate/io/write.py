"""Writing a table by its file's suffix, and datasets folders; every write is atomic."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ..core.json_text import json_line_array, text_buffer
from ..core.table import records
from ..errors import InputError
from .atomic import atomic_folder, atomic_path, write_frame_jsonl
from .columnar import write_frame
from .read import TABLE_SUFFIXES, table_suffix


def write_table(df: pd.DataFrame, path) -> Path:
    """Write a table by the file's suffix, atomically: ``.jsonl`` (JSON lines), ``.json``
    (a JSON array, which :func:`~curate.io.read_table` reads back), ``.csv`` (nested cells
    as JSON text) or ``.parquet``; ``.gz``/``.bz2``/``.zst`` after the suffix compresses."""
    path = Path(path)
    suffix, compression = table_suffix(path)
    if suffix not in TABLE_SUFFIXES:
        raise InputError(path, f"unknown table format {''.join(path.suffixes)!r}; use one of "
                               f"{', '.join(TABLE_SUFFIXES)}")
    if suffix == ".parquet" and compression is None:
        return write_frame(df, path)
    if suffix == ".jsonl":
        if compression in (None, ".gz"):
            return write_frame_jsonl(path, df)
        data = text_buffer(json_line_array(df, end="\n"))
    elif suffix == ".json":
        data = (json.dumps(records(df), ensure_ascii=False, indent=1) + "\n").encode("utf-8")
    else:
        flat = pd.DataFrame([{k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict))
                              else v for k, v in r.items()} for r in records(df)],
                            columns=df.columns)
        data = flat.to_csv(index=False).encode("utf-8")
    with atomic_path(path) as tmp:
        if compression is None:
            tmp.write_bytes(data)
        else:
            codec = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}[compression]
            with pa.output_stream(str(tmp), compression=codec) as stream:
                stream.write(data)
    return path


def save_dataset_folder(df: pd.DataFrame, path) -> Path:
    """Save rows as a datasets folder (``datasets.load_from_disk`` reads it back)."""
    import datasets

    with atomic_folder(path) as tmp:
        datasets.Dataset.from_list(records(df)).save_to_disk(str(tmp))
    return Path(path)
