"""Per-stage checkpoints in a run folder, and the keys that decide whether one is reusable.

A stage's key chains the key of its input with the stage's fingerprint, so changing a
stage's parameters (or anything before it) invalidates it and every stage after it. The
``stats.json`` file is written last and atomically: a checkpoint without it, or with another
key, is recomputed.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd

from ..io import iter_jsonl, frame_from_records, write_json, write_jsonl
from ..stage import StageResult
from ..table import records

PARTS = ("kept", "rejected", "errored")


def chain_key(previous: str, *parts: str) -> str:
    return hashlib.sha256("|".join((previous, *parts)).encode()).hexdigest()[:20]


def table_key(df: pd.DataFrame) -> str:
    """A digest of a table's content (column names and canonical cell values)."""
    h = hashlib.sha256(json.dumps(list(map(str, df.columns))).encode())
    for row in records(df):
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode())
    return h.hexdigest()[:20]


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    rows = [obj for _, obj in iter_jsonl(path)] if path.exists() else []
    df = frame_from_records(rows)
    return df.reindex(columns=list(dict.fromkeys([*columns, *df.columns])))


class CheckpointStore:
    """Checkpoints under ``<run>/checkpoints/NN_<stage>/``."""

    def __init__(self, run_dir: Path):
        self.root = Path(run_dir) / "checkpoints"

    def folder(self, index: int, name: str) -> Path:
        return self.root / f"{index:02d}_{name}"

    def load(self, index: int, name: str, key: str) -> StageResult | None:
        folder = self.folder(index, name)
        try:
            stats = json.loads((folder / "stats.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if stats.get("key") != key:
            return None
        columns = stats.get("columns", {})
        tables = {part: _read(folder / f"{part}.jsonl", columns.get(part, [])) for part in PARTS}
        return StageResult(tables["kept"], tables["rejected"], tables["errored"], stats)

    def save(self, index: int, name: str, key: str, result: StageResult) -> None:
        folder = self.folder(index, name)
        for part in PARTS:
            write_jsonl(folder / f"{part}.jsonl", records(getattr(result, part)))
        result.stats["key"] = key
        result.stats["columns"] = {p: list(map(str, getattr(result, p).columns)) for p in PARTS}
        write_json(folder / "stats.json", result.stats)

    def prune(self, keep_names: set[str]) -> None:
        """Remove checkpoint folders of stages no longer in the spec."""
        if self.root.exists():
            for folder in self.root.iterdir():
                if folder.is_dir() and folder.name not in keep_names:
                    shutil.rmtree(folder)
