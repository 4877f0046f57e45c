"""Run a pipeline into a run folder: plan, reuse, run what changed, write the outputs.

Before anything runs, the runner computes every key: the source's digest, a chain (previous
key, stage fingerprint) per stage, and one key per output file. Stages are reused up to the
first whose checkpoint lacks its key; an output whose key and size match the previous
manifest is kept. An unchanged rerun thus reads a few small files and writes a new manifest.

The folder is locked while a run uses it. ``manifest.json`` is removed first and written
last, so a folder without it holds no finished run; what a failed run wrote is removed
again, and only what runs wrote is ever removed or replaced (:mod:`.ownership`). Each stage
that runs again says why (:mod:`.recompute`).
"""
from __future__ import annotations

import contextlib
import hashlib
import platform
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..core.stage import StageResult, TooManyRowErrors, first_error, reason_counts
from ..core.table import ORIGIN
from ..core.versions import installed_version
from ..errors import CurateError
from ..core.json_text import json_line_array
from ..io.atomic import (output_errors, read_json, write_frame_jsonl, write_json, write_text,
                         write_text_array)
from ..io.columnar import read_frame, write_frame
from ..progress import plain_line, run_progress, task
from .background import BackgroundWork
from .card import dataset_card
from .checkpoint import CheckpointStore, chain_key, size_of, stage_stats
from .executors import make_executor
from .lock import run_folder_lock
from .recompute import recompute_reason
from .ownership import RunFolder, prepare_folder
from .report import render_report
from .summary import print_funnel

VERSIONED = ("curate-workbench", "pandas", "numpy", "pyarrow", "openai", "rapidfuzz",
             "rouge-score", "sentence-transformers", "faiss-cpu", "torch", "transformers",
             "datasets")
OUTPUTS = ("rejected.jsonl.gz", "errored.jsonl", "export", "report.html")
OUTPUT_FORMAT = "3"
SOURCE_COPY = "checkpoints/00_source.parquet"
CARD = "README.md"  # the dataset card, in export/


@dataclass
class RunResult:
    """What a run produced: the final table, every stage's result, and the paths.

    Tables are loaded on first use: after a run that reused everything, ``manifest`` is
    there at once and ``kept`` or ``stages`` read the run folder when asked for.
    """

    out: Path
    manifest: dict = field(default_factory=dict)
    _tables: dict = field(default_factory=dict, repr=False)
    _loader: object = field(default=None, repr=False)

    def _get(self, name: str):
        if name not in self._tables and self._loader is not None:
            self._tables.update(self._loader())
        return self._tables[name]

    @property
    def source(self) -> pd.DataFrame:
        return self._get("source")

    @property
    def kept(self) -> pd.DataFrame:
        return self._get("kept")

    @property
    def stages(self) -> list[tuple[str, StageResult]]:
        return self._get("stages")

    @property
    def rejected(self) -> pd.DataFrame:
        return _concat([r.rejected for _, r in self.stages])

    @property
    def errored(self) -> pd.DataFrame:
        """Every stage's errored rows, then the rows the export could not write."""
        return _concat([r.errored for _, r in self.stages] + [self._get("export_errored")])


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _origins(kept: pd.DataFrame) -> dict[str, int]:
    """Kept rows by the stage that created them (``source`` for the source's own rows)."""
    if not len(kept):
        return {}
    origin = kept[ORIGIN] if ORIGIN in kept.columns else pd.Series("source", index=kept.index)
    return {str(k): int(v) for k, v in origin.fillna("source").value_counts().items()}


def _export_files(export) -> list[str]:
    """The names an export writes in ``export/`` (none known for an export of your own),
    the dataset card last."""
    files = getattr(export, "files", None)
    return [*files(), CARD] if callable(files) else []


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        version = installed_version(name)
        if version is not None:
            versions[name] = version
    return versions


