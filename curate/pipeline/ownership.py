"""What this library wrote in a run folder, so that a run removes or replaces nothing else.

The first run into a folder writes ``.curate-run.json``; a folder is taken only when it is
new or empty or holds an earlier version's run, else it is refused with one line. Every path
a run is about to write is recorded first, so a killed run leaves a record of what it may
have written. A run removes or replaces only recorded paths, never a source it reads, and
removes the temporary files its own atomic writers left behind when killed.
"""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

from ..errors import CurateError, OutputError
from ..io.atomic import output_errors, read_json, write_text

RECORD = ".curate-run.json"
IGNORED = (".lock",)  # the run-folder lock: taken before a run knows what it writes
TOP_FILES = ("manifest.json", "report.html", "errored.jsonl", "rejected.jsonl.gz")
_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # `curate.io.atomic`'s temporary names
_CHECKPOINT = re.compile(r"^\d{2,}_.+$")


class NotARunFolder(CurateError):
    """``--out`` names a folder that holds files this library did not write."""


def _our_checkpoint(folder: Path) -> bool:
    stats = read_json(folder / "stats.json")
    return folder.is_dir() and bool(_CHECKPOINT.match(folder.name)) and \
        isinstance(stats, dict) and "key" in stats and "format" in stats


def _written_before(out: Path) -> set[str]:
    """The paths an earlier version of this library left in ``out`` (it kept no record)."""
    from ..formats.chat import FORMATS

    wrote = {name for name in TOP_FILES if (out / name).is_file()}
    manifest = read_json(out / "manifest.json")
    export = out / "export"
    if export.is_dir():
        named = [Path(p).name for p in ((manifest or {}).get("export") or {}).values()
                 if isinstance(p, str)]
        names = named or [f"{fmt}.jsonl" for fmt in FORMATS] + ["dataset"]
        wrote |= {f"export/{name}" for name in names if (export / name).exists()}
    checkpoints = out / "checkpoints"
    wrote |= {f"checkpoints/{name}" for name in ("00_source.parquet", "00_source.parquet.key")
              if (checkpoints / name).is_file()}
    if checkpoints.is_dir():
        wrote |= {f"checkpoints/{p.name}" for p in checkpoints.iterdir() if _our_checkpoint(p)}
    return wrote


def _earlier_run(out: Path) -> bool:
    manifest = read_json(out / "manifest.json")
    return (isinstance(manifest, dict) and "stages" in manifest) or \
        any(p.startswith("checkpoints/") for p in _written_before(out))


class RunFolder:
    """The record of what runs of this library wrote in ``out`` (see the module docstring).

    Paths are recorded relative to the folder (``export/sharegpt.jsonl``); methods take a
    ``Path`` under the folder or such a relative text.
    """

    def __init__(self, out: Path, wrote: set[str], sources=()):
        self.out, self.wrote = Path(out), set(wrote)
        self.sources = [Path(s).resolve() for s in sources]
        self._lock = threading.RLock()  # checkpoints are written on background threads

    @classmethod
    def claim(cls, out, sources=()) -> "RunFolder":
        """The record of ``out``: read, or made for a new, empty or older run folder; a
        folder holding anything else is refused."""
        out = Path(out)
        record = read_json(out / RECORD)
        if isinstance(record, dict):
            folder = cls(out, set(record.get("wrote", [])), sources)
        else:
            others = sorted(p.name for p in out.iterdir() if p.name not in IGNORED
                            and p.name != RECORD and not p.name.startswith(".write-test-"))
            if others and not _earlier_run(out):
                shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
                raise NotARunFolder(f"{out} holds files this library did not write ({shown}); "
                                    f"a run there could replace them: choose a new or empty "
                                    f"folder for --out")
            folder = cls(out, _written_before(out), sources)
            folder._save()
        return folder

    # -- the record ------------------------------------------------------------------------
    def _save(self) -> None:
        write_text(self.out / RECORD, json.dumps(
            {"library": "curate-workbench", "format": 1,
             "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "wrote": sorted(self.wrote)}, indent=1) + "\n")

    def relative(self, path) -> str:
        """``path`` relative to the folder: a ``Path`` under it, or a relative text."""
        return path.relative_to(self.out).as_posix() if isinstance(path, Path) else str(path)

    def owns(self, path) -> bool:
        return self.relative(path) in self.wrote

    def add(self, *paths) -> None:
        """Record paths this run is about to write; a path that holds something this library
        did not write, or a source, is refused."""
        with self._lock:
            new = []
            for rel in map(self.relative, paths):
                self._not_a_source(rel)
                if rel not in self.wrote:
                    if (self.out / rel).exists() or (self.out / rel).is_symlink():
                        raise OutputError(self.out / rel, "it holds a file this library did "
                                                          "not write; move it or choose "
                                                          "another --out")
                    new.append(rel)
            if new:
                self.wrote.update(new)
                self._save()

    # -- removing ----------------------------------------------------------------------------
    def remove(self, path, forget: bool = False) -> None:
        """Remove ``path`` when a run wrote it; for a folder that a run did not write as a
        whole (``export``), remove what runs wrote in it, and the folder once empty.
        The record keeps the path (a run writes it again) unless ``forget``."""
        with self._lock:
            rel = self.relative(path)
            target = self.out / rel
            if rel in self.wrote:
                self._not_a_source(rel)
                _delete(target)
                if forget:
                    self.wrote.discard(rel)
                    self._save()
            elif target.is_dir() and not target.is_symlink():
                for child in sorted(p for p in self.wrote if p.startswith(rel + "/")):
                    self.remove(child, forget)
                with contextlib.suppress(OSError):
                    target.rmdir()  # only when empty

    def remove_temporary(self) -> None:
        """Remove the temporary files and folders (``.<name>.<random>.tmp``) that this
        library's writers left in the folders a run writes, when a run was killed."""
        folders = [self.out, self.out / "export", self.out / "checkpoints"]
        folders += [self.out / p for p in self.wrote if p.startswith("checkpoints/")]
        for folder in folders:
            if not folder.is_dir() or folder.is_symlink():
                continue
            for entry in folder.iterdir():
                if _TEMP.match(entry.name) and not entry.is_symlink():
                    with output_errors(entry):
                        _delete(entry)

    # -- sources ---------------------------------------------------------------------------
    def check(self, paths=()) -> None:
        """Before a run writes anything: refuse when a source lies where it may write
        (a recorded path, or one of ``paths``) or the folder lies inside a source folder."""
        out = self.out.resolve()
        for source in self.sources:
            if source.is_dir() and out.is_relative_to(source):
                raise NotARunFolder(f"the run folder {self.out} lies inside the source folder "
                                    f"{source}; choose an --out outside it")
        for rel in [*sorted(self.wrote), *map(self.relative, paths)]:
            self._not_a_source(rel)

    def _not_a_source(self, rel: str) -> None:
        target = (self.out / rel).resolve()
        for source in self.sources:
            if source == target or source.is_relative_to(target):
                raise NotARunFolder(f"the source {source} lies where this run writes "
                                    f"({self.out / rel}); move it out of the run folder or "
                                    f"choose another --out")


def prepare_folder(out: Path) -> None:
    """Create the run folder, or say in one line why it cannot be one."""
    if out.exists() and not out.is_dir():
        raise OutputError(out, "it is a file, not a folder; choose another --out")
    with output_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
