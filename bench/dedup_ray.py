"""Benchmark: MinHashDedup and ExactDedup, local against distributed on Ray, at scale.

Each side runs in a fresh process on ``make_corpus``: wall seconds, the driver's peak and base
RSS, rows rejected, whether Ray kept the local rows; for Ray its workers' seconds per phase and
a projection to 16 cores, MinHash: driver + sketch/16 + join + bands/min(16, bands) + decide +
overhead (ExactDedup: driver + canonical/16 + groups/16 + decide + overhead, a lower bound).
bench/README.md explains the terms.

    .venv/bin/python bench/dedup_ray.py                    # 1M rows
    .venv/bin/python bench/dedup_ray.py --sizes 100000     # a minute or two
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from benchkit import child_json, load, memory_mb, script_parser

from curate.testing.near_duplicates import make_corpus


def make_stage(name: str):
    from curate import ExactDedup, MinHashDedup

    return MinHashDedup("text") if name == "minhash" else ExactDedup("text",
                                                                     normalize_text=True)


def child(stage_name: str, side: str, n: int, cpus: int, keep_path: str) -> dict:
    texts, _ = make_corpus(n, 0)
    df = pd.DataFrame({"text": texts, "_id": [f"r{i}" for i in range(n)]})
    del texts
    executor = None
    if side == "ray":
        from curate.pipeline.executors.ray_executor import RayExecutor

        executor = RayExecutor(num_cpus=cpus)
        executor.start()
        executor.run_stage(make_stage(stage_name), df.iloc[:2000].copy())  # warm the workers
    before = memory_mb("VmRSS")
    start = time.perf_counter()
    stage = make_stage(stage_name)
    result = stage.run(df) if executor is None else executor.run_stage(stage, df)
    seconds = time.perf_counter() - start
    peak = memory_mb()
    np.save(keep_path, result.kept["_id"].str[1:].astype(np.int64).to_numpy())
    if executor is not None:
        executor.close()
    return {"seconds": seconds, "peak_mb": peak, "before_mb": before, "load": load(),
            "rejected": len(result.rejected), "executor": result.stats.get("executor")}


def projection(stage_name: str, run: dict, cpus: int, target: int = 16) -> float:
    """Seconds on ``target`` cores from the per-core figures of a run on ``cpus``."""
    info = run["executor"]
    driver = run["seconds"] - info["pass_seconds"]
    if stage_name == "minhash":
        bands = len(info["band_task_seconds"]) and sum(info["band_task_seconds"])
        on_two = (info["sketch_task_seconds"] / cpus + max(info["join_task_seconds"])
                  + max(info["band_task_seconds"]) + info["decide_task_seconds"])
        overhead = max(0.0, info["pass_seconds"] - on_two)
        return (driver + info["sketch_task_seconds"] / target + max(info["join_task_seconds"])
                + bands / min(target, 13) + info["decide_task_seconds"] + overhead)
    groups = sum(info["group_task_seconds"])
    on_two = (info["canonical_task_seconds"] / cpus + max(info["group_task_seconds"])
              + info["decide_task_seconds"])
    overhead = max(0.0, info["pass_seconds"] - on_two)
    return (driver + info["canonical_task_seconds"] / target + groups / target
            + info["decide_task_seconds"] + overhead)


def main(argv=None) -> None:
    ap = script_parser(__doc__)
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--stages", default="minhash,exact")
    ap.add_argument("--ray-cpus", type=int, default=2)
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        stage_name, side, n, cpus, keep_path = args.child
        print(json.dumps(child(stage_name, side, int(n), int(cpus), keep_path)))
        return
    print(f"{os.cpu_count()} cores | load average {load()} | Ray with {args.ray_cpus} CPUs")
    print(f"{'stage':<9}{'rows':>10}{'side':>6}{'seconds':>9}{'peak MB':>9}{'base MB':>9}"
          f"{'rejected':>10}{'same rows':>10}{'16-core s':>10}   load")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            for stage_name in args.stages.split(","):
                runs = {side: child_json([sys.executable, __file__, "--child", stage_name, side,
                                          str(n), str(args.ray_cpus), f"{tmp}/{side}.npy"],
                                         f"{stage_name} on {side}")
                        for side in ("local", "ray")}
                same = np.array_equal(np.load(f"{tmp}/local.npy"), np.load(f"{tmp}/ray.npy"))
                for side, r in runs.items():
                    guess = (f"{projection(stage_name, r, args.ray_cpus):>10.1f}"
                             if side == "ray" else f"{'':>10}")
                    print(f"{stage_name:<9}{n:>10,}{side:>6}{r['seconds']:>9.1f}"
                          f"{r['peak_mb']:>9.0f}{r['before_mb']:>9.0f}{r['rejected']:>10}"
                          f"{str(same) if side == 'ray' else '':>10}{guess}   {r['load']}",
                          flush=True)
                print(f"  ray phases: {json.dumps(runs['ray']['executor'])}", flush=True)


if __name__ == "__main__":
    main()