def _file_hash(path) -> str | None:
    if not path:
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _sum_llm(stages: list[dict], key: str = "llm") -> dict:
    total: dict = {}
    for stats in stages:
        for name, value in (stats.get(key) or {}).items():
            if isinstance(value, (int, float)):
                total[name] = round(total.get(name, 0) + value, 6)
    return total


class _Run:
    """One run of a pipeline into a folder (see the module docstring)."""

    def __init__(self, pipeline, out: Path, limit, progress: bool, spec_path, executor,
                 folder: RunFolder):
        self.pipeline, self.out, self.limit = pipeline, out, limit
        self.executor, self.folder = executor, folder
        self.progress, self.spec_path = progress, spec_path
        self.store = CheckpointStore(out, folder)
        self.started = datetime.now(timezone.utc)
        pipeline._loaded.clear()  # a source read in an earlier run may have changed
        self.t0 = time.perf_counter()
        self.written: list[Path] = []
        self.tables = self.exported = self.preferences = None

    # -- the plan -------------------------------------------------------------------------
    def plan(self) -> None:
        self.source_key = self.pipeline.source_key(self.limit)
        key = chain_key("source", self.source_key)
        self.keys, self.fingerprints, self.entries, self.origins = [], [], [], []
        for index, stage in enumerate(self.pipeline.stages, start=1):
            fp = stage.fingerprint()
            self.fingerprints.append(fp)
            self.origins.append({"fingerprint": fp.digest if fp.stable else "unstable",
                                 "input": key})
            salt = fp.digest if fp.stable else f"unstable-{uuid.uuid4().hex}"
            key = chain_key(key, type(stage).__qualname__, salt)
            self.keys.append(key)
            self.entries.append(self.store.entry(index, stage.name, key))
        self.first_to_run = next((i for i, e in enumerate(self.entries) if e is None),
                                 len(self.entries))
        self.reasons = [self._reason(i) for i in range(len(self.entries))]
        final = chain_key(key, OUTPUT_FORMAT)
        export = self.pipeline.export
        export_fp = export.fingerprint().describe() if export is not None else "none"
        report_fp = self.pipeline.report.fingerprint().describe()
        self.output_keys = {"rejected.jsonl.gz": final,
                            "errored.jsonl": chain_key(final, export_fp),
                            "export": chain_key(final, export_fp),
                            "report.html": chain_key(final, export_fp, report_fp)}
        old = self.previous.get("outputs", {}) if self.previous else {}
        self.reuse_outputs = {name for name, k in self.output_keys.items()
                              if old.get(name, {}).get("key") == k
                              and size_of(self.out / name) == old[name].get("bytes")
                              and "unstable" not in k}

    def _reason(self, i: int) -> str | None:
        """Why stage ``i`` runs (None: it is reused)."""
        if i < self.first_to_run:
            return None
        stages = self.pipeline.stages
        before = (self.previous or {}).get("stages") or []
        return recompute_reason(
            stages[i], self.fingerprints[i], self.origins[i],
            self.store.stored(i + 1, stages[i].name), before[i] if i < len(before) else None,
            stages[i - 1].name if i else None, i - 1 >= self.first_to_run,
            self.entries[i] is not None)

    # -- running ----------------------------------------------------------------------------
    def execute(self) -> RunResult:
        self.folder.check(["manifest.json", "checkpoints", "cache",
                           *(name for name in OUTPUTS if name != "export"),
                           *(f"export/{name}" for name in _export_files(self.pipeline.export))])
        self.folder.remove_temporary()
        self.previous = self._take_manifest()
        self.plan()
        for name in OUTPUTS:
            if name not in self.reuse_outputs:
                self.folder.remove(self.out / name)
        self.background = BackgroundWork()
        try:
            return self._execute()
        except BaseException:
            self.background.close()  # first: no write under way recreates a removed file
            for path in self.written:
                with contextlib.suppress(OSError):
                    self.folder.remove(path)
            raise
        finally:
            self.background.close()

    def _execute(self) -> RunResult:
        stages = self.pipeline.stages
        everything_reused = (self.first_to_run == len(stages)
                             and self.reuse_outputs == set(self.output_keys))
        from ..llm.cache import use_default_cache_path  # LLM stages use the folder's cache

        with run_progress(enabled=self.progress), \
                use_default_cache_path(self.out / "cache" / "llm.sqlite"):
            if everything_reused and self.previous:
                stats = [self._stats_of(i, stage_stats(self.entries[i]), reused=True)
                         for i in range(len(stages))]
                run = RunResult(self.out, _loader=self._load_all)
                rows = self.previous["rows"]
            else:
                tables = self.tables = self._split_export(self._compute())
                stats = [self._stats_of(i, r.stats) for i, (_, r) in enumerate(tables["stages"])]
                run = RunResult(self.out, _tables=tables)
                rows = {"source": len(tables["source"]), "kept": len(tables["kept"]),
                        "rejected": len(run.rejected), "errored": len(run.errored),
                        "kept_by_origin": _origins(tables["kept"])}
                self._write_outputs(run)
                self._write_card(stats, rows)
                if "report.html" not in self.reuse_outputs:
                    html = render_report(self.pipeline, run, self._manifest(stats, rows))
                    self._wrote(self.out / "report.html")
                    write_text(self.out / "report.html", html)
                self.background.wait()
        self.store.prune({self.store.folder(i, s.name).name
                          for i, s in enumerate(stages, start=1)})
        run.manifest = self._manifest(stats, rows)
        self.folder.add(self.out / "manifest.json")
        write_json(self.out / "manifest.json", run.manifest)  # last: marks a complete run
        if self.progress:
            print_funnel(run.manifest, self.out)
        return run

    def _compute(self) -> dict:
        source = self._source_table()
        self.pipeline.check_fields(source.columns)  # before any stage runs
        current, results = source, []
        self.rejected_lines = []  # each stage's rejected rows as JSON lines, encoded aside
        with task(f"{self.pipeline.name}: stages", total=len(self.pipeline.stages)) as overall:
            for index, stage in enumerate(self.pipeline.stages, start=1):
                result = self._reuse(index, stage, current) if index - 1 < self.first_to_run \
                    else self._run_stage(index, stage, current, results)
                if len(result.rejected) and "rejected.jsonl.gz" not in self.reuse_outputs:
                    self.rejected_lines.append(
                        self.background.submit(json_line_array, result.rejected, "\n"))
                results.append((stage.name, result))
                current = result.kept
                overall.advance()
        return {"source": source, "kept": current, "stages": results}

    def _split_export(self, tables: dict) -> dict:
        """The final rows the export can write as ``kept``; the others errored by it."""
        export = self.pipeline.export
        if export is None or not hasattr(export, "split"):  # an export of your own
            tables["export_errored"] = pd.DataFrame()
        else:
            tables["kept"], tables["export_errored"] = export.split(tables["kept"])
        return tables

    def _run_stage(self, index, stage, current, results) -> StageResult:
        self.background.check()
        reason = self.reasons[index - 1]
        plain_line(f"stage {index}/{len(self.pipeline.stages)} {stage.name}: "
                   f"{len(current)} rows in ({'' if reason == 'no checkpoint' else 'recomputed: '}"
                   f"{reason})")
        try:
            result = self.executor.run_stage(stage, current)
        except TooManyRowErrors as error:
            errored = _concat([r.errored for _, r in results] + [error.result.errored])
            self.written.clear()  # the errored rows are kept for the user to read
            self.folder.add(self.out / "errored.jsonl")
            write_frame_jsonl(self.out / "errored.jsonl", errored)
            raise CurateError(f"{error}; every errored row is in "
                              f"{self.out / 'errored.jsonl'}") from None
        result.stats["reused"] = False
        for warning in result.stats.get("warnings", []):
            plain_line(f"warning: stage {stage.name!r}: {warning}", always=True)
        plain_line(f"stage {index}/{len(self.pipeline.stages)} {stage.name}: kept "
                   f"{len(result.kept)}, rejected {len(result.rejected)}, errored "
                   f"{len(result.errored)} ({result.stats['seconds']:.1f} s)")
        self.background.submit(self.store.save, index, stage.name, self.keys[index - 1],
                               current, result, self.origins[index - 1])
        return result

    def _load_all(self) -> dict:
        """Every table of a fully reused run, rebuilt from the checkpoints."""
        source = current = self._source_table()
        results = []
        for index, stage in enumerate(self.pipeline.stages, start=1):
            results.append((stage.name, self._reuse(index, stage, current)))
            current = results[-1][1].kept
        return self._split_export({"source": source, "kept": current, "stages": results})

    def _reuse(self, index: int, stage, current) -> StageResult:
        result = self.store.load(index, stage.name, self.entries[index - 1], current)
        result.stats["reused"] = True
        return result

    # -- outputs ----------------------------------------------------------------------------
    def _write_outputs(self, run: RunResult) -> None:
        out, todo = self.out, set(self.output_keys) - self.reuse_outputs
        if "rejected.jsonl.gz" in todo:  # every stage's rejected rows, in stage order
            self._wrote(out / "rejected.jsonl.gz")
            self.background.submit(lambda: write_text_array(
                out / "rejected.jsonl.gz", [lines.result() for lines in self.rejected_lines]))
        if "errored.jsonl" in todo:
            self._wrote(out / "errored.jsonl")
            self.background.submit(write_frame_jsonl, out / "errored.jsonl", run.errored)
        if "export" in todo and self.pipeline.export is not None:
            # first: a failed write leaves no file of its own behind
            self._wrote(out / "export", *(out / "export" / f
                                          for f in _export_files(self.pipeline.export)))
            self.exported = self.pipeline.export.write(run.kept, out / "export")
            preferences = getattr(self.pipeline.export, "preferences", None)
            if preferences is not None:
                path, pairs = preferences.write(run, self.pipeline.export, out / "export",
                                                self.pipeline.stages)
                self.preferences = {"path": str(path), "pairs": pairs}

    def _write_card(self, stats: list[dict], rows: dict) -> None:
        """``export/README.md``, written whenever the export is (recorded with its files)."""
        files = _export_files(self.pipeline.export)
        if self.exported is not None and files:
            folder = self.out / "export"  # an empty file (no preference pairs) is no config
            files = [f for f in files[:-1] if not f.endswith(".jsonl") or size_of(folder / f)]
            write_text(folder / CARD, dataset_card(self._manifest(stats, rows),
                                                   self.pipeline.stages, files, self.out))

    def _wrote(self, *paths: Path) -> None:
        """Record paths about to be written (in the folder's record, and to remove them
        again if the run fails)."""
        self.folder.add(*(p for p in paths if p != self.out / "export"))
        self.written.extend(paths)

    def _take_manifest(self) -> dict | None:
        """Read the previous manifest, then remove it: until this run ends, none is there."""
        path = self.out / "manifest.json"
        previous = read_json(path)
        with output_errors(path):
            self.folder.remove(path)
        return previous

    # -- the manifest -----------------------------------------------------------------------
    def _stats_of(self, i: int, stats: dict, reused: bool = False) -> dict:
        """Stage ``i``'s manifest entry; a reused stage took no seconds and no LLM use in
        this run, and keeps what computing it took."""
        stats = {**stats, "fingerprint": self.fingerprints[i].describe(),
                 "params": self.pipeline.stages[i].params()}
        if not (reused or stats.get("reused")):
            return {**stats, "computed_seconds": stats.get("seconds"),
                    "llm_computed": stats.get("llm", {}), "recomputed": self.reasons[i]}
        return {**stats, "reused": True,
                "computed_seconds": stats.get("computed_seconds", stats.get("seconds")),
                "llm_computed": stats.get("llm_computed", stats.get("llm", {})),
                "seconds": 0.0, "llm": {}}

    def _source_info(self) -> dict:
        """Where the source came from, and the copy of it (ids and source lines included)
        that makes the folder readable on its own (``open_run``), even after the file changes."""
        source = self.pipeline.resolved_source()
        path = str(source.resolve()) if isinstance(source, Path) else None
        return {"key": self.source_key, "path": path, "limit": self.limit,
                "json_columns": list(self.pipeline.json_columns), "saved": SOURCE_COPY}

    def _source_table(self) -> pd.DataFrame:
        """The source rows: the saved copy when it holds this source, else read and saved."""
        copy, stamp = self.out / SOURCE_COPY, self.out / (SOURCE_COPY + ".key")
        with contextlib.suppress(OSError):
            if stamp.read_text() == self.source_key:
                return read_frame(copy)
        source = self.pipeline.load_source(self.limit)
        self.background.submit(self._save_source, source, copy, stamp)
        return source

    def _save_source(self, source: pd.DataFrame, copy: Path, stamp: Path) -> None:
        self.folder.add(copy, stamp)
        write_frame(source, copy)
        write_text(stamp, self.source_key)

    def _manifest(self, stats: list[dict], rows: dict) -> dict:
        outputs = {}
        for name, key in self.output_keys.items():
            size = size_of(self.out / name)
            if size is not None:
                outputs[name] = {"key": key, "bytes": size,
                                 "reused": name in self.reuse_outputs}
        kept = (self.previous or {}) if "export" in self.reuse_outputs else {}  # as it was
        export = kept.get("export", {}) if self.exported is None else \
            {fmt: {"path": p, "rows": rows["kept"]} for fmt, p in self.exported.items()}
        preferences = self.preferences or kept.get("preferences")
        return {
            "name": self.pipeline.name, "spec": str(self.spec_path) if self.spec_path else None,
            "spec_hash": _file_hash(self.spec_path), "source": self._source_info(),
            "started": self.started.isoformat(timespec="seconds"),
            "executor": self.executor.name,
            "seconds": round(time.perf_counter() - self.t0, 3),
            "versions": package_versions(), "rows": rows,
            "reused": {"stages": sum(bool(s.get("reused")) for s in stats),
                       "of": len(stats), "outputs": sorted(self.reuse_outputs)},
            "stages": stats, "llm": _sum_llm(stats), "llm_computed": _sum_llm(stats, "llm_computed"),
            "outputs": outputs, "export": export, "export_errored": self._export_errored(),
            **({"preferences": preferences} if preferences else {}),
        }

    def _export_errored(self) -> dict:
        """The rows the export errored: how many, and why."""
        if self.pipeline.export is None:
            return {}
        if self.tables is None:  # everything reused: as the previous run found
            return (self.previous or {}).get("export_errored", {})
        errored = self.tables["export_errored"]
        return {"stage": self.pipeline.export.name, "errored": len(errored),
                "errors": reason_counts(errored),
                **({"first_error": first_error(errored)} if len(errored) else {})}


def run_pipeline(pipeline, out, limit=None, progress=True, spec_path=None,
                 executor=None) -> RunResult:
    """Run ``pipeline`` into the folder ``out`` (see the module docstring) with the executor
    ``executor`` (``"local"``, ``"ray"`` or an executor object; see :mod:`.executors`)."""
    out = Path(out)
    executor, made_here = make_executor(executor)
    try:
        prepare_folder(out)
        folder = RunFolder.claim(out, pipeline.source_paths())
        executor.prepare(pipeline)
        with run_folder_lock(out):
            return _Run(pipeline, out, limit, progress, spec_path, executor, folder).execute()
    finally:
        if made_here:
            executor.close()

