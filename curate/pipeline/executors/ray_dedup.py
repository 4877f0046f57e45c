"""MinHashDedup and ExactDedup distributed on Ray: the driver receives only the decisions.

Both run through the stage's own ``run`` (the row checks, errors, marks and stats of a local
run); only the pass itself is spread over the cluster:

- ``MinHashDedup``: ``map_batches`` shingles and signs slices of the text column and sends on
  shingle keys, sizes, masks, fingerprints and band keys (the signatures stay on the workers);
  one task per group of bands (as many groups as CPUs) joins the slices, sets aside rows whose
  set repeats an earlier row's and verifies the rows sharing a band key with the exact
  Jaccard. A pair is verified in the first band it shares, so the groups' pairs are disjoint
  and the local pass's.
- ``ExactDedup``: ``map_batches`` computes each row's canonical key values and a 64-bit hash
  per key; one task per hash partition groups its rows by their exact canonical values (the
  hash only routes a row).

One last task applies the keep-first rule. The driver gets back the rejected rows'
positions, the row each matched and the Jaccard or key: the kept rows are the local run's
(``tests/executors/test_ray_dedup.py``).
"""
from __future__ import annotations

import copy
import pickle
import time

import numpy as np
import pandas as pd

from ...core.stage import Stage, StageResult
from ...stages.dedup_exact import ExactDedup, _first_positions
from ...stages.dedup_minhash import MinHashDedup, Sketches
from .batched import map_slices, payload, split

ROW = "__row__"


def distributes(stage: Stage) -> bool:
    """Whether ``stage`` has a distributed pass here."""
    return isinstance(stage, (MinHashDedup, ExactDedup))


def run_distributed(ray, stage: Stage, df: pd.DataFrame, batch_rows: int, cpus: int,
                    retries: int) -> StageResult:
    """``stage.run(df)`` with its pass on Ray (see the module docstring)."""
    info = {"name": "ray", "distributed": True, "cpus": cpus}
    plan = _minhash if isinstance(stage, MinHashDedup) else _exact
    probe = copy.copy(stage)
    probe.process = lambda good: (plan(ray, stage, good, max(1, batch_rows), cpus, retries,
                                       info) if len(good) else stage.process(good))
    result = probe.run(df)
    result.stats["executor"] = info
    return result


# -- helpers ------------------------------------------------------------------------------
def _slice_task(batch: pd.DataFrame, stage_ref: list, fn, extra: dict) -> pd.DataFrame:
    import ray

    start = time.perf_counter()
    value = fn(ray.get(stage_ref[0]), batch, **extra)
    return payload((value, time.perf_counter() - start))


def _map(ray, stage, frame: pd.DataFrame, fn, batch_rows: int, retries: int, info: dict,
         **extra) -> list:
    """Refs to the Arrow blocks of ``fn(stage, slice, **extra)`` over consecutive slices of
    ``frame`` (with its row positions in ``ROW``), left in the object store (Arrow refs:
    pandas ones would convert each block in a task of its own)."""
    frame = frame.reset_index(drop=True).assign(**{ROW: np.arange(len(frame))})
    chunks = split(frame, batch_rows)
    info["batches"] = len(chunks)
    mapped = map_slices(ray, chunks, _slice_task, num_cpus=1, max_retries=retries,
                        fn_kwargs={"stage_ref": [ray.put(stage)], "fn": fn, "extra": extra})
    return mapped.materialize().to_arrow_refs()


def _slices(refs: list) -> tuple[list, float]:
    """(the slices' values, the seconds their workers spent on them)."""
    import ray

    timed = [pickle.loads(p.as_buffer()) for block in ray.get(refs)  # Arrow, no copy
             for p in block.column("payload")]
    return [value for value, _ in timed], sum(seconds for _, seconds in timed)


def _timed(info: dict, what: str, start: float) -> None:
    """Wall seconds since ``start`` as ``<what>_seconds``."""
    info[f"{what}_seconds"] = round(time.perf_counter() - start, 3)


