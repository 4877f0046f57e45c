"""Pipelines: a source, a list of stages and an export, run into a resumable run folder.

A spec is a Python file that defines ``pipeline = Pipeline(source=..., stages=[...],
export=...)``; ``python -m curate.pipeline spec.py --out DIR`` runs it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import pandas as pd

from ..errors import StageError
from ..stage import Stage
from .report import ReportOptions
from .runner import RunResult, run_pipeline

__all__ = ["Pipeline", "ReportOptions", "RunResult"]


@dataclass
class Pipeline:
    """What to run: ``source`` -> ``stages`` in order -> ``export``.

    Args:
        source: a path (.jsonl/.csv/.parquet/datasets folder), a DataFrame, a list of
            dicts, a ``datasets.Dataset``, a :class:`~curate.stages.sampling.Mix`, or a
            function returning one of these.
        stages: stages run in order; each sees the rows the previous one kept.
        export: a :class:`~curate.export.ChatExport` (optional).
        name: a label for the report.
        report: what the report measures (:class:`ReportOptions`).
        json_columns: CSV columns whose cells hold JSON.
    """

    source: object
    stages: Sequence[Stage]
    export: object | None = None
    name: str = "pipeline"
    report: ReportOptions = field(default_factory=ReportOptions)
    json_columns: Sequence[str] = ()

    def __post_init__(self):
        self.stages = list(self.stages)
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, Stage):
                raise StageError(f"stages[{i}]", f"expected a Stage, got {type(stage).__name__}")

    def run(self, out, limit: int | None = None, progress: bool = True,
            spec_path: str | None = None) -> RunResult:
        """Run into the folder ``out``, reusing checkpoints whose inputs are unchanged."""
        return run_pipeline(self, out, limit=limit, progress=progress, spec_path=spec_path)

    def load_source(self) -> pd.DataFrame:
        from ..io import read_table
        source = self.source() if callable(self.source) and not hasattr(self.source, "load") \
            else self.source
        if hasattr(source, "load"):
            source = source.load()
        return read_table(source, json_columns=self.json_columns)
