"""The record of provider batches in flight: a small JSON file next to the response cache.

A batch costs money the moment it is created, so its ids are written down as soon as they
exist: the input file's id right after the upload, the intent to create the batch just
before the call (``status: "creating"`` and ``create_until``, when that call's time is up),
the batch's id right after it is created, its status whenever it changes. A run that is killed and started again reads
them back and polls the same batches instead of paying for the work again. An entry is
removed once its results are in the response cache (and its failed lines resubmitted or
given up on).

The file is ``batches.json`` in the response cache's folder (under a pipeline run:
``<run>/cache/batches.json``). It holds no key, no prompt and no reply: endpoint (without
credentials), model, ids, status, counts and timestamps. The cache keys of each batch's
requests (which are also its lines' ``custom_id``) are written once, before the entry, to
``batches/<entry id>.keys`` beside it, so the record itself stays small however large the
batches. Every change rewrites the record atomically (temporary file, fsync, rename) under
a file lock, so processes sharing a cache folder do not lose each other's entries and a
kill never leaves a half-written file.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

from ..errors import CurateError

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system: threads are still serialised
    fcntl = None

STATE_FILE = "batches.json"
KEYS_FOLDER = "batches"
FORMAT = 1
_thread_lock = threading.Lock()


def state_path_for(cache_path) -> Path:
    """Where the batch record of a response cache file lives."""
    return Path(cache_path).expanduser().resolve().parent / STATE_FILE


class BatchState:
    """Read and change the batch record (each change is one locked, atomic rewrite)."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"BatchState({str(self.path)!r})"

    @contextlib.contextmanager
    def _locked(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path.with_name(self.path.name + ".lock"), "a+")
        except OSError as error:
            raise CurateError(f"cannot write the batch record {self.path}: "
                              f"{error.strerror or error}") from None
        with _thread_lock, handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"format": FORMAT, "batches": {}}
        except (OSError, ValueError) as error:
            raise CurateError(f"the batch record {self.path} cannot be read ({error}); "
                              f"move it away to start afresh (batches in flight are then "
                              f"submitted again)") from None
        data.setdefault("batches", {})
        return data

    def _write(self, data: dict) -> None:
        _write_atomically(self.path, json.dumps(data, indent=1, sort_keys=True))

    def _keys_path(self, local_id: str) -> Path:
        return self.path.parent / KEYS_FOLDER / f"{local_id}.keys"

    # -- reading ------------------------------------------------------------------------
    def entries(self) -> dict[str, dict]:
        """Every recorded batch, by local id."""
        with self._locked():
            return self._read()["batches"]

    def keys_of(self, local_id: str) -> list[str]:
        """The cache keys of an entry's requests (none if its keys file is gone)."""
        try:
            return self._keys_path(local_id).read_text(encoding="ascii").split()
        except OSError:
            return []

    def of(self, endpoint: str | None, model: str) -> list[dict]:
        """This endpoint's and model's entries, oldest first, each with its ``keys``."""
        found = [{**e, "keys": self.keys_of(e["id"])} for e in self.entries().values()
                 if e.get("endpoint") == endpoint and e.get("model") == model]
        return sorted(found, key=lambda e: e.get("created", 0))

    # -- changing -----------------------------------------------------------------------
    def add(self, entry: dict, keys: list[str]) -> dict:
        """Record a new entry and its requests' keys (keys first: an entry always has
        them); returns the entry, with its local ``id``."""
        entry = {"id": uuid.uuid4().hex[:12], "created": time.time(), **entry,
                 "requests": len(keys)}
        entry["updated"] = time.time()
        _write_atomically(self._keys_path(entry["id"]), "\n".join(keys) + "\n")
        with self._locked():
            data = self._read()
            data["batches"][entry["id"]] = entry
            self._write(data)
        return entry

    def update(self, local_id: str, **changes) -> None:
        with self._locked():
            data = self._read()
            if local_id in data["batches"]:
                data["batches"][local_id].update(changes, updated=time.time())
                self._write(data)

    def remove(self, local_id: str) -> None:
        with self._locked():
            data = self._read()
            if data["batches"].pop(local_id, None) is not None:
                self._write(data)
        with contextlib.suppress(OSError):
            self._keys_path(local_id).unlink()


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync it, rename it into place."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as error:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise CurateError(f"cannot write the batch record {path}: "
                          f"{error.strerror or error}") from None