# -- MinHashDedup -----------------------------------------------------------------------------
def _sketch_slice(stage: MinHashDedup, batch: pd.DataFrame, total: int):
    offset = int(batch[ROW].iloc[0]) if len(batch) else 0
    return stage.sketch_part(stage._texts(batch), offset, total)


def _band_pairs(stage: MinHashDedup, refs: list, bands: list[int]):
    """The similar pairs first found in ``bands``, with counts and timings; every slice's
    sketches are read (the exact Jaccard needs any two rows' shingle sets)."""
    start = time.perf_counter()
    parts, slice_seconds = _slices(refs)
    parts.sort(key=lambda part: part[0].offset)
    sketches = Sketches.joined([part[0] for part in parts])
    keys = np.concatenate([part[1] for part in parts], axis=1)
    del parts
    twins, reps, active = stage.plan(sketches)
    joined = time.perf_counter()
    pairs, counts = stage.similar_pairs(sketches, active, keys[:, active], bands)
    seconds = {"slice": slice_seconds, "join": joined - start,
               "bands": time.perf_counter() - joined}
    return pairs, counts, twins, reps, int((sketches.sizes == 0).sum()), seconds


def _minhash_decide(stage: MinHashDedup, n: int, *found):
    start = time.perf_counter()
    pairs = tuple(np.concatenate([f[0][i] for f in found]) for i in range(3))
    _, _, twins, reps, empty, seconds = found[0]
    keep, dup, best = stage.decide(n, pairs, twins, reps)
    rejected = np.flatnonzero(~keep)
    counts = {"empty_texts": empty, "identical_sets": len(twins),
              "similar_pairs": len(pairs[0]),
              **{k: sum(f[1][k] for f in found) for k in ("band_pairs", "verified_pairs")}}
    timing = {"sketch_task_seconds": round(seconds["slice"], 3),
              "join_task_seconds": [round(f[5]["join"], 3) for f in found],
              "band_task_seconds": [round(f[5]["bands"], 3) for f in found],
              "decide_task_seconds": round(time.perf_counter() - start, 3)}
    return rejected, dup[rejected], best[rejected], counts, timing


def _minhash(ray, stage: MinHashDedup, df: pd.DataFrame, batch_rows: int, cpus: int,
             retries: int, info: dict) -> StageResult:
    start = time.perf_counter()
    refs = _map(ray, stage, df[[stage.field]], _sketch_slice, batch_rows, retries, info,
                total=len(df))
    _timed(info, "sketch", start)
    bands, _ = stage.banding
    groups = [list(range(bands))[g::min(cpus, bands)] for g in range(min(cpus, bands))]
    info["band_groups"] = len(groups)
    remote = ray.remote(num_cpus=1, max_retries=retries)
    stage_ref = ray.put(stage)
    found = [remote(_band_pairs).remote(stage_ref, refs, group) for group in groups]
    rejected, dup, best, counts, timing = ray.get(
        remote(_minhash_decide).remote(stage_ref, len(df), *found))
    _timed(info, "pass", start)
    info.update(timing)
    keep = np.ones(len(df), dtype=bool)
    keep[rejected] = False
    dup_full, best_full = np.full(len(df), -1, dtype=np.int64), np.full(len(df), np.nan)
    dup_full[rejected], best_full[rejected] = dup, best
    return stage.decided(df, keep, dup_full, best_full, counts)


# -- ExactDedup -------------------------------------------------------------------------------
def _canonical_slice(stage: ExactDedup, batch: pd.DataFrame, plain: dict):
    canon, missing = stage.canonical_columns(batch, plain)
    frame = pd.DataFrame(canon)
    hashes = [pd.util.hash_pandas_object(frame[list(key)], index=False).to_numpy()
              for key in stage.keys]
    present = [~np.logical_or.reduce([missing[f] for f in key]) for key in stage.keys]
    return batch[ROW].to_numpy(), np.stack(hashes), np.stack(present), frame


