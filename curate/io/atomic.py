"""Atomic writes: a temporary file beside the target, renamed into place (a killed run never
leaves a half-written file), with the umask's file mode; an ``OSError`` while writing (a full
or read-only disk) becomes an :class:`~curate.errors.OutputError` naming the file."""
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


def read_json(path: Path):
    """The JSON in ``path``, or None when it cannot be read."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path, obj) -> Path:
    return write_text(path, json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path, rows: Iterable[dict]) -> Path:
    """Write dicts whose keys may differ as JSON lines (``json.dumps`` of each dict's
    plain-JSON form); a table goes through `write_frame_jsonl`."""
    return write_text_array(path, text_array([json_value(to_jsonable(row)) + "\n"
                                              for row in rows]))


GZIP_MEMBER = 1 << 23  # bytes of text per gzip member (8 MiB)


def gzip_members(data) -> Iterable[bytes]:
    """``data`` gzip-compressed as independent members of `GZIP_MEMBER` bytes, two at a time
    (zlib releases the GIL), at level 1 and without a timestamp (same text, same bytes)."""
    from concurrent.futures import ThreadPoolExecutor

    view = memoryview(data)
    pieces = [view[start:start + GZIP_MEMBER] for start in range(0, len(view), GZIP_MEMBER)]
    if len(pieces) < 2:
        yield zlib.compress(view, 1, wbits=31)
        return
    with ThreadPoolExecutor(2, thread_name_prefix="curate-gzip") as pool:
        yield from pool.map(lambda piece: zlib.compress(piece, 1, wbits=31), pieces)


def write_text_array(path, texts) -> Path:
    """Write Arrow text arrays (one or a list; each text ends with its newline) atomically,
    straight from their buffers; a ``.gz`` path is gzip-compressed (`gzip_members`)."""
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
    """Write every column of every row of a DataFrame as JSON lines (`json_line_array`)."""
    return write_text_array(path, json_line_array(df, end="\n"))
