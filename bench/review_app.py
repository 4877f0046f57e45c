"""Benchmark: the review app on a 100k-row run folder: how long it takes to open, and how
long pages, filters and searches take to answer.

The run folder is built once from seeded Honeycomb-shaped rows by a length filter, a filter that
raises on a few rows, a complexity filter, exact dedup of the question, derived variants, and a
Judge on about 1% of the rows (the scripted loopback server). Measured, beside the load average:
``create_app(folder)`` in this process, and ``python -m curate.review RUN --port 0`` from its
start to the first page served; then each page over HTTP from that server, ``--repeat`` times
(median and slowest), the first search on its own (it may wait for the background search
index). Goals: open in under 3 s; every page under 200 ms, on 2 cores.

    .venv/bin/python bench/review_app.py                         # 100k rows
    .venv/bin/python bench/review_app.py --rows 20000 --keep /tmp/review-bench
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchkit import ROOT, best_of, load, script_parser

TOPICS = ("latency", "errors", "requests", "traces", "db calls", "cache misses", "timeouts",
          "retries", "queue depth", "payments", "checkout", "logins", "uploads", "searches")
GROUPS = ("service.name", "http.route", "cloud.region", "host.name", "http.status_code",
          "user.id", "db.system", "k8s.pod.name")
OPS = ("COUNT", "P99", "P50", "AVG", "MAX", "SUM", "HEATMAP")
PHRASES = ("show {t} by {g}", "which {g} has the most {t}", "{t} per {g} since the deploy",
           "break down {t} for each {g}", "p99 latency of {t} grouped by {g}",
           "how many {t} in the last {h} hours by {g}", "top {g} values for {t}")


def make_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` seeded rows; about 8% repeat an earlier question word for word."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if rows and rng.random() < 0.08:
            rows.append({**rng.choice(rows), "columns": list(rng.sample(GROUPS, 4))})
            continue
        topic, group = rng.choice(TOPICS), rng.choice(GROUPS)
        nlq = rng.choice(PHRASES).format(t=topic, g=group, h=rng.randint(1, 48)) + f" #{i}"
        calcs = [{"op": op} if op == "COUNT" else {"op": op, "column": "duration_ms"}
                 for op in rng.sample(OPS, rng.randint(1, 3))]
        query = {"calculations": calcs, "breakdowns": rng.sample(GROUPS, rng.randint(0, 3)),
                 "time_range": 3600 * rng.randint(1, 48)}
        if rng.random() < 0.3:
            query["filters"] = [{"column": "error", "op": "=", "value": True}]
        rows.append({"nlq": nlq, "columns": [group, *rng.sample(GROUPS, 3)], "query": query})
    return rows


def complexity(query) -> int:
    return sum(len(v) if isinstance(v, list) else 1 for v in query.values())


def number(row) -> int:
    return int(row["nlq"].rsplit("#", 1)[-1])


def every_97th_raises(row) -> bool:
    return 1 / (number(row) % 97) > 0


def variant(row) -> list[dict]:
    return [{"nlq": row["nlq"].replace("show", "list")}] if number(row) % 50 == 0 else []


def verdict(body: dict) -> str:
    text = body["messages"][-1]["content"]
    bad = "HEATMAP" in text or "SUM" in text
    return json.dumps({"critique": "Uses an aggregate the question did not ask for." if bad
                       else "Answers the question.", "outcome": "bad" if bad else "good"})


def build(work: Path, n: int, in_memory: bool = False) -> Path:
    from curate import (ComplexityFilter, Derive, ExactDedup, Filter, Judge, Pipeline,
                        ChatExport)
    from curate.llm import LLM
    from curate.testing import ScriptedServer

    rows = make_rows(n)
    source = rows if in_memory else work / "source.jsonl"
    if not in_memory:
        with open(source, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    with ScriptedServer(verdict) as server:
        llm = LLM("scripted", base_url=server.base_url, api_key="unused",
                  cache=work / "llm.sqlite", concurrency=8)
        stages = [Filter(lambda df: df["nlq"].str.len() > 24, batched=True, name="long_enough"),
                  Filter(every_97th_raises, name="number_check", max_errored=1.0),
                  ComplexityFilter(complexity, field="query", min_value=2, max_value=8),
                  ExactDedup("nlq"), Derive(variant, name="variants"),
                  Judge(llm, fields=["nlq", "query"], keep="all",
                        when=lambda row: number(row) % 100 == 1)]
        Pipeline(source=source, stages=stages, name=f"review-bench-{n}",
                 export=ChatExport(human="{nlq}\n\nColumns: {columns}", gpt="query",
                                       system="Write a Honeycomb query.")
                 ).run(work / "run", progress=False)
    return work / "run"


def get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()
        return time.perf_counter() - start


def start_command(run: Path) -> tuple[subprocess.Popen, str, float]:
    """The app started as a user starts it, and the seconds to its first page."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "curate.review", str(run), "--port", "0"],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not match:
        process.kill()
        raise SystemExit(f"the review app did not start: {line!r}")
    get(match.group(0) + "/")
    return process, match.group(0), time.perf_counter() - start


