"""A row-wise stage run batch by batch, put back together as one run over the whole table.

A row-wise stage (``kind == "row"``) decides every row from that row alone, so it can run on
slices of its input in other processes. Each slice goes through the stage's own
:meth:`~curate.core.stage.Stage.run` (ids, row checks, the row-failure policy, bookkeeping
columns, origins), on a copy whose errored-share check is off; :func:`combine` then builds
the one :class:`~curate.core.stage.StageResult` the stage would have returned for the whole
table, and judges ``max_errored`` on it with the stage's own check.

Order. A stage lists the rows of each part (kept, rejected, errored) in groups, each group
in input order: a Derive keeps its input rows and then the rows it made; a Judge its judged
rows and then the ones it could not judge; an LLM stage with ``when`` the rows it passed
over first. Concatenating batches would interleave those groups, and the next stage (a
dedup keeps the first of two duplicates) or the export would see another order. So
:func:`run_batch` notes which of the stage's paths each output row took (by watching
``process``, and on LLM stages ``process_rows``, ``failed_rows`` and ``health``, on its
private copy) and gives it a group rank; :func:`combine` sorts the rows of all batches by
(group rank, position in the stage's input of the row or of the row it came from). Where a
batch's own order does not follow that pattern (a user's stage with another order), its
part is concatenated in input order instead.

Stats: the stage's base stats (counts, reasons, errors) are computed again on the combined
tables; numbers the stage added are summed and nested counts merged; an LLM stage's health
(replies, failure sample, warnings, tokens) is computed again from all batches' outcomes.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...core.stage import Stage, StageResult
from ...core.table import ID, PARENT
from ...errors import CurateError

PARTS = ("kept", "rejected", "errored")
# Group ranks, in the order a stage lists them.
KEPT_PASSED, KEPT_MAIN, KEPT_FAILED, KEPT_CREATED = 0, 1, 2, 3
REJECTED_MAIN, REJECTED_FAILED = 0, 1
ERRORED_CHECKED, ERRORED_PROCESS, ERRORED_ROUTED = 0, 1, 2


@dataclass
class BatchOutcome:
    """What one batch sends back: its result, the group rank of every output row, the
    stats the stage itself added, its LLM health inputs, or the error it stopped with."""

    first_id: object
    rows: int
    result: StageResult | None = None
    ranks: dict = field(default_factory=dict)
    process_stats: dict = field(default_factory=dict)
    health: tuple | None = None
    health_warnings: list = field(default_factory=list)
    error: tuple[type, str] | None = None  # (class, message): errors may not unpickle whole
    info: dict = field(default_factory=dict)


class _Watch:
    """Wraps a stage copy's methods to note which path each row took."""

    def __init__(self, stage: Stage):
        self.processed: set | None = None
        self.selected: set | None = None
        self.process_errored: set = set()
        self.process_stats: dict = {}
        self.failed = {part: set() for part in PARTS}
        self.health: tuple | None = None
        self.health_warnings: list = []
        self._wrap(stage)

    def _wrap(self, stage: Stage) -> None:
        process = stage.process

        def watched_process(df):
            self.processed = set(df[ID])
            result = process(df)
            self.process_errored = _ids(result.errored)
            self.process_stats = dict(result.stats)
            return result

        stage.process = watched_process
        if hasattr(stage, "process_rows") and hasattr(stage, "failed_rows"):
            self._wrap_llm(stage)

    def _wrap_llm(self, stage) -> None:
        process_rows, failed_rows, health = stage.process_rows, stage.failed_rows, stage.health

        def watched_rows(df, rows):
            self.selected = (self.selected or set()) | set(df[ID])
            return process_rows(df, rows)

        def watched_failed(df, failures):
            tables = failed_rows(df, failures)
            for part, table in zip(PARTS, tables):
                self.failed[part] |= _ids(table)
            return tables

        def watched_health(requests, parsed, failures, produced):
            stats = health(requests, parsed, failures, produced)
            short = [(i, dataclasses.replace(f, text=f.text[:300] if f.text else f.text))
                     for i, f in failures]
            self.health = (requests, parsed, short, produced)
            self.health_warnings = list(stats.get("warnings", []))
            return stats

        stage.process_rows, stage.failed_rows, stage.health = (watched_rows, watched_failed,
                                                               watched_health)

    def ranks(self, result: StageResult, batch_ids: set) -> dict:
        kept_ids = result.kept[ID]
        kept = np.full(len(kept_ids), KEPT_MAIN, dtype=np.int8)
        if self.selected is not None:
            kept[~kept_ids.isin(self.selected).to_numpy()] = KEPT_PASSED
        kept[kept_ids.isin(self.failed["kept"]).to_numpy()] = KEPT_FAILED
        kept[~kept_ids.isin(batch_ids).to_numpy()] = KEPT_CREATED
        rejected = np.where(result.rejected[ID].isin(self.failed["rejected"]),
                            REJECTED_FAILED, REJECTED_MAIN).astype(np.int8)
        errored_ids = result.errored[ID]
        errored = np.full(len(errored_ids), ERRORED_ROUTED, dtype=np.int8)
        errored[errored_ids.isin(self.process_errored).to_numpy()] = ERRORED_PROCESS
        errored[~errored_ids.isin(self.processed or set()).to_numpy()] = ERRORED_CHECKED
        return {"kept": kept, "rejected": rejected, "errored": errored}


def _ids(table: pd.DataFrame) -> set:
    return set(table[ID]) if ID in table.columns else set()


def prepare_input(stage: Stage, df: pd.DataFrame) -> pd.DataFrame:
    """The stage's input as its ``run`` sees it, the table-level checks done once here: a
    missing field is the same one-line error as in a local run."""
    return stage.prepare_input(df)


