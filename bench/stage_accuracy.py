"""Benchmark: what each curation stage removes, measured on faults injected at known rates.

The table is the Honeycomb seeds and their deterministic column swaps; faults of every kind
(``examples/honeycomb/faults.py``) are injected into the swaps (the seeds stay clean) at the
rates given. Each deterministic stage of the example spec (``examples/honeycomb/spec.py``,
built from the spec itself) runs on the whole table with ``Stage.run``, and then all of them
in the spec's order; for each, the table gives the share of every fault kind it removed
(recall), the share of clean rows it removed, and the precision of what it removed (with 95%
Wilson intervals). A filter that removes rows at random removes every kind at the same share
and has the fault rate as its precision: the line under the table gives both.

With ``--judge`` the spec's judge runs too when an endpoint is configured (``OPENAI_BASE_URL``,
``OPENAI_API_KEY``, ``CURATE_LLM_MODEL``); ``--embedded`` lets it run the embedded
SmolLM2-135M without one (slow: minutes per hundred rows). A row counts as removed by the
judge when it is rejected, errored or given the verdict ``bad``. No training is needed.

    .venv/bin/python bench/stage_accuracy.py
    .venv/bin/python bench/stage_accuracy.py --rates dropped_filter=0.1,near_duplicate=0.2 --seed 1
    OPENAI_BASE_URL=... .venv/bin/python bench/stage_accuracy.py --judge

`faulted_table`, `spec_stages`, `in_order`, `stage_accuracy` and `format_accuracy` are importable:
the outcome benchmark builds its noisy and curated sets with them and prints the same table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def _rates(text: str | None) -> dict | None:
    if not text:
        return None
    from examples.honeycomb.faults import DEFAULT_RATES

    rates = dict(DEFAULT_RATES)
    for pair in text.split(","):
        kind, _, share = pair.partition("=")
        rates[kind.strip()] = float(share)
    return rates


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", help="kind=share,... over the defaults (faults.DEFAULT_RATES)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the fault injection")
    parser.add_argument("--swaps", type=int, default=2, help="column swaps per seed")
    parser.add_argument("--judge", action="store_true", help="also the spec's judge (needs an endpoint)")
    parser.add_argument("--embedded", action="store_true", help="let the judge run the embedded model")
    parser.add_argument("--json", help="also write the records to this file")
    args = parser.parse_args(argv)
    judge = args.judge and (bool(os.environ.get("OPENAI_BASE_URL")) or args.embedded)
    if args.judge and not judge:
        print("no endpoint configured (OPENAI_BASE_URL): the judge is left out; --embedded runs it on the "
              "embedded SmolLM2-135M (slow)")
    print(f"load average: {os.getloadavg()[0]:.2f}; cpus: {os.cpu_count()}")
    start = time.time()
    try:
        table = faulted_table(_rates(args.rates), seed=args.seed, swaps=args.swaps)
    except ValueError as error:
        parser.error(str(error))
    records = stage_accuracy(table, spec_stages(judge=judge))
    print(format_accuracy(records, table))
    print(f"{time.time() - start:.0f} s; load average: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
