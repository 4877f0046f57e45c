"""What each curation stage removes, measured on faults injected at known rates.

The table is the Honeycomb seeds and their column swaps, faults of every kind (`faults.py`)
injected into the swaps. `stage_accuracy` gives per stage (and for all in order) the share of
every fault kind and of the clean rows it removed, and its precision, with 95% Wilson intervals;
`recall_at` the recall of a score at a fixed share of clean rows (``bench/`` prints them).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples/honeycomb/spec.py"
SEEDS = ROOT / "examples/honeycomb/data/seeds.jsonl"
LABEL = "fault"
CLEAN = "clean"


def faulted_table(rates: dict | None = None, seed: int = 0, swaps: int = 2) -> pd.DataFrame:
    """The seeds and ``swaps`` column swaps of each, faults injected into the swaps, with ids."""
    from curate.core.table import assign_ids
    from examples.honeycomb.column_swap import column_swaps
    from examples.honeycomb.faults import inject_faults

    seeds = [json.loads(line) for line in SEEDS.read_text().splitlines() if line.strip()]
    table = pd.DataFrame(seeds + column_swaps(seeds, n=swaps, seed=0))
    return assign_ids(inject_faults(table, rates, seed=seed, eligible=table["swap"].notna(), column=LABEL))


def spec_stages(judge: bool = False) -> list:
    """The example spec's deterministic filter and dedup stages, in its order (one of two
    stages doing the same work, such as the second assertion filter, is left out); with
    ``judge``, its judge after them."""
    from curate import Derive, Judge, LLMStage, Sample
    from curate.core.fingerprint import describe
    from curate.pipeline.spec import load_spec

    chosen, seen = [], set()
    for stage in load_spec(SPEC).stages:
        if isinstance(stage, (Sample, Derive)) or (isinstance(stage, LLMStage) and not
                                                   (judge and isinstance(stage, Judge))):
            continue
        work = json.dumps([type(stage).__name__, describe({k: v for k, v in vars(stage).items()
                                                            if k != "name" and not k.startswith("_")})],
                          sort_keys=True, default=str)
        if work not in seen:
            seen.add(work)
            chosen.append(stage)
    return chosen


def removed_ids(stage, result) -> set:
    """Ids a stage removed: rejected, errored, or (an advisory judge) judged bad."""
    ids = set(result.rejected["_id"]) | set(result.errored["_id"])
    verdicts = [c for c, role in stage.added_columns().items() if role == "verdict"]
    for column in verdicts:
        if column in result.kept.columns:
            ids |= set(result.kept.loc[result.kept[column] == "bad", "_id"])
    return ids


def wilson(k: int, n: int) -> tuple[float, float, float]:
    """``(share, low, high)``: k of n with its 95% Wilson interval (scipy)."""
    from scipy.stats import binomtest

    if not n:
        return float("nan"), float("nan"), float("nan")
    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return k / n, float(ci.low), float(ci.high)


def accuracy(name: str, table: pd.DataFrame, removed: set, seconds: float) -> dict:
    """One stage's record: per kind (``clean`` included) how many rows it removed of how many."""
    kinds = table[LABEL].fillna(CLEAN)
    gone = table["_id"].isin(removed)
    by_kind = {kind: dict(zip(("share", "low", "high"), wilson(int(gone[kinds == kind].sum()),
                                                               int((kinds == kind).sum()))),
                          n=int((kinds == kind).sum()), removed=int(gone[kinds == kind].sum()))
               for kind in [CLEAN, *sorted(set(kinds) - {CLEAN})]}
    faulty = int((gone & (kinds != CLEAN)).sum())
    precision = dict(zip(("share", "low", "high"), wilson(faulty, int(gone.sum()))))
    return {"stage": name, "removed": int(gone.sum()), "precision": precision, "by_kind": by_kind,
            "seconds": round(seconds, 2)}


def in_order(table: pd.DataFrame, stages: list) -> tuple[pd.DataFrame, set, float]:
    """Every stage in turn, each on what the one before kept: ``(kept, removed ids, seconds)``."""
    kept, removed, start = table, set(), time.perf_counter()
    for stage in stages:
        gone = removed_ids(stage, stage.run(kept))
        removed |= gone
        kept = kept[~kept["_id"].isin(gone)]
    return kept, removed, time.perf_counter() - start


