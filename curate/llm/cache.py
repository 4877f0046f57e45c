"""The persistent response cache: sqlite, content-addressed, safe to kill and to share.

A key is the sha256 of a request's explicit inputs (never the endpoint or the API key).
Each response is committed as it arrives, in WAL mode: a killed process loses only the
requests in flight, and several processes can write the same file at once. The default
file is ``$CURATE_CACHE_DIR/llm.sqlite`` or ``~/.cache/curate/llm.sqlite``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
from contextvars import ContextVar
from pathlib import Path

from ..errors import CurateError

_context_path: ContextVar[Path | None] = ContextVar("curate_llm_cache_path", default=None)

_SCHEMA = """CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)"""


def cache_key(model: str, messages: list[dict], params: dict, sample: int) -> str:
    """sha256 of the request's explicit content (parameters that are ``None`` are left out)."""
    payload = {"model": model, "messages": messages, "sample": int(sample),
               "params": {k: v for k, v in sorted(params.items()) if v is not None}}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_cache_path() -> Path:
    """The cache file used when a client is not given one (see the module docstring)."""
    path = _context_path.get()
    if path is not None:
        return path
    folder = os.environ.get("CURATE_CACHE_DIR")
    base = Path(folder).expanduser() if folder else Path.home() / ".cache" / "curate"
    return base / "llm.sqlite"


@contextlib.contextmanager
def use_default_cache_path(path):
    """Within the block, clients with the default cache use ``path`` (the runner's run folder)."""
    token = _context_path.set(Path(path))
    try:
        yield Path(path)
    finally:
        _context_path.reset(token)


class ResponseCache:
    """A sqlite table of responses keyed by :func:`cache_key`, safe across threads (one
    locked connection) and processes (WAL mode, a busy timeout, ``INSERT OR IGNORE``)."""

    def __init__(self, path):
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=60.0, check_same_thread=False,
                                         isolation_level=None)
            self._conn.execute("PRAGMA busy_timeout = 60000")
            self._retry(lambda: self._conn.execute("PRAGMA journal_mode = WAL"))
            self._conn.execute("PRAGMA synchronous = NORMAL")  # durable against a killed process
            self._retry(lambda: self._conn.execute(_SCHEMA))
        except (OSError, sqlite3.Error) as error:
            raise CurateError(f"cannot open the LLM response cache at {self.path}: {error}; "
                              f"set CURATE_CACHE_DIR or pass LLM(cache=<path>)") from None

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"

    @staticmethod
    def _retry(fn, tries: int = 50):
        # Schema and mode changes can meet a lock another process holds while it starts.
        for attempt in range(tries):
            try:
                return fn()
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or attempt == tries - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        """The stored responses for the keys that have one."""
        found: dict[str, dict] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), 500):
                chunk = unique[start:start + 500]
                rows = self._conn.execute(f"SELECT key, response FROM responses WHERE key IN "
                                          f"({','.join('?' * len(chunk))})", chunk)
                found.update((key, json.loads(response)) for key, response in rows)
        return found

    def put(self, key: str, model: str, response: dict) -> None:
        """Store one response and commit at once (a later kill cannot lose it)."""
        text = json.dumps(response, ensure_ascii=False)
        with self._lock:
            self._retry(lambda: self._conn.execute(
                "INSERT OR IGNORE INTO responses (key, model, response, created) "
                "VALUES (?, ?, ?, ?)", (key, model, text, time.time())))

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def keys(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._conn.execute("SELECT key FROM responses")}

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_open: dict[Path, ResponseCache] = {}
_open_lock = threading.Lock()


def open_cache(path) -> ResponseCache:
    """One :class:`ResponseCache` per file per process."""
    resolved = Path(path).expanduser().resolve()
    with _open_lock:
        if resolved not in _open:
            _open[resolved] = ResponseCache(resolved)
        return _open[resolved]
