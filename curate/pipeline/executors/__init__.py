"""Executors: where the runner runs each stage it computes.

The runner owns the plan, checkpoints, outputs and manifest; an executor only turns a stage
and its input into a :class:`~curate.core.stage.StageResult`: :class:`LocalExecutor` in this
process, :class:`~curate.pipeline.executors.ray_executor.RayExecutor` on Ray Data with the
same result. Importing this package imports no Ray.
"""
from __future__ import annotations

from ...errors import CurateError
from .base import Executor, LocalExecutor

NAMES = ("local", "ray")


def make_executor(executor=None, **options) -> tuple[Executor, bool]:
    """``(executor, made_here)`` for ``"local"`` (or None), ``"ray"`` (with ``options`` for
    :class:`RayExecutor`), or an executor object (used as it is, and not closed by whoever
    made it here)."""
    if executor is None or executor == "local":
        if options:
            raise CurateError(f"options {sorted(options)} need executor='ray'")
        return LocalExecutor(), True
    if executor == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(**options), True
    if isinstance(executor, str):
        raise CurateError(f"unknown executor {executor!r}; choose one of {', '.join(NAMES)}")
    if not callable(getattr(executor, "run_stage", None)):
        raise CurateError(f"an executor must have run_stage(stage, df), got {executor!r}")
    return executor, False


__all__ = ["Executor", "LocalExecutor", "make_executor", "NAMES"]
