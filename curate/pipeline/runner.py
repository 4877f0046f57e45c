"""Run a pipeline into a run folder: checkpoints, resume, rejected rows, export, manifest."""
from __future__ import annotations

import contextlib
import hashlib
import platform
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pandas as pd

from ..io import write_json, write_jsonl, write_text
from ..progress import run_progress, task
from ..stage import StageResult
from ..table import records, with_ids
from .checkpoint import CheckpointStore, chain_key, table_key
from .report import render_report
from .summary import print_funnel

VERSIONED = ("curate-workbench", "pandas", "numpy", "openai", "rapidfuzz", "rouge-score",
             "sentence-transformers", "faiss-cpu", "torch", "transformers", "datasets")


@dataclass
class RunResult:
    """What a run produced: the final table, every stage's result, and the paths."""

    out: Path
    source: pd.DataFrame
    kept: pd.DataFrame
    stages: list[tuple[str, StageResult]] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)

    @property
    def rejected(self) -> pd.DataFrame:
        parts = [r.rejected for _, r in self.stages if len(r.rejected)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    @property
    def errored(self) -> pd.DataFrame:
        parts = [r.errored for _, r in self.stages if len(r.errored)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def _file_hash(path) -> str | None:
    if not path:
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _llm_cache_scope(out: Path):
    """Point LLM stages at the run folder's response cache, when the LLM layer is present."""
    try:
        from ..llm.cache import use_default_cache_path
    except ImportError:
        return contextlib.nullcontext()
    return use_default_cache_path(out / "cache" / "llm.sqlite")


def _sum_llm(stage_stats: list[dict]) -> dict:
    total: dict = {}
    for stats in stage_stats:
        for key, value in (stats.get("llm") or {}).items():
            if isinstance(value, (int, float)):
                total[key] = total.get(key, 0) + value
    return total


def _clear_outputs(out: Path) -> None:
    """Remove what marks a run complete, so a failed rerun never looks finished."""
    for name in ("manifest.json", "report.html", "rejected.jsonl", "errored.jsonl", "kept.jsonl"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "export", ignore_errors=True)


def run_pipeline(pipeline, out, limit=None, progress=True, spec_path=None) -> RunResult:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _clear_outputs(out)
    started, t0 = datetime.now(timezone.utc), time.perf_counter()
    source = with_ids(pipeline.load_source())
    if limit is not None:
        source = source.head(limit).reset_index(drop=True)
    store = CheckpointStore(out)
    key = chain_key("source", table_key(source))
    current, results = source, []
    with run_progress(enabled=progress), _llm_cache_scope(out), \
            task(f"{pipeline.name}: stages", total=len(pipeline.stages)) as overall:
        for index, stage in enumerate(pipeline.stages, start=1):
            overall.info(f"{stage.name} ({len(current)} rows in)")
            key = chain_key(key, type(stage).__qualname__, stage.fingerprint())
            result = store.load(index, stage.name, key)
            if result is None:
                result = stage.run(current)
                result.stats["reused"] = False
                store.save(index, stage.name, key, result)
            else:
                result.stats["reused"] = True
            results.append((stage.name, result))
            current = result.kept
            overall.advance()
    store.prune({store.folder(i, s.name).name for i, s in enumerate(pipeline.stages, start=1)})
    run = RunResult(out, source, current, results)
    run.manifest = _finish(pipeline, run, spec_path, started, time.perf_counter() - t0)
    if progress:
        print_funnel(run)
    return run


def _finish(pipeline, run: RunResult, spec_path, started, seconds) -> dict:
    out = run.out
    write_jsonl(out / "rejected.jsonl", records(run.rejected))
    write_jsonl(out / "errored.jsonl", records(run.errored))
    write_jsonl(out / "kept.jsonl", records(run.kept))
    exported = pipeline.export.write(run.kept, out / "export") if pipeline.export else {}
    stage_stats = [{k: v for k, v in r.stats.items() if k not in ("key", "columns")}
                   for _, r in run.stages]
    for stats, stage in zip(stage_stats, pipeline.stages):
        stats["params"] = stage.params()
    manifest = {
        "name": pipeline.name, "spec": str(spec_path) if spec_path else None,
        "spec_hash": _file_hash(spec_path), "started": started.isoformat(timespec="seconds"),
        "seconds": round(seconds, 3), "versions": package_versions(),
        "rows": {"source": len(run.source), "kept": len(run.kept),
                 "rejected": len(run.rejected), "errored": len(run.errored)},
        "stages": stage_stats, "llm": _sum_llm(stage_stats),
        "export": {fmt: {"path": p, "rows": len(run.kept)} for fmt, p in exported.items()},
    }
    write_text(out / "report.html", render_report(pipeline, run, manifest))
    write_json(out / "manifest.json", manifest)  # last: its presence marks a complete run
    return manifest