def stage_accuracy(table: pd.DataFrame, stages: list, chain: bool = True) -> list[dict]:
    """Run each stage on the whole table (``Stage.run``), then (``chain``) all in order, each on
    what the one before kept (`in_order`); one `accuracy` record each."""
    records = []
    for stage in stages:
        start = time.perf_counter()
        result = stage.run(table)
        records.append(accuracy(stage.name, table, removed_ids(stage, result), time.perf_counter() - start))
    if chain and stages:
        _, removed, seconds = in_order(table, stages)
        records.append(accuracy("all, in spec order", table, removed, seconds))
    return records


def _cell(part: dict, interval: bool = False) -> str:
    if part["share"] != part["share"]:  # nan: no rows of the kind, or none removed for a precision
        return "-"
    text = f"{part['share']:.0%}"
    return f"{text} [{part['low']:.0%},{part['high']:.0%}]" if interval else text


def format_accuracy(records: list[dict], table: pd.DataFrame) -> str:
    """The table: one line per stage; recall per fault kind, clean rows removed, precision."""
    kinds = [k for k in records[0]["by_kind"] if k != CLEAN]
    counts = table[LABEL].fillna(CLEAN).value_counts()
    width = max(len(r["stage"]) for r in records) + 1
    head = f"{'stage':<{width}}{'removed':>8}  {'precision [95% CI]':<18} {'clean removed':<16}" + \
        "".join(f"{k:>{max(len(k), 6) + 1}}" for k in kinds)
    lines = [head, f"{'rows':<{width}}{len(table):>8}  {'':<18} {counts.get(CLEAN, 0):<16}" +
             "".join(f"{counts.get(k, 0):>{max(len(k), 6) + 1}}" for k in kinds)]
    for r in records:
        lines.append(f"{r['stage']:<{width}}{r['removed']:>8}  {_cell(r['precision'], True):<18} "
                     f"{_cell(r['by_kind'][CLEAN], True):<16}" +
                     "".join(f"{_cell(r['by_kind'][k]):>{max(len(k), 6) + 1}}" for k in kinds))
    for r in records:
        clean = r["by_kind"][CLEAN]
        if clean["share"] > 0.1:
            lines.append(f"note: {r['stage']} removes {clean['share']:.0%} of the clean rows; a filter removing "
                         f"rows at random at that share would show the same recall of every kind")
    faulty = 1 - counts.get(CLEAN, 0) / len(table)
    lines.append(f"a filter removing rows at random removes each kind at the share it removes clean rows, "
                 f"with precision {faulty:.0%} (the fault rate); recall is of the kind's rows, each share "
                 f"with n as in the rows line (95% Wilson intervals in the records)")
    return "\n".join(lines)


def recall_at(scores: pd.Series, labels: pd.Series, clean_share: float = 0.1) -> dict:
    """Recall of every fault kind (and of all faults) when rows scoring above a threshold are
    removed, the threshold being the lowest that removes at most ``clean_share`` of the clean
    rows; with the AUC of faulted against clean rows (scikit-learn)."""
    from sklearn.metrics import roc_auc_score

    kinds = labels.fillna(CLEAN)
    clean = np.sort(scores[kinds == CLEAN].to_numpy())[::-1]
    allowed = int(np.floor(clean_share * len(clean)))  # clean rows that may lie above
    threshold = clean[allowed] if allowed < len(clean) else -np.inf
    above = scores > threshold
    out = {"threshold": float(threshold),
           "clean": wilson(int(above[kinds == CLEAN].sum()), int((kinds == CLEAN).sum()))}
    for kind in [*sorted(set(kinds) - {CLEAN}), "all faults"]:
        rows = kinds != CLEAN if kind == "all faults" else kinds == kind
        out[kind] = wilson(int(above[rows].sum()), int(rows.sum()))
    out["auc"] = float(roc_auc_score(kinds != CLEAN, scores))
    return out
