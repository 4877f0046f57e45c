"""Atomic writes, with the umask's file mode and one-line errors for a full or read-only disk.

Every writer writes a temporary file beside its target and renames it into place, so a
killed run never leaves a half-written file that looks complete. An ``OSError`` while
writing (no space left, permission denied, a read-only filesystem) becomes a
:class:`~curate.errors.OutputError` that names the file.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Iterable

import pyarrow as pa

from ..core.json_text import TEXT, json_line_array, json_value, text_array, text_buffer
from ..core.table import to_jsonable
from ..errors import OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def output_errors(path):
    """Turn an ``OSError`` inside the block into an :class:`OutputError` naming ``path``."""
    try:
        yield
    except OutputError:
        raise
    except OSError as error:
        raise OutputError(path, error) from None


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``."""
    path = Path(path)
    with output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    try:
        with output_errors(path):
            yield Path(tmp)
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(path):
    """Yield a temporary folder beside ``path``; on success it replaces ``path``."""
    path = Path(path)
    with output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        with output_errors(path):
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path, obj) -> Path:
    return write_text(path, json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path, rows: Iterable[dict]) -> Path:
    """Write dicts that are not a table (their keys may differ) as JSON lines, each
    ``json.dumps`` of the dict's plain-JSON form, through `write_text_array`; a table goes
    through `write_frame_jsonl`."""
    return write_text_array(path, text_array([json_value(to_jsonable(row)) + "\n"
                                              for row in rows]))


GZIP_MEMBER = 1 << 23  # bytes of text per gzip member (8 MiB)


def gzip_members(data) -> Iterable[bytes]:
    """``data`` gzip-compressed as independent members of `GZIP_MEMBER` bytes each, two
    compressed at a time (zlib releases the GIL); level 1 (fast, about a fifth of the size)
    and no timestamp (the same text gives the same bytes). A gzip reader reads consecutive
    members as one stream."""
    from concurrent.futures import ThreadPoolExecutor

    view = memoryview(data)
    pieces = [view[start:start + GZIP_MEMBER] for start in range(0, len(view), GZIP_MEMBER)]
    if len(pieces) < 2:
        yield zlib.compress(view, 1, wbits=31)
        return
    with ThreadPoolExecutor(2, thread_name_prefix="curate-gzip") as pool:
        yield from pool.map(lambda piece: zlib.compress(piece, 1, wbits=31), pieces)


def write_text_array(path, texts) -> Path:
    """Write Arrow text arrays (one or a list; each text ends with its own newline)
    atomically, straight from their buffers; a ``.gz`` path is gzip-compressed
    (`gzip_members`)."""
    gz = str(path).endswith(".gz")
    if isinstance(texts, (list, tuple)):  # one buffer: the members do not depend on the split
        texts = pa.concat_arrays([t.cast(TEXT) for t in texts]) if texts else \
            pa.array([], type=TEXT)
    data = text_buffer(texts)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            for block in (gzip_members(data) if gz else
                          (data[i:i + GZIP_MEMBER] for i in range(0, len(data), GZIP_MEMBER))):
                fh.write(block)
    return Path(path)


def write_frame_jsonl(path, df) -> Path:
    """Write every column of every row of a DataFrame as JSON lines (each line
    ``json.dumps`` of the row's plain-JSON dict; `json_text.json_line_array`)."""
    return write_text_array(path, json_line_array(df, end="\n"))
