"""Benchmark: the Ray executor against the local one on the same spec, at scale.

The spec: a row-wise length filter, a Derive making a variant of one row in ten, a complexity
band on the word count, exact dedup on the text, and an LLM judge (the loopback scripted server
with a realistic latency) on ``--llm-rows`` rows chosen with ``when``. Both sides run it into
fresh run folders (each with its own LLM cache), must keep the same rows in the same order, and
print wall times, the LLM stage and the deterministic stages apart, and their ratio (Ray /
local). A second table runs the judge alone with 1 and 2 LLM actors: an LLM-bound stage scales
with actors, where the deterministic stages, on 2 shared cores, do not gain from Ray. Ray starts
once (``--ray-cpus``) before anything is timed; the load average is printed beside every figure.

    .venv/bin/python bench/executor_ray.py                  # 100k and 1M rows
    .venv/bin/python bench/executor_ray.py --quick          # 10k rows
    .venv/bin/python bench/executor_ray.py --sizes 100000 --latency 0.3 --llm-rows 2000
"""
from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
from benchkit import best_of, load, script_parser

from curate import LLM, ComplexityFilter, Derive, ExactDedup, Filter, Judge, Pipeline
from curate.pipeline.executors import LocalExecutor
from curate.pipeline.executors.ray_executor import RayExecutor
from curate.testing import ScriptedServer

WORDS = ("latency error rate checkout payments auth search frontend inventory shipping "
         "billing gateway users catalog orders p99 p50 count sum heatmap region host pod "
         "route status deploy since yesterday hour week slow fast cold cache queue").split()


