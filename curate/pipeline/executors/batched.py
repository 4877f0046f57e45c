"""A row-wise stage run batch by batch, put back together as one run over the whole table.

A row-wise stage (``kind == "row"``) decides every row from that row alone, so slices of its
input can go through its own :meth:`~curate.core.stage.Stage.run` in other processes (on a
copy whose errored-share check is off). Row order is part of the stage contract, so
:func:`combine` concatenates the parts in slice order; it then computes the base stats, an
LLM stage's health and the ``max_errored`` decision again on the whole.
"""
from __future__ import annotations

import copy
import pickle
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...core.stage import PARTS, Stage, StageResult
from ...core.table import ID
from ...errors import CurateError

LIST_CAP = 1000  # entries a merged list keeps (a manifest holds samples, not every row)


@dataclass
class BatchOutcome:
    """What one batch sends back: its result, or the error it stopped with."""

    first_id: object
    rows: int
    result: StageResult | None = None
    error: tuple[type, str] | None = None  # (class, message): errors may not unpickle whole
    info: dict = field(default_factory=dict)


def split(df: pd.DataFrame, rows: int) -> list[pd.DataFrame]:
    """Consecutive slices of at most ``rows`` rows."""
    rows = max(1, int(rows))
    return [df.iloc[start:start + rows] for start in range(0, len(df), rows)]


def map_slices(ray, chunks: list[pd.DataFrame], fn, **options):
    """Ray Data's ``map_batches`` of ``fn`` over ``chunks``, one slice a batch."""
    dataset = ray.data.from_pandas_refs([ray.put(chunk) for chunk in chunks])
    with warnings.catch_warnings():  # the retry bounds have no named parameter yet
        warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
        return dataset.map_batches(fn, batch_size=None, batch_format="pandas", **options)


def payload(value) -> pd.DataFrame:
    """What a worker sends back: ``value`` pickled in a one-cell frame."""
    return pd.DataFrame({"payload": [pickle.dumps(value, protocol=5)]})


def run_batch(stage: Stage, batch: pd.DataFrame, info: dict | None = None) -> BatchOutcome:
    """Run ``stage`` on one batch (a private copy, the errored-share check off)."""
    probe = copy.copy(stage)
    probe.max_errored = 1.0  # judged on the whole stage by combine()
    outcome = BatchOutcome(batch[ID].iloc[0] if len(batch) else None, len(batch),
                           info=dict(info or {}))
    try:
        outcome.result = probe.run(batch)
    except CurateError as error:
        outcome.error = (type(error), str(error))
    return outcome


def combine(stage: Stage, df: pd.DataFrame, outcomes: list[BatchOutcome],
            seconds: float) -> StageResult:
    """One result for the whole input ``df`` (as ``stage.prepare_input`` gave it) from its
    batches' outcomes, in any order; raises the first batch's error, and TooManyRowErrors
    when the whole stage's errored share passes ``max_errored``."""
    position = pd.Index(df[ID])
    outcomes = sorted(outcomes, key=lambda o: position.get_loc(o.first_id)
                      if o.first_id is not None else len(position))
    for outcome in outcomes:
        if outcome.error is not None:
            raise _rebuilt(*outcome.error)
    result = StageResult(*(concat_part([getattr(o.result, p) for o in outcomes])
                           for p in PARTS))
    stage._check_invariant(df, result)
    stats = merge_stats([o.result.stats for o in outcomes])
    if "replies" in stats and callable(getattr(stage, "health", None)):
        stats.pop("warnings", None)  # an LLM stage's warnings are its health's
        stats.update(llm_health(stage, stats))
    result.stats = {**stats, **stage._base_stats(df, result, seconds)}
    stage._check_error_share(df, result)
    return result


def _rebuilt(kind: type, message: str) -> CurateError:
    """A batch's error as the same class and one-line message."""
    error = kind.__new__(kind)
    Exception.__init__(error, message)
    return error


def concat_part(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One part from its batches, in batch order; the columns in the order of the batch
    that has the most (a group of rows that adds columns shows in it), then any others."""
    present = [f for f in frames if len(f)] or frames[:1]
    columns = dict.fromkeys(max(present, key=lambda f: len(f.columns)).columns)
    for frame in present:
        columns.update(dict.fromkeys(frame.columns))
    return pd.concat(present, ignore_index=True)[list(columns)]


def merge_stats(batches: list[dict]) -> dict:
    """Stats over batches: numbers summed, dicts merged key by key, lists concatenated
    (repeated texts once, at most `LIST_CAP` entries), anything else as the first batch
    has it."""
    merged: dict = {}
    for stats in batches:
        for key, value in stats.items():
            merged.setdefault(key, []).append(value)
    return {key: _merge_values(values) for key, values in merged.items()}


def _merge_values(values: list):
    if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values):
        total = sum(values)
        return round(float(total), 6) if any(isinstance(v, float) for v in values) else total
    if all(isinstance(v, dict) for v in values):
        return merge_stats(values)
    if all(isinstance(v, list) for v in values):
        joined = [item for v in values for item in v]
        if all(isinstance(item, str) for item in joined):
            joined = list(dict.fromkeys(joined))
        return joined[:LIST_CAP]
    return values[0]


def llm_health(stage, stats: dict) -> dict:
    """What an LLM stage's own ``health`` says of its summed counts: the verdict, warnings
    and failure sample of the whole stage. The failures past the batches' samples are
    known by their code only, which is all the verdict reads of them."""
    from ...llm.accounting import Usage
    from ...llm.types import Failure

    replies = stats["replies"]
    failures = [(f["_id"], Failure(f["code"], f["reason"], text=f.get("reply")))
                for f in stats.get("failure_sample", [])]
    left = Counter({f"llm_{k}": n for k, n in replies.items() if k not in ("requests", "parsed")})
    left.subtract(f.code for _, f in failures)
    failures += [(None, Failure(code, "")) for code, n in left.items() for _ in range(n)]
    probe = copy.copy(stage)
    probe._usage = Usage(**{k: v for k, v in stats.get("llm", {}).items()
                            if k in Usage.__dataclass_fields__})
    probe._usage.batches = list(stats.get("batches", []))
    return probe.health(replies["requests"], replies["parsed"], failures,
                        stats.get("produced", 0))
