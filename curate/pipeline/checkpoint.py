"""Per-stage checkpoints in a run folder, and the keys that decide whether one is reusable.

A stage's key chains its input's key with its fingerprint, so changing a stage (or anything
before it) invalidates it and every stage after it, and a rerun knows before running which
stages it can reuse.

A checkpoint stores what the stage *added*, not the rows it passed through: per part (kept,
rejected, errored) a Parquet file with each row's position in the input (``_pos``) and in
the part (``_at``) and the columns the stage added, plus the rows it created, whole, in a
second file. Loading takes the passed-through rows from the input (the same, by the chain of
keys). ``stats.json`` is written last, atomically, with the file sizes: a checkpoint
without it, with another key or with a file of another size is recomputed.
"""
from __future__ import annotations

import contextlib
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.stage import StageResult
from ..core.table import ID, canonical_json, positions, row_dicts
from ..io.atomic import output_errors, read_json, write_json
from ..io.columnar import read_frame, write_frame

PARTS = ("kept", "rejected", "errored")
STORED = ("key", "format", "parts", "files", "fingerprint", "input")  # not the stage's stats
FORMAT = 2
_CHECKED_ROWS = 200  # passed-through rows compared with the input before trusting the format


def chain_key(previous: str, *parts: str) -> str:
    return hashlib.sha256("|".join((previous, *parts)).encode()).hexdigest()[:20]


def stage_stats(stats: dict) -> dict:
    """A checkpoint's saved stats without what only the checkpoint needs."""
    return {k: v for k, v in stats.items() if k not in STORED}


def size_of(path: Path) -> int | None:
    """Bytes of a file, or of every file in a folder; None when there is nothing."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size if path.exists() else None


def _unchanged(input_df: pd.DataFrame, part: pd.DataFrame, pos: np.ndarray, columns) -> bool:
    """Whether a sample of passed-through rows still equals the input rows."""
    through = np.flatnonzero(pos >= 0)
    if not len(through) or not columns:
        return True
    pick = through[np.linspace(0, len(through) - 1, min(len(through), _CHECKED_ROWS)).astype(np.int64)]
    mine = row_dicts(part.iloc[pick], columns)
    theirs = row_dicts(input_df.iloc[pos[pick]], columns)
    return all(canonical_json(a) == canonical_json(b) for a, b in zip(mine, theirs))


def _encode(input_df: pd.DataFrame, part: pd.DataFrame, pos: np.ndarray):
    """``(passed, created, mode)``: the two frames to store for one part, whose rows sit at
    ``pos`` in the input (-1: created by the stage)."""
    inputs = [c for c in part.columns if c in input_df.columns]
    added = [c for c in part.columns if c not in input_df.columns]
    at = np.arange(len(part), dtype=np.int64)
    through = pos >= 0
    if not _unchanged(input_df, part, pos, [c for c in inputs if c != ID]):
        return None, part.assign(_at=at), "whole"
    passed = part.loc[through, added].assign(_pos=pos[through], _at=at[through])
    created = part.loc[~through].assign(_at=at[~through]) if (~through).any() else None
    return passed.reset_index(drop=True), created, "added"


class CheckpointStore:
    """Checkpoints under ``<run>/checkpoints/NN_<stage>/``."""

    def __init__(self, run_dir: Path, owner=None):
        self.root = Path(run_dir) / "checkpoints"
        self.owner = owner  # the folder's `RunFolder` record, when checkpoints are written

    def folder(self, index: int, name: str) -> Path:
        return self.root / f"{index:02d}_{name}"

    def stored(self, index: int, name: str) -> dict | None:
        """The saved stats of the checkpoint in the stage's folder, whatever its key."""
        stats = read_json(self.folder(index, name) / "stats.json")
        return stats if isinstance(stats, dict) else None

    def entry(self, index: int, name: str, key: str) -> dict | None:
        """The saved stats of a checkpoint that is complete and has this key, else None."""
        stats = self.stored(index, name)
        if stats is None or stats.get("key") != key or stats.get("format") != FORMAT:
            return None
        folder = self.folder(index, name)
        try:
            intact = all(size_of(folder / f) == size for f, size in stats.get("files", {}).items())
        except OSError:  # a file it cannot read: recomputed
            return None
        return stats if intact else None

    def save(self, index: int, name: str, key: str, input_df: pd.DataFrame,
             result: StageResult, origin: dict | None = None) -> None:
        """Save a stage's result; ``origin`` (its fingerprint and input key) is kept to say
        why a later run recomputes it."""
        folder = self.folder(index, name)
        self.owner.add(folder)  # refuses a folder this library did not write
        with output_errors(folder):
            if folder.exists():
                shutil.rmtree(folder)
        files, parts = {}, {}
        frames = {part: getattr(result, part) for part in PARTS}
        found = [part for part in PARTS if len(frames[part])]
        # one look-up of every part's ids among the input's (one hash table of the input)
        where = positions(pd.concat([frames[p][ID] for p in found], ignore_index=True),
                          input_df[ID]) if found else np.zeros(0, dtype=np.int64)
        cuts = np.cumsum([len(frames[p]) for p in found])[:-1]
        pos_of = dict(zip(found, np.split(where, cuts)))
        for part in PARTS:
            frame = frames[part]
            passed, created, mode = _encode(input_df, frame, pos_of[part]) if len(frame) \
                else (None, None, "empty")
            for suffix, stored in (("", passed), (".new", created)):
                if stored is not None:
                    path = write_frame(stored, folder / f"{part}{suffix}.parquet")
                    files[path.name] = path.stat().st_size
            parts[part] = {"rows": len(frame), "columns": list(map(str, frame.columns)),
                           "mode": mode}
        stats = {**result.stats, **(origin or {}), "key": key, "format": FORMAT, "parts": parts,
                 "files": files}
        write_json(folder / "stats.json", stats)

    def load(self, index: int, name: str, stats: dict, input_df: pd.DataFrame) -> StageResult:
        folder = self.folder(index, name)
        tables = []
        for part in PARTS:
            info = stats["parts"][part]
            passed = folder / f"{part}.parquet"
            created = folder / f"{part}.new.parquet"
            pieces = []
            if passed.exists():
                stored = read_frame(passed)
                base = input_df.iloc[stored.pop("_pos").to_numpy()].reset_index(drop=True)
                for column in stored.columns:
                    base[column] = stored[column].values
                pieces.append(base)
            if created.exists():
                pieces.append(read_frame(created))
            frame = pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else \
                (pieces[0] if pieces else input_df.iloc[0:0])
            if len(pieces) > 1 or "_at" in frame.columns:
                frame = frame.sort_values("_at", kind="stable").drop(columns="_at")
            tables.append(frame.reindex(columns=info["columns"]).reset_index(drop=True))
        return StageResult(*tables, stage_stats(stats))

    def prune(self, keep_names: set[str]) -> None:
        """Remove the checkpoints of stages no longer in the spec: only folders a run of this
        library wrote (another tool's folders here, a trainer's ``step_*``, stay)."""
        if self.root.exists():
            for folder in self.root.iterdir():
                if folder.is_dir() and folder.name not in keep_names and self.owner.owns(folder):
                    with contextlib.suppress(OSError):
                        self.owner.remove(folder, forget=True)