def pages(run: Path) -> list[tuple[str, str]]:
    from curate.pipeline.folder import open_run

    tables = open_run(run)
    kept = tables.kept["_id"].iloc[len(tables.kept) // 2]
    rejected = next(r.rejected["_id"].iloc[0] for _, r in tables.stages if len(r.rejected))
    return [("first page", "/"), ("page 1,000", "/?page=1000"),
            ("status = rejected", "/?status=rejected"),
            ("reason, sorted by _complexity", "/?reason=too_complex&sort=_complexity"),
            ("stage filter (created rows)", "/?stage=variants"),
            ("verdict = bad", "/?verdict=outcome%3Dbad"),
            ("search two words", "/?q=checkout+region"),
            ("search + status + sort",
             "/?q=%22p99+latency%22&status=kept&sort=_complexity&order=asc"),
            ("row page (kept, export text)", f"/row/{kept}"),
            ("row page (rejected)", f"/row/{rejected}"),
            ("label page", "/label")]


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", help="build the run folder here (reused when it is there)")
    parser.add_argument("--in-memory", action="store_true",
                        help="give the pipeline its rows in memory (the run folder then keeps a "
                             "Parquet copy of the source, which open_run reads instead of the "
                             "JSONL file)")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="review_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {load()}  cpus: {os.cpu_count()}")
    run = work / "run"
    if not (run / "manifest.json").exists():
        seconds, _ = best_of(lambda: build(work, args.rows, args.in_memory))
        print(f"built a {args.rows:,}-row run folder in {seconds:.1f} s")
    from curate.review import create_app

    start, cpu = time.perf_counter(), time.process_time()
    app = create_app(run)
    opened, cpu = time.perf_counter() - start, time.process_time() - cpu
    table = app.state.review.table
    print(f"create_app: {opened:.2f} s ({cpu:.2f} s of CPU) for {len(table.rows):,} rows: "
          f"open_run {table.seconds['open_run']:.2f} s, the app's table "
          f"{table.seconds['table']:.2f} s (load {load()})")
    del app, table
    process, url, first_page = start_command(run)
    try:
        print(f"python -m curate.review: {first_page:.2f} s from start to the first page "
              f"(load {load()})")
        first_search = get(url + "/?q=first+search")
        print(f"first search: {1000 * first_search:.0f} ms (load {load()})\n")
        print(f"{'request':<34} {'median ms':>10} {'max ms':>8}  goal 200 ms   load")
        for name, path in pages(run):
            times = [get(url + path) for _ in range(args.repeat)]
            print(f"{name:<34} {1000 * statistics.median(times):>10.1f} "
                  f"{1000 * max(times):>8.1f}  {'ok' if max(times) < 0.2 else 'SLOW':<11} {load()}")
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(f"\nload average after: {load()}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