def split(df: pd.DataFrame, rows: int) -> list[pd.DataFrame]:
    """Consecutive slices of at most ``rows`` rows."""
    rows = max(1, int(rows))
    return [df.iloc[start:start + rows] for start in range(0, len(df), rows)]


def run_batch(stage: Stage, batch: pd.DataFrame, info: dict | None = None) -> BatchOutcome:
    """Run ``stage`` on one batch (a private copy, the errored-share check off)."""
    probe = copy.copy(stage)
    probe.max_errored = 1.0  # judged on the whole stage by combine()
    watch = _Watch(probe)
    outcome = BatchOutcome(batch[ID].iloc[0] if len(batch) else None, len(batch),
                           info=dict(info or {}))
    try:
        result = probe.run(batch)
    except CurateError as error:
        outcome.error = (type(error), str(error))
        return outcome
    outcome.result, outcome.ranks = result, watch.ranks(result, set(batch[ID]))
    outcome.process_stats, outcome.health = watch.process_stats, watch.health
    outcome.health_warnings = watch.health_warnings
    return outcome


# -- putting the batches together -----------------------------------------------------------
def combine(stage: Stage, df: pd.DataFrame, outcomes: list[BatchOutcome],
            seconds: float) -> StageResult:
    """One result for the whole input ``df`` (as :func:`prepare_input` gave it) from its
    batches' outcomes, in any order; raises the first batch's error, and TooManyRowErrors
    when the whole stage's errored share passes ``max_errored``."""
    position = pd.Index(df[ID])
    outcomes = sorted(outcomes, key=lambda o: position.get_loc(o.first_id)
                      if o.first_id is not None else len(position))
    for outcome in outcomes:
        if outcome.error is not None:
            raise _rebuilt(*outcome.error)
    parts = {part: merge_part(position, [getattr(o.result, part) for o in outcomes],
                              [o.ranks[part] for o in outcomes]) for part in PARTS}
    result = StageResult(parts["kept"], parts["rejected"], parts["errored"])
    stage._check_invariant(df, result)
    stats = merge_stats([o.process_stats for o in outcomes])
    stats = _with_health(stage, outcomes, stats)
    result.stats = {**stage._base_stats(df, result, seconds), **stats}
    stage._check_error_share(df, result)
    return result


def _rebuilt(kind: type, message: str) -> CurateError:
    """A batch's error as the same class and one-line message."""
    error = kind.__new__(kind)
    Exception.__init__(error, message)
    return error


def merge_part(position: pd.Index, frames: list[pd.DataFrame], ranks: list) -> pd.DataFrame:
    """One part from its batches, its rows in the order one run would list them."""
    present = [(f, np.asarray(r)) for f, r in zip(frames, ranks) if len(f)]
    if not present:
        return frames[0].reset_index(drop=True)
    table = pd.concat([f for f, _ in present], ignore_index=True)
    table = table[_column_order([f for f, _ in present], [r for _, r in present])]
    rank = np.concatenate([r for _, r in present])
    anchor = _anchors(position, table)
    bounds = np.cumsum([0] + [len(f) for f, _ in present])
    if all(_in_order(rank[a:b], anchor[a:b]) for a, b in zip(bounds[:-1], bounds[1:])):
        table = table.iloc[np.lexsort((anchor, rank))]
    return table.reset_index(drop=True)


def _column_order(frames: list[pd.DataFrame], ranks: list) -> list:
    """The columns of the batch that shows the most groups first (the order one run's
    concatenation of those groups gives), then any others in order of appearance."""
    widest = max(range(len(frames)), key=lambda i: (len(set(ranks[i].tolist())),
                                                    len(frames[i].columns), -i))
    columns = dict.fromkeys(frames[widest].columns)
    for frame in frames:
        columns.update(dict.fromkeys(frame.columns))
    return list(columns)


def _anchors(position: pd.Index, table: pd.DataFrame) -> np.ndarray:
    """Each row's input position, or its parent's for a row the stage made."""
    own = position.get_indexer(table[ID])
    if PARENT in table.columns:
        parent = position.get_indexer(table[PARENT].astype(object))
    else:
        parent = np.full(len(table), -1)
    return np.where(own >= 0, own, np.where(parent >= 0, parent, len(position)))


def _in_order(rank: np.ndarray, anchor: np.ndarray) -> bool:
    if len(rank) < 2:
        return True
    up = rank[1:] > rank[:-1]
    same = (rank[1:] == rank[:-1]) & (anchor[1:] >= anchor[:-1])
    return bool(np.all(up | same))


def merge_stats(batches: list[dict]) -> dict:
    """The stats a stage added, over its batches: numbers summed, dicts merged key by key,
    lists concatenated (repeated texts once), anything else as the first batch has it."""
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
            return list(dict.fromkeys(joined))
        return joined
    return values[0]


def _with_health(stage: Stage, outcomes: list[BatchOutcome], stats: dict) -> dict:
    """An LLM stage's health over all batches, computed by the stage's own ``health``."""
    batches = [o for o in outcomes if o.health is not None]
    if not batches:
        return stats
    from ...llm.accounting import Usage

    own = {w for o in batches for w in o.health_warnings}
    other = [w for w in stats.pop("warnings", []) if w not in own]
    probe = copy.copy(stage)
    probe._usage = Usage(**{k: v for k, v in stats.get("llm", {}).items()
                            if k in Usage.__dataclass_fields__})
    requests = sum(o.health[0] for o in batches)
    parsed = sum(o.health[1] for o in batches)
    failures = [f for o in batches for f in o.health[2]]
    produced = sum(o.health[3] for o in batches)
    health = probe.health(requests, parsed, failures, produced)
    warnings = other + health.pop("warnings", [])
    stats.update(health)
    if warnings:
        stats["warnings"] = warnings
    return stats
