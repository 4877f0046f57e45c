"""Throughput of the LLM client against a loopback endpoint with a fixed latency.

Against one scripted server: a plain sequential ``openai`` loop (timed on a subset,
extrapolated); ``LLM.complete_many`` at a fixed concurrency, then self-tuning (AIMD under the
same ceiling), against the ideal concurrency / latency; the same requests from the response
cache (median of 3); a ``Judge`` stage over as many rows, through the endpoint and from the cache.
Then a server of ``--slots`` slots that queues the rest (as a busy vLLM does), or answers 429,
with a ceiling of 4x that: self-tuning against fixed, as a share of its best (slots / latency),
retries beside. Goals: the concurrent client at 0.9 of the ideal; the self-tuning one at 0.9 of
the fixed-capacity server's best with no timeout; cached runs above 5,000 rows/s.

    python bench/llm_throughput.py [--requests 2000] [--concurrency 32] [--latency 0.2]
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import openai
import pandas as pd
from benchkit import load, script_parser

from curate.llm import LLM, Request, Usage
from curate.stages.llm.judge import Judge
from curate.testing import ScriptedServer

VERDICT = json.dumps({"critique": "The query answers the question.", "outcome": "good"})


def _client(server: ScriptedServer, cache: Path | None, concurrency: int,
            adaptive: bool = False, **options) -> LLM:
    return LLM("bench", base_url=server.base_url, api_key="bench", cache=cache or False,
               concurrency=concurrency, adaptive=adaptive, **{"timeout": 30, **options})


def capacity_runs(args, table: list, status: int | None) -> None:
    """Self-tuning vs fixed against a server of ``args.slots`` slots that queues the rest
    (``status`` None) or refuses them with that status."""
    best, n = args.slots / args.latency, args.requests // 4
    what = "queues" if status is None else f"answers {status}"
    with ScriptedServer(lambda body: VERDICT, latency=args.latency, slots=args.slots,
                        busy_status=status) as server:
        for adaptive in (True, False):
            llm = _client(server, None, 4 * args.slots, adaptive, timeout=args.timeout,
                          max_tries=10, backoff=0.05)
            usage = Usage()
            seconds = timed(lambda: llm.complete_many(
                [Request(f"cap {adaptive} {i}") for i in range(n)], usage=usage))
            name = f"{args.slots} slots, {what}: {'self-tuning' if adaptive else 'fixed'}"
            table.append((name, n, seconds, n / seconds / best,
                          f"{usage.retried} retried, limit {llm.endpoint.concurrency.allowed()}"))


def sequential(server: ScriptedServer, n: int) -> float:
    """Requests per second of a plain synchronous openai loop."""
    client = openai.OpenAI(base_url=server.base_url, api_key="bench", max_retries=0)
    start = time.perf_counter()
    for i in range(n):
        client.chat.completions.create(model="bench",
                                       messages=[{"role": "user", "content": f"seq {i}"}])
    client.close()
    return n / (time.perf_counter() - start)


def timed(fn, repeat: int = 1) -> float:
    """Seconds for ``fn()``: the median of ``repeat`` runs (cached runs are short and noisy)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--sequential", type=int, default=25, help="requests timed sequentially")
    parser.add_argument("--slots", type=int, default=8, help="the fixed-capacity server's")
    parser.add_argument("--timeout", type=float, default=1.0,
                        help="the client's timeout against the fixed-capacity server")
    args = parser.parse_args()
    n, ideal = args.requests, args.concurrency / args.latency
    requests = [Request(f"question {i}") for i in range(n)]
    rows = pd.DataFrame({"nlq": [f"question {i}" for i in range(n)],
                         "query": [f'{{"calculations":[{{"op":"COUNT"}}],"n":{i}}}'
                                   for i in range(n)]})
    table = []  # (run, rows, seconds, share of ideal or None)
    with tempfile.TemporaryDirectory() as tmp, \
            ScriptedServer(lambda body: VERDICT, latency=args.latency) as server:
        seq = sequential(server, args.sequential)
        table.append(("sequential openai loop (extrapolated)", n, n / seq, seq / ideal))

        llm = _client(server, Path(tmp) / "a.sqlite", args.concurrency)
        seconds = timed(lambda: llm.complete_many(requests))
        table.append(("LLM.complete_many", n, seconds, n / seconds / ideal))
        tuned = _client(server, None, args.concurrency, adaptive=True)
        seconds = timed(lambda: tuned.complete_many([Request(f"t{i}") for i in range(n)]))
        table.append(("  self-tuning (adaptive=True)", n, seconds, n / seconds / ideal))
        sent = server.received
        seconds = timed(lambda: _client(server, Path(tmp) / "a.sqlite",
                                        args.concurrency).complete_many(requests), repeat=3)
        table.append(("  again, from the cache (median of 3)", n, seconds, None))
        if server.received != sent:
            raise SystemExit("the cached run sent requests")

        judge = Judge(_client(server, Path(tmp) / "b.sqlite", args.concurrency),
                      fields=["nlq", "query"])
        seconds = timed(lambda: judge.run(rows))
        table.append(("Judge stage", n, seconds, n / seconds / ideal))
        seconds = timed(lambda: judge.run(rows), repeat=3)
        table.append(("  again, from the cache (median of 3)", n, seconds, None))
    capacity_runs(args, table, None)
    capacity_runs(args, table, 429)
    _print(table, args, ideal)


def _print(table, args, ideal: float) -> None:
    print(f"loopback endpoint: latency {args.latency * 1000:.0f} ms, concurrency "
          f"{args.concurrency}, ideal {ideal:.0f} req/s; a server of {args.slots} slots: best "
          f"{args.slots / args.latency:.0f} req/s, the ceiling {4 * args.slots}, timeout "
          f"{args.timeout:g} s; load average {load()}\n")
    print(f"{'run':<44}{'rows':>7}{'seconds':>10}{'rows/s':>10}{'of ideal':>10}  note")
    for name, n, seconds, share, *note in table:
        share_text = f"{share:.2f}" if share is not None else "-"
        print(f"{name:<44}{n:>7}{seconds:>10.2f}{n / seconds:>10.0f}{share_text:>10}  "
              f"{note[0] if note else ''}")
    by_name = {name: n / seconds for name, n, seconds, *_ in table}
    speedup = by_name["LLM.complete_many"] / by_name["sequential openai loop (extrapolated)"]
    print(f"\nconcurrent client vs sequential loop: {speedup:.0f}x")


if __name__ == "__main__":
    main()
