"""The Ray Data executor: row-wise stages on Ray, the rest on the driver, one result.

A row-wise stage (``stage.kind == "row"``) runs as ``map_batches`` over consecutive slices of
its input: Ray tasks for a deterministic stage, a pool of actors (each setting up its client
once) for an LLM stage. Every slice goes through the stage's own ``run`` and the driver puts
them together with :func:`~curate.pipeline.executors.batched.combine`, which gives the stats
and ``max_errored`` decision of one run. ``MinHashDedup`` and ``ExactDedup`` run distributed
(:mod:`~curate.pipeline.executors.ray_dedup`); other global stages and the runner stay on
the driver, so a run folder is the same whichever executor wrote it.

An LLM stage's ``rpm`` and ``tpm`` are split evenly over its actors, so the pool keeps the
client's limits; every actor uses the run folder's response cache file (sqlite in WAL mode,
safe across processes). See "Running on Ray" in the README. Ray is imported only when a
:class:`RayExecutor` is made.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import pickle
import socket
import sys
import time
from pathlib import Path

import pandas as pd

from ...core.stage import Stage, StageResult, one_line
from ...core.table import ID
from ...errors import CurateError
from ...progress import task
from .base import Executor
from .batched import BatchOutcome, combine, map_slices, payload, run_batch, split

INSTALL = "pip install 'curate-workbench[ray]'"
MAX_BATCH_ROWS = 50_000
# A worker process that dies (a crash in native code, os._exit, the out-of-memory killer) is
# retried this many times, then the stage fails; Ray Data's default retries forever.
WORKER_RETRIES = 2


def require_ray():
    """The ``ray`` module, or a one-line error naming the install command."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise CurateError(f"the ray executor needs Ray, which is not installed; install it "
                          f"with: {INSTALL}") from None
    return ray


def split_rate_limits(llm, parts: int):
    """A copy of the client ``llm`` with ``1/parts`` of its RPM and TPM limits (one actor's
    share) and usage of its own; anything that is not a :class:`curate.LLM` as it is."""
    from ...llm.accounting import Usage
    from ...llm.client import LLM
    from ...llm.limits import RateLimiter

    if not isinstance(llm, LLM):
        return llm
    client = copy.copy(llm)
    client.rpm = llm.rpm / parts if llm.rpm else llm.rpm
    client.tpm = llm.tpm / parts if llm.tpm else llm.tpm
    client.limiter = RateLimiter(client.rpm, client.tpm)
    client.usage = Usage()
    return client


def shippable(stage: Stage) -> Stage:
    """A copy of ``stage`` that can travel to another process: its LLM client's cache as an
    absolute path (a cache object holds a database connection)."""
    from ...llm.cache import ResponseCache

    llm = getattr(stage, "llm", None)
    cache = getattr(llm, "cache", None)
    if isinstance(cache, ResponseCache) or isinstance(cache, (str, Path)):
        stage = copy.copy(stage)
        stage.llm = copy.copy(llm)
        stage.llm.cache = (cache.path if isinstance(cache, ResponseCache)
                           else Path(cache).expanduser().resolve())
    return stage