def _exact_groups(stage: ExactDedup, refs: list, part: int, parts: int):
    """Per key: (rows, the first row of their group) for the groups of more than one row
    among the rows whose key hash falls in this partition."""
    start = time.perf_counter()
    slices, slice_seconds = _slices(refs)
    out = []
    for k, key in enumerate(stage.keys):
        chosen = [(s[1][k] % np.uint64(parts) == part) & s[2][k] for s in slices]
        rows = np.concatenate([s[0][c] for s, c in zip(slices, chosen)])
        frame = pd.concat([s[3].loc[c, list(key)] for s, c in zip(slices, chosen)],
                          ignore_index=True)
        order = np.argsort(rows, kind="stable")
        rows, frame = rows[order], frame.iloc[order].reset_index(drop=True)
        codes = stage._codes({f: frame[f] for f in key}, key,
                             {f: np.zeros(len(rows), dtype=bool) for f in key})
        shared = np.bincount(codes, minlength=1)[codes] > 1 if len(codes) else codes > 0
        out.append((rows[shared], rows[_first_positions(codes)[codes]][shared]))
    return out, {"slice": slice_seconds, "group": time.perf_counter() - start}


def _exact_decide(keys: int, *found):
    """Keep-first over the keys: (rejected rows, the key that matched, the kept row), and
    the tasks' seconds."""
    timing = {"canonical_task_seconds": round(found[0][1]["slice"], 3),
              "group_task_seconds": [round(f[1]["group"], 3) for f in found]}
    start = time.perf_counter()
    decision = _exact_keep_first(keys, [f[0] for f in found])
    return (*decision, {**timing, "decide_task_seconds": round(time.perf_counter() - start, 3)})


def _exact_keep_first(keys: int, found: list):
    rows = [np.concatenate([f[k][0] for f in found]) for k in range(keys)]
    first = [np.concatenate([f[k][1] for f in found]) for k in range(keys)]
    if keys == 1:
        rejected = rows[0] != first[0]
        return rows[0][rejected], np.zeros(int(rejected.sum()), np.int64), first[0][rejected]
    group = [dict(zip(r.tolist(), g.tolist())) for r, g in zip(rows, first)]
    owner = [dict() for _ in range(keys)]
    out = ([], [], [])
    for pos in sorted(set().union(*group)):
        for k in range(keys):
            hit = owner[k].get(group[k].get(pos))
            if hit is not None:
                for values, value in zip(out, (pos, k, hit)):
                    values.append(value)
                break
        else:
            for k in range(keys):
                if pos in group[k]:
                    owner[k][group[k][pos]] = pos
    return tuple(np.asarray(v, dtype=np.int64) for v in out)


def _exact(ray, stage: ExactDedup, df: pd.DataFrame, batch_rows: int, cpus: int,
           retries: int, info: dict) -> StageResult:
    start = time.perf_counter()
    fields = list(stage.required_fields())
    plain = {f: stage.plain(df[f]) for f in fields}
    refs = _map(ray, stage, df[fields], _canonical_slice, batch_rows, retries, info,
                plain=plain)
    _timed(info, "canonical", start)
    remote = ray.remote(num_cpus=1, max_retries=retries)
    stage_ref = ray.put(stage)
    found = [remote(_exact_groups).remote(stage_ref, refs, part, cpus) for part in range(cpus)]
    info["partitions"] = cpus
    rejected, key, match, timing = ray.get(remote(_exact_decide).remote(len(stage.keys),
                                                                        *found))
    _timed(info, "pass", start)
    info.update(timing)
    dup_key, match_full = np.full(len(df), -1, dtype=np.int64), np.full(len(df), -1)
    dup_key[rejected], match_full[rejected] = key, match
    return stage.decided(df, dup_key, match_full)