def make_rows(n: int, llm_rows: int, seed: int = 0):
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 16))) for _ in range(n)]
    step = max(1, n // max(1, llm_rows))
    return pd.DataFrame({"text": texts, "label": [rng.choice("abc") for _ in range(n)],
                         "pick": [i % step == 0 and i // step < llm_rows for i in range(n)]})


def verdict(body: dict) -> str:
    text = body["messages"][-1]["content"]
    outcome = "good" if len(text) % 3 else "bad"
    return json.dumps({"critique": f"{len(text)} characters", "outcome": outcome})


def picked(row) -> bool:
    return bool(row["pick"])


def long_enough(row):
    return len(row["text"]) > 40 or (False, "short")


def variant(row):
    return [{"text": row["text"] + " again"}] if len(row["text"]) % 10 == 0 else []


def word_count(text):
    return len(text.split())


def judge(llm):
    return Judge(llm, fields=["text"], keep="all", when=picked, on_failure="keep")


def full_spec(source, llm):
    return Pipeline(source=source, name="bench", stages=[
        Filter(long_enough), Derive(variant, name="variant"),
        ComplexityFilter(word_count, field="text", min_value=3, max_value=14),
        ExactDedup("text"), judge(llm)])


class StageClock:
    """An executor around another that notes every stage's wall time (the same measure on
    both sides: a stage's own ``seconds`` stat leaves out its row checks and bookkeeping)."""

    def __init__(self, inner):
        self.inner, self.name, self.seconds = inner, inner.name, {}

    def prepare(self, pipeline) -> None:
        self.inner.prepare(pipeline)

    def run_stage(self, stage, df):
        start = time.perf_counter()
        result = self.inner.run_stage(stage, df)
        self.seconds[stage.name] = time.perf_counter() - start
        return result


def timed_run(pipeline, out: Path, executor) -> tuple[float, object, dict]:
    """Wall seconds of the whole run, the run, and each stage's wall seconds."""
    shutil.rmtree(out, ignore_errors=True)
    clock = StageClock(executor)
    seconds, run = best_of(lambda: pipeline.run(out, progress=False, executor=clock))
    return seconds, run, clock.seconds


def split_seconds(seconds: dict) -> tuple[float, float]:
    """(the judge's seconds, the other stages' seconds)."""
    return seconds["judge"], sum(v for k, v in seconds.items() if k != "judge")


def compare_sizes(sizes, args, server, ray_executor, work: Path) -> list[tuple]:
    llm = LLM("scripted", base_url=server.base_url, api_key="x", concurrency=args.concurrency)
    table = []
    for n in sizes:
        pipeline = full_spec(make_rows(n, args.llm_rows), llm)
        before = load()
        local_s, local, local_stages = timed_run(pipeline, work / f"local_{n}", LocalExecutor())
        ray_s, on_ray, ray_stages = timed_run(pipeline, work / f"ray_{n}", ray_executor)
        assert local.kept["_id"].tolist() == on_ray.kept["_id"].tolist(), "different results"
        table.append((n, local_s, ray_s, *split_seconds(local_stages),
                      *split_seconds(ray_stages), len(local.kept), before, load()))
        print(f"{n:>9,} rows: local {local_s:.1f} s, ray {ray_s:.1f} s (load {load()})",
              flush=True)
    return table


def compare_actors(args, server, work: Path) -> list[tuple]:
    llm = LLM("scripted", base_url=server.base_url, api_key="x", concurrency=args.concurrency)
    rows = make_rows(args.llm_rows, args.llm_rows)
    pipeline = Pipeline(source=rows, stages=[judge(llm)], name="judge")
    table = [("local", timed_run(pipeline, work / "judge_local", LocalExecutor())[0], load())]
    for actors in (1, 2):
        executor = RayExecutor(llm_actors=actors)  # uses the Ray started in main()
        seconds = timed_run(pipeline, work / f"judge_ray_{actors}", executor)[0]
        table.append((f"ray, {actors} actor{'s' if actors > 1 else ''}", seconds, load()))
    return table


def print_tables(sizes_table, actors_table, args) -> None:
    print(f"\nspec: filter, derive, complexity, exact dedup, judge on {args.llm_rows:,} rows "
          f"(latency {args.latency} s, concurrency {args.concurrency} per client)")
    print("(wall seconds; LLM: the judge stage; det.: the four deterministic stages)")
    print(f"{'rows':>9} {'local s':>8} {'ray s':>7} {'ratio':>6} {'LLM local':>9} "
          f"{'LLM ray':>8} {'det. local':>10} {'det. ray':>9} {'kept':>8}  load before / after")
    for n, ls, rs, ll, ld, rl, rd, kept, before, after in sizes_table:
        print(f"{n:>9,} {ls:>8.1f} {rs:>7.1f} {rs / ls:>5.2f}x {ll:>9.1f} {rl:>8.1f} "
              f"{ld:>10.1f} {rd:>9.1f} {kept:>8,}  {before} / {after}")
    print(f"\njudge alone on {args.llm_rows:,} rows")
    base = actors_table[0][1]
    for label, seconds, after in actors_table:
        print(f"  {label:<16} {seconds:>6.1f} s  {base / seconds:>5.2f}x local  (load {after})")


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument("--quick", action="store_true", help="10k rows only")
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per LLM reply")
    parser.add_argument("--llm-rows", type=int, default=2000, help="rows the judge sees")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight per client")
    parser.add_argument("--ray-cpus", type=int, default=2)
    parser.add_argument("--object-store-mb", type=int, default=1024)
    args = parser.parse_args()
    sizes = [10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    if args.quick:
        args.llm_rows = min(args.llm_rows, 500)
    work = Path(tempfile.mkdtemp(prefix="executor_ray_"))
    print(f"load average before: {load()}  cpus: {os.cpu_count()}")
    ray_executor = RayExecutor(num_cpus=args.ray_cpus,
                               object_store_memory=args.object_store_mb * 2**20)
    print(f"ray start-up: {best_of(ray_executor.start)[0]:.1f} s (load {load()})")
    try:
        with ScriptedServer(verdict, latency=args.latency) as server:
            sizes_table = compare_sizes(sizes, args, server, ray_executor, work)
            actors_table = compare_actors(args, server, work)
    finally:
        ray_executor.close()
        shutil.rmtree(work, ignore_errors=True)
    print_tables(sizes_table, actors_table, args)
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
