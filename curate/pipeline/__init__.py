"""Pipelines: a source, a list of stages and an export, run into a resumable run folder.

A spec is a Python file that defines ``pipeline = Pipeline(source=..., stages=[...],
export=...)``; ``python -m curate.pipeline spec.py --out DIR`` runs it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .._lazy import lazy_exports
from ..errors import StageError

if TYPE_CHECKING:
    import pandas as pd

    from ..core.stage import Stage
    from .report import ReportOptions
    from .runner import RunResult

__all__ = ["Pipeline", "ReportOptions", "RunResult"]
# imported when asked for: the command line's --help and an unchanged rerun need neither
# pandas nor the report
__getattr__, __dir__ = lazy_exports(__name__, {"ReportOptions": "report", "RunResult": "runner"})


def _report_options():
    from .report import ReportOptions

    return ReportOptions()


def path_digest(path: Path) -> str:
    """A digest of a file's bytes, or of every file in a folder (names and bytes)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        h.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with open(file, "rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()[:20]


@dataclass
class Pipeline:
    """What to run: ``source`` -> ``stages`` in order -> ``export``.

    Args:
        source: a path (.jsonl/.json/.csv/.parquet, optionally compressed, or a datasets
            folder), a DataFrame, a list of dicts, a ``datasets.Dataset``, a
            :class:`~curate.stages.sampling.Mix`, or a function returning one of these. A
            relative path is taken from ``base`` (a spec's own folder when the spec is run
            with ``python -m curate.pipeline``), else from the working folder.
        stages: stages run in order; each sees the rows the previous one kept.
        export: a :class:`~curate.formats.export.ChatExport` (optional).
        name: a label for the report.
        report: what the report measures (:class:`ReportOptions`).
        json_columns: CSV columns whose cells hold JSON.
        base: the folder relative source paths are taken from.
    """

    source: object
    stages: Sequence[Stage]
    export: object | None = None
    name: str = "pipeline"
    report: ReportOptions = field(default_factory=_report_options)
    json_columns: Sequence[str] = ()
    base: Path | None = None
    _loaded: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        from ..core.stage import Stage, check_name

        self.stages = list(self.stages)
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, Stage):
                raise StageError(f"stages[{i}]", f"expected a Stage, got {type(stage).__name__}")
            check_name(stage.name)  # a name set after the stage was built

    def run(self, out, limit: int | None = None, progress: bool = True,
            spec_path: str | None = None, executor="local") -> RunResult:
        """Run into the folder ``out``, reusing the work whose inputs are unchanged.

        ``executor``: ``"local"`` (this process), ``"ray"`` (row-wise stages on Ray Data,
        same results), or an executor object such as ``RayExecutor(address="auto")``.
        """
        from .runner import run_pipeline

        return run_pipeline(self, out, limit=limit, progress=progress, spec_path=spec_path,
                            executor=executor)

    def check_fields(self, columns) -> None:
        """Before anything runs: a field a stage requires, or the export's template reads,
        that no row can have (neither in the source nor declared by a stage before it) is
        a one-line error with the closest name. After a stage that may add columns it does
        not declare (``Derive``, ``Augment``, a stage of your own), nothing is certain and
        nothing more is checked."""
        from ..core.stage import did_you_mean

        known = list(dict.fromkeys(map(str, columns)))

        def check(owner: str, name: str, problem: str) -> None:
            if name not in known:
                shown = ", ".join(c for c in known if not c.startswith("_"))
                raise StageError(owner, f"{problem} (fields: {shown}){did_you_mean(name, known)}",
                                 field=name)

        for stage in self.stages:
            for name in stage.required_fields():
                check(stage.name, name, f"the table has no field {name!r}")
            known += [str(c) for c in stage.added_columns() if str(c) not in known]
            if not type(stage).__dict__.get("declares_columns", False):
                return  # a subclass may add columns its class did not declare
        for name in self.export.required_fields() if self.export is not None else ():
            check(self.export.name, name, f"the template needs field {name!r}, which no row "
                                          f"will have")

    # -- the source ------------------------------------------------------------------------
    def resolved_source(self):
        """The source, with a relative path taken from ``base``."""
        source = self.source
        if isinstance(source, (str, Path)):  # an absolute path stays as it is
            return Path(self.base or ".") / Path(source).expanduser()
        if hasattr(source, "load") and hasattr(source, "base"):
            source.base = Path(self.base) if self.base is not None else None
        return source

    def source_paths(self) -> list[Path]:
        """The files and folders the source reads (none for a table given in memory)."""
        source = self.resolved_source()
        if isinstance(source, Path):
            return [source]
        if hasattr(source, "load") and hasattr(source, "sources"):  # a Mix
            return [p for p in map(source._resolved, source.sources.values())
                    if isinstance(p, Path)]
        return []

    def source_key(self, limit: int | None = None) -> str:
        """A digest of what the source holds (a file's bytes; a table's content)."""
        from ..core.table import table_digest
        from ..io.read import check_readable

        source = self.resolved_source()
        if isinstance(source, Path):
            check_readable(source)
            digest = f"file:{path_digest(source)}"
        elif hasattr(source, "load") and hasattr(source, "fingerprint"):
            fp = source.fingerprint()
            digest = f"mix:{getattr(fp, 'digest', fp)}"
        else:
            digest = f"table:{table_digest(self.load_source(limit))}"
        return hashlib.sha256(f"{digest}|{list(self.json_columns)}|{limit}".encode()).hexdigest()[:20]

    def load_source(self, limit: int | None = None) -> pd.DataFrame:
        """The source rows (the first ``limit``), each with its ``_id`` and ``_source``."""
        if limit in self._loaded:
            return self._loaded[limit]
        from ..core.table import assign_ids
        from ..io import read_table

        source = self.resolved_source()
        if callable(source) and not hasattr(source, "load"):
            source = source()
        if hasattr(source, "load"):
            source = source.load()
        df = read_table(source, json_columns=self.json_columns)
        if limit is not None:
            df = df.head(limit).reset_index(drop=True)
        self._loaded[limit] = df = assign_ids(df)
        return df
