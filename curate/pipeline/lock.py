"""The run-folder lock: one run at a time per folder.

``filelock``'s advisory lock on ``<run>/.lock`` (the file holds the owner's pid, host and
start time): the system releases it however its owner exits, so a dead run's lock is taken
over, and a live owner stops a second run at once with one line naming it.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import CurateError

LOCK_NAME = ".lock"


class FolderInUse(CurateError):
    """Another live process is running into the same run folder."""


def _owner(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    host = "" if info.get("host") == socket.gethostname() else f" on {info.get('host')}"
    return f"pid {info.get('pid', '?')}{host} since {info.get('since', '?')}"


@contextlib.contextmanager
def run_folder_lock(folder: Path):
    """Hold the folder's lock for the block, or raise :class:`FolderInUse`."""
    path = Path(folder) / LOCK_NAME
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise FolderInUse(f"run folder {folder} is in use by {_owner(path)}; wait for "
                          f"that run to finish or choose another --out") from None
    try:
        path.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since":
                                    datetime.now(timezone.utc).isoformat(timespec="seconds")}))
        yield
    finally:
        with contextlib.suppress(OSError):
            path.write_text("")
        lock.release()
