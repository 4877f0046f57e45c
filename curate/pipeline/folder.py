"""Open a finished run folder without its spec: the manifest, and every stage's tables.

    run = open_run("runs/honeycomb")
    run.manifest["rows"], run.kept, run.stages[3][1].rejected

The source comes back from the copy saved in the folder, so a run stays readable after its
source file is edited or moved; a folder without one (an older version's) reads the file the
manifest names, checked against its digest. Each stage's tables come from its checkpoint.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..core.table import ID, STAGE, assign_ids, frame_from_records, isin
from ..errors import InputError
from ..io.columnar import read_frame
from .checkpoint import CheckpointStore
from .runner import RunResult


def open_run(out) -> RunResult:
    """A :class:`RunResult` of the finished run in ``out`` (tables loaded on first use)."""
    out = Path(out)
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except FileNotFoundError:
        raise InputError(out, "no finished run here (manifest.json is missing)") from None
    except ValueError as error:
        raise InputError(out / "manifest.json", f"not a readable manifest: {error}") from None
    return RunResult(out, manifest, _loader=lambda: _tables(out, manifest))


def _source(out: Path, manifest: dict):
    from . import Pipeline

    info = manifest.get("source") or {}
    if info.get("saved") and (out / info["saved"]).exists():
        return read_frame(out / info["saved"])
    path = info.get("path")
    if not path:
        raise InputError(out / "manifest.json", "the manifest does not say where the source is")
    pipeline = Pipeline(source=Path(path), stages=[], json_columns=info.get("json_columns", ()))
    if pipeline.source_key(info.get("limit")) != info.get("key"):
        raise InputError(path, "the source changed since this run; rerun the spec to see "
                               "the run of the current file")
    return assign_ids(pipeline.load_source(info.get("limit")))


def _tables(out: Path, manifest: dict) -> dict:
    store = CheckpointStore(out)
    current = source = _source(out, manifest)
    results = []
    for index, stats in enumerate(manifest["stages"], start=1):
        saved = store.stored(index, stats["stage"])
        if saved is None:
            raise InputError(store.folder(index, stats["stage"]),
                             "the checkpoint of this stage is missing")
        result = store.load(index, stats["stage"], saved, current)
        result.stats.update(reused=stats.get("reused", False))
        results.append((stats["stage"], result))
        current = result.kept
    errored = _export_errored(out, manifest)
    if len(errored):  # the export wrote the final rows but these
        current = current[~isin(current[ID], errored[ID])].reset_index(drop=True)
    return {"source": source, "kept": current, "stages": results, "export_errored": errored}


def _export_errored(out: Path, manifest: dict) -> pd.DataFrame:
    """The rows the export errored, from ``errored.jsonl`` (they come after the stages')."""
    info = manifest.get("export_errored") or {}
    if not info.get("errored"):
        return pd.DataFrame()
    rows = [json.loads(line) for line in (out / "errored.jsonl").read_text().splitlines()]
    return frame_from_records([r for r in rows if r.get(STAGE) == info["stage"]])
