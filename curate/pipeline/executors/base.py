"""The executor interface and the default, local executor (see the package docstring)."""
from __future__ import annotations

import pandas as pd

from ...core.stage import Stage, StageResult


class Executor:
    """Runs stages for the runner. ``prepare`` is called once before the first stage of a
    run, ``close`` when the one who made the executor is done with it."""

    name = "executor"

    def prepare(self, pipeline) -> None:
        """Learn what the run's stages need (e.g. the spec's folder for its modules)."""

    def run_stage(self, stage: Stage, df: pd.DataFrame) -> StageResult:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor started."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """Every stage in this process, one after the other: ``stage.run(df)``."""

    name = "local"

    def run_stage(self, stage: Stage, df: pd.DataFrame) -> StageResult:
        return stage.run(df)
