"""Sentence embeddings of a text column (the encoder of
:class:`~curate.stages.dedup_embedding.EmbeddingDedup`), with a sqlite cache of float16
vectors keyed by (model, text), so that a rerun embeds only new texts.
"""
from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CurateError

_SCHEMA = "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)"
_LOOKUP = 900  # keys per SELECT (sqlite's bound-parameter limit is 999 on old builds)


def text_key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()


class EmbeddingCache:
    """A sqlite file of unit vectors keyed by :func:`text_key`; safe to kill mid-write (each
    batch is one transaction)."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.execute(_SCHEMA)
        except sqlite3.Error as error:
            raise CurateError(f"cannot open the embedding cache at {self.path}: {error}; "
                              f"remove the file to start a new one") from None

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        found = {}
        for start in range(0, len(keys), _LOOKUP):
            part = keys[start:start + _LOOKUP]
            marks = ",".join("?" * len(part))
            for key, blob in self._db.execute(
                    f"SELECT key, vector FROM vectors WHERE key IN ({marks})", part):
                found[key] = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
        return found

    def put(self, keys: list[str], vectors: np.ndarray) -> None:
        rows = [(k, v.astype(np.float16).tobytes()) for k, v in zip(keys, vectors)]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)

    def close(self) -> None:
        self._db.close()


def as_texts(values) -> list[str]:
    """A column as text: strings as they are, missing values empty, anything else as str."""
    return ["" if v is None or (isinstance(v, float) and v != v) else
            v if isinstance(v, str) else str(v) for v in values]


def embed_texts(texts: list[str], model=None, cache: EmbeddingCache | str | Path | None = None,
                batch_size: int = 256, name: str = "clusters") -> tuple[np.ndarray, int]:
    """Unit-norm float32 vectors of ``texts`` and how many were encoded (not found in
    ``cache``). Each distinct text is encoded once."""
    from ..stages.dedup_embedding import DEFAULT_MODEL, EmbeddingDedup

    encoder = EmbeddingDedup("text", model=model, batch_size=batch_size, name=name)
    distinct = list(dict.fromkeys(texts))
    model_name = encoder.model or DEFAULT_MODEL
    if encoder._model is not None:  # a loaded object has no name to key its vectors by
        cache = None
    store = EmbeddingCache(cache) if isinstance(cache, (str, Path)) else cache
    try:
        keys = [text_key(model_name, t) for t in distinct]
        known = store.get(keys) if store is not None else {}
        missing = [i for i, k in enumerate(keys) if k not in known]
        if missing:
            fresh = encoder.embed(pd.DataFrame({"text": [distinct[i] for i in missing]}))
            if store is not None:
                store.put([keys[i] for i in missing], fresh)
            known.update({keys[i]: v for i, v in zip(missing, fresh)})
    finally:
        if store is not None and store is not cache:
            store.close()
    if not distinct:
        return np.zeros((len(texts), 0), np.float32), 0
    table = np.stack([known[k] for k in keys])
    where = pd.Index(distinct).get_indexer(texts)
    return table[where], len(missing)
