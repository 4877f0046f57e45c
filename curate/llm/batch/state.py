"""The record of provider batches in flight: ``batches.json`` next to the response cache.

A batch costs money the moment it is created, so its ids are written as soon as they exist
and a rerun polls the same batches instead of paying again; an entry goes once its results
are cached. No key, prompt or reply is written: an entry's cache keys go, before it, to
``batches/<entry id>.keys``. Every change is an atomic rewrite under a file lock.
"""
from __future__ import annotations

import contextlib
import json
import time
import uuid
from pathlib import Path

from filelock import FileLock

from ...errors import CurateError
from ...io.atomic import output_errors, write_text

STATE_FILE = "batches.json"
KEYS_FOLDER = "batches"
FORMAT = 1


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
        with output_errors(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(self.path.with_name(self.path.name + ".lock")):
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
        write_text(self.path, json.dumps(data, indent=1, sort_keys=True))

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
        """Record a new entry and, first, its requests' keys; return it with its ``id``."""
        entry = {"id": uuid.uuid4().hex[:12], "created": time.time(), **entry,
                 "requests": len(keys)}
        entry["updated"] = time.time()
        write_text(self._keys_path(entry["id"]), "\n".join(keys) + "\n")
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