def worker_paths(extra=()) -> list[str]:
    """Import paths for workers: this package's root, ``extra`` (a spec's folder) and the
    driver's own paths outside the Python installation (a test run's working tree)."""
    import curate

    installed = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths = [Path(curate.__file__).resolve().parent.parent, *(Path(p) for p in extra)]
    for entry in sys.path:
        path = Path(entry or os.getcwd()).resolve()
        if not any(path == i or i in path.parents for i in installed):
            paths.append(path)
    paths += [Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return list(dict.fromkeys(str(p.resolve()) for p in paths if p.is_dir()))


def is_llm_stage(stage: Stage) -> bool:
    from ...stages.llm.base import LLMStage

    return isinstance(stage, LLMStage)


# -- what runs on the workers -----------------------------------------------------------------
def run_on_worker(stage: Stage, batch: pd.DataFrame, info: dict | None = None) -> BatchOutcome:
    """One batch; a stage that crashes (a bug, not a row error) gives a one-line error."""
    try:
        return run_batch(stage, batch, info)
    except Exception as error:
        outcome = BatchOutcome(batch[ID].iloc[0] if len(batch) else None, len(batch))
        outcome.error = (CurateError, f"stage {stage.name!r} failed on a Ray worker: "
                                      f"{type(error).__name__}: {one_line(error)} (the local "
                                      f"executor shows the traceback)")
        return outcome


def run_batch_task(batch: pd.DataFrame, stage_ref: list) -> pd.DataFrame:
    """A Ray task: one batch of a deterministic row-wise stage."""
    import ray

    return payload(run_on_worker(ray.get(stage_ref[0]), batch))


class LLMBatchActor:
    """A Ray actor for an LLM stage: its client (with its share of the rate limits) and the
    run folder's response cache are set up once, then batch after batch goes through it."""

    def __init__(self, stage_ref: list, actors: int, cache_path: str):
        import ray

        stage = ray.get(stage_ref[0])
        stage.llm = split_rate_limits(stage.llm, actors)
        self.stage, self.cache_path = stage, cache_path
        self.info = {"rate_limits_per_actor": {"rpm": getattr(stage.llm, "rpm", None),
                                               "tpm": getattr(stage.llm, "tpm", None)}}

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from ...llm.cache import use_default_cache_path

        with use_default_cache_path(self.cache_path):
            return payload(run_on_worker(self.stage, batch, self.info))


# -- the executor -------------------------------------------------------------------------------
class RayExecutor(Executor):
    """Runs row-wise stages on Ray Data and the MinHash and exact dedups distributed (see
    the module docstring).

    Args:
        address: a running cluster to attach to (``"auto"``, or ``"HOST:6379"``); by default
            a local Ray is started, unless this process already has one.
        num_cpus: CPUs for the local Ray (default: every CPU of the machine).
        object_store_memory: bytes for the local Ray's object store (default: Ray's).
        batch_rows: rows per batch (default: about four batches per worker, 1,000 to
            50,000 rows; at least four requests in flight per LLM actor).
        llm_actors: actors per LLM stage (default: one per CPU of the cluster).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, *,
                 object_store_memory: int | None = None, batch_rows: int | None = None,
                 llm_actors: int | None = None):
        self.ray = require_ray()
        for what, value in (("num_cpus", num_cpus), ("batch_rows", batch_rows),
                            ("llm_actors", llm_actors)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise CurateError(f"ray executor: {what} must be a positive integer, got "
                                  f"{value!r}")
        self.address, self.num_cpus = address, num_cpus
        self.object_store_memory, self.batch_rows = object_store_memory, batch_rows
        self.llm_actors = llm_actors
        self.code_paths: list[Path] = []
        self._owns = self._started = False
        self._log_level: int | None = None

    def __repr__(self) -> str:
        where = self.address or f"local, num_cpus={self.num_cpus or 'all'}"
        return f"RayExecutor({where})"

    def prepare(self, pipeline) -> None:
        if getattr(pipeline, "base", None) is not None:
            self.code_paths.append(Path(pipeline.base))

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start or attach to Ray (done on the first row-wise stage; a no-op after)."""
        if self._started:
            return
        self._quiet_logs()
        if not self.ray.is_initialized():
            runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
                worker_paths(self.code_paths))}}
            options = dict(runtime_env=runtime_env, logging_level=logging.WARNING)
            if self.address is None:
                options.update(num_cpus=self.num_cpus, include_dashboard=False,
                               object_store_memory=self.object_store_memory)
            else:
                _check_reachable(self.address)
            try:
                self.ray.init(address=self.address, **options)
            except Exception as error:  # Ray raises many kinds; each is one line here
                what = (f"attach to the Ray cluster at {self.address}" if self.address
                        else "start a local Ray")
                raise CurateError(f"cannot {what}: {one_line(error)}") from None
            self._owns = True
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False
        self._started = True

    def close(self) -> None:
        if self._owns:
            self.ray.shutdown()
        self._owns = self._started = False
        if self._log_level is not None:
            logging.getLogger("ray.data").setLevel(self._log_level)
        self._log_level = None

    def _quiet_logs(self) -> None:
        """Ray Data's execution plans, notices and tracebacks stay in Ray's own log files:
        every error it raises reaches the user as this executor's one line."""
        logger = logging.getLogger("ray.data")
        if self._log_level is None:
            self._log_level = logger.level
        logger.setLevel(logging.CRITICAL)

    # -- one stage ------------------------------------------------------------------------------
    def run_stage(self, stage: Stage, df: pd.DataFrame) -> StageResult:
        from .ray_dedup import distributes, run_distributed

        if len(df) and distributes(stage):
            self.start()
            cpus = self._cpus()
            try:
                return run_distributed(self.ray, shippable(stage), df,
                                       self._rows_per_batch(stage, len(df), cpus), cpus,
                                       WORKER_RETRIES)
            except self.ray.exceptions.RayError as error:
                raise _failed(stage, error) from None
        if stage.kind != "row" or not len(df):
            return stage.run(df)
        self.start()
        df = stage.prepare_input(df)
        start = time.perf_counter()
        outcomes, info = self._map(stage, df)
        result = combine(stage, df, outcomes, time.perf_counter() - start)
        if is_llm_stage(stage) and hasattr(getattr(stage, "llm", None), "usage"):
            stage.llm.usage.add(**result.stats.get("llm", {}))
        result.stats["executor"] = info
        return result

    def _cpus(self) -> int:
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def _map(self, stage: Stage, df: pd.DataFrame) -> tuple[list, dict]:
        ray, llm, cpus = self.ray, is_llm_stage(stage), self._cpus()
        workers = (self.llm_actors or cpus) if llm else cpus
        chunks = split(df, self._rows_per_batch(stage, len(df), workers))
        try:
            stage_ref = ray.put(shippable(stage))
        except Exception as error:
            raise CurateError(f"stage {stage.name!r} cannot be sent to Ray workers "
                              f"({one_line(error)}); run it with the local executor") from None
        info = {"name": "ray", "batches": len(chunks)}
        if llm:
            from ...llm.cache import default_cache_path

            actors = info["actors"] = min(workers, len(chunks))
            # the run folder's cache, as an absolute path: workers lack the driver's context
            cache = Path(default_cache_path()).expanduser().resolve()
            mapped = map_slices(ray, chunks, LLMBatchActor, fn_constructor_kwargs={
                "stage_ref": [stage_ref], "actors": actors, "cache_path": str(cache)},
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=min(1.0, cpus / actors) / 2,
                max_restarts=WORKER_RETRIES, max_task_retries=WORKER_RETRIES)
        else:
            info["cpus"] = cpus
            mapped = map_slices(ray, chunks, run_batch_task, fn_kwargs={"stage_ref": [stage_ref]},
                                num_cpus=1, max_retries=WORKER_RETRIES)
        outcomes = self._collect(stage, mapped, len(df))
        limits = [o.info.get("rate_limits_per_actor") for o in outcomes]
        if any(limits):
            info["rate_limits_per_actor"] = next(x for x in limits if x)
        return outcomes, info

    def _collect(self, stage: Stage, mapped, total: int) -> list:
        outcomes = []
        try:
            with task(f"{stage.name} (ray)", total=total) as bar:
                for batch in mapped.iter_batches(batch_size=None, batch_format="pandas"):
                    for pickled in batch["payload"]:
                        outcomes.append(pickle.loads(pickled))
                        bar.advance(outcomes[-1].rows)
        except Exception as error:  # a worker or actor lost, memory...
            if _worker_died(self.ray, error):
                raise CurateError(
                    f"stage {stage.name!r}: a Ray worker died while running it, "
                    f"{WORKER_RETRIES + 1} times (a crash in native code, os._exit or the "
                    f"out-of-memory killer); run with --executor local to see the row, or "
                    f"look in Ray's worker logs") from None
            if not isinstance(error, self.ray.exceptions.RayError):
                raise
            raise _failed(stage, error) from error
        return outcomes

    def _rows_per_batch(self, stage: Stage, rows: int, workers: int) -> int:
        if self.batch_rows:
            return self.batch_rows
        concurrency = getattr(getattr(stage, "llm", None), "concurrency", 0) or 0
        least = 4 * concurrency if concurrency else 1_000
        return min(MAX_BATCH_ROWS, max(least, math.ceil(rows / (4 * workers))))


def _failed(stage: Stage, error: BaseException) -> CurateError:
    return CurateError(f"stage {stage.name!r} failed on Ray: {type(error).__name__}: "
                       f"{one_line(error)}")


def _worker_died(ray, error: BaseException) -> bool:
    """Whether ``error`` (or an error it wraps) is Ray's news of a worker or actor lost."""
    lost = (ray.exceptions.WorkerCrashedError, ray.exceptions.ActorDiedError,
            ray.exceptions.ActorUnavailableError, ray.exceptions.OutOfMemoryError,
            ray.exceptions.NodeDiedError)
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, lost):
            return True
        error = error.__cause__ or error.__context__
    return False


def _check_reachable(address: str) -> None:
    """A ``HOST:PORT`` that nothing answers on is one line now (Ray itself keeps retrying
    for minutes); ``auto`` and ``ray://`` addresses are left to Ray."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        raise CurateError(f"cannot attach to the Ray cluster at {address}: "
                          f"{error.strerror or error}; is `ray start --head` running "
                          f"there?") from None
