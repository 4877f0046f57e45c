"""Benchmark: RougeDedup against self-instruct's Rouge-L loop (``rouge-score``) on the same texts.

Up to ``--full-max`` texts the reference runs in full and must keep the same rows with the same
``dup_of`` and scores; above, it is extrapolated from sampled candidates (bench/README.md).

    .venv/bin/python bench/rouge_dedup.py                 # 2k, 10k, 20k, 50k
    .venv/bin/python bench/rouge_dedup.py --sizes 2000,20000 --ref-seconds 30
"""
from __future__ import annotations

import random
import time

import numpy as np
import pandas as pd
from benchkit import best_of, machine, script_parser

from curate.stages.dedup_rouge import RougeDedup

METRICS = ["error rate", "p99 latency", "p50 latency", "request count", "duration",
           "cpu usage", "memory usage", "throughput", "status codes", "cache misses",
           "queue depth", "db query time", "retries", "timeouts", "payload size",
           "cold starts", "gc pauses", "open connections", "disk io", "dropped spans"]
SERVICES = ["checkout", "payments", "auth", "search", "frontend", "inventory", "shipping",
            "recommendations", "billing", "notifications", "gateway", "users", "catalog",
            "orders", "analytics", "email", "profile", "cart", "reviews", "ads", "ledger",
            "pricing", "media", "uploads", "scheduler", "webhooks", "exports", "tenants"]
WINDOWS = ["in the last hour", "over the past day", "since yesterday", "this week",
           "during the last 15 minutes", "over the last 30 days", "today", "last night",
           "in the past 6 hours", "since the deploy", "on monday morning", "after the outage"]
GROUPS = ["by endpoint", "by region", "by customer", "by host", "by version", "by status code",
          "per pod", "per user agent", "by http method", "by availability zone", "by team",
          "per tenant", "by build id", "by container", "by route"]
FILTERS = ["where status is 500", "for requests over 2 seconds", "excluding health checks",
           "only for mobile clients", "where the user is on the free plan",
           "for the eu cluster", "with errors", "for canary hosts", "where retries > 3",
           "when the cache is cold", "for enterprise accounts", "from the android app",
           "behind the new load balancer", "with feature flag dark_mode on"]
ASIDES = ["", "", "", "quickly", "please", "as a heatmap", "and flag outliers",
          "compared to last week", "with a 5 minute granularity", "ignoring bots",
          "I think something broke", "for the incident review", "so I can page the owner",
          "sorted descending", "as a percentage"]
TEMPLATES = [
    "What is the {m} of {s} {w} {g} {f}?", "Show me the {m} for the {s} service {w} {f}",
    "Which {g2} has the highest {m} {w}?", "How did {m} change for {s} {w} {g}",
    "Plot {m} {g} for {s} {f} {w}", "Are there spikes in {m} on {s} {w}?",
    "Compare {m} of {s} and {s2} {w} {g}", "List the top {k} {g2}s by {m} {f} {w}",
    "Why is {m} so high for {s} {w}?", "Give me a breakdown of {m} {g} {f}",
    "Count {m} events for {s} {g} {w}", "Find traces from {s} {f} {w} sorted by {m}",
    "Is {s} slower than {s2} {w}", "Alert me when {m} of {s} exceeds {k} {w}",
    "Break down {m} and {m2} {g} {f}", "Did the {s} rollout affect {m} {g}",
]
SYNONYMS = {"show me": "display", "what is": "what's", "highest": "largest",
            "last": "past", "service": "app", "change": "evolve", "count": "tally",
            "find": "look up", "give me": "provide", "spikes": "jumps"}


def _one(rng: random.Random) -> str:
    t = rng.choice(TEMPLATES)
    g = rng.choice(GROUPS)
    text = t.format(m=rng.choice(METRICS), m2=rng.choice(METRICS), s=rng.choice(SERVICES),
                    s2=rng.choice(SERVICES), w=rng.choice(WINDOWS), g=g, g2=g.split()[-1],
                    f=rng.choice(FILTERS), k=rng.randint(3, 500))
    return " ".join(f"{text} {rng.choice(ASIDES)}".split())


def _edit(text: str, rng: random.Random) -> str:
    """A near-duplicate: a synonym swap, a dropped word or a changed slot."""
    words = text.split()
    kind = rng.random()
    if kind < 0.35:
        for a, b in rng.sample(list(SYNONYMS.items()), len(SYNONYMS)):
            if a in text.lower():
                return text.lower().replace(a, b, 1)
    if kind < 0.7 and len(words) > 4:
        del words[rng.randrange(len(words))]
        return " ".join(words)
    words[rng.randrange(len(words))] = rng.choice(SERVICES + ["the", "all", "each"])
    return " ".join(words)


def make_texts(n: int, seed: int = 0, near_dup_rate: float = 0.3) -> list[str]:
    """Templated monitoring questions, about ``near_dup_rate`` of them edits of earlier ones."""
    rng = random.Random(seed)
    texts: list[str] = []
    while len(texts) < n:
        if texts and rng.random() < near_dup_rate:
            texts.append(_edit(rng.choice(texts), rng))
        else:
            texts.append(_one(rng))
    return texts


def reference_loop(texts: list[str], threshold: float = 0.7):
    """Self-instruct's filter, one process: kept positions and {rejected: (dup_of, score)}."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept, rejected = [], {}
    for i, text in enumerate(texts):
        scores = [scorer.score(text, texts[k])["rougeL"].fmeasure for k in kept]
        if scores and max(scores) > threshold:
            rejected[i] = (kept[int(np.argmax(scores))], max(scores))
        else:
            kept.append(i)
    return kept, rejected


def run_ours(texts: list[str]):
    df = pd.DataFrame({"text": texts, "_id": [str(i) for i in range(len(texts))]})
    seconds, res = best_of(lambda: RougeDedup("text").run(df))
    kept = [int(i) for i in res.kept["_id"]]
    rejected = {int(i): (int(d), s) for i, d, s in
                zip(res.rejected["_id"], res.rejected["_dup_of"], res.rejected["_rouge_l"])}
    return kept, rejected, seconds


def sampled_reference(texts, kept, rejected, budget_s: float, seed: int = 0):
    """Score sampled candidates against the real kept set; return (s per call, checked)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept_arr = np.asarray(kept)
    order = random.Random(seed).sample(range(len(texts)), len(texts))
    calls, checked, start = 0, 0, time.perf_counter()
    for i in order:
        before = kept_arr[: np.searchsorted(kept_arr, i)]
        if len(before) == 0:
            continue
        scores = [scorer.score(texts[i], texts[k])["rougeL"].fmeasure for k in before]
        calls += len(scores)
        checked += 1
        best = max(scores)
        if (i in rejected) != (best > 0.7):
            raise AssertionError(f"decision differs from the reference on text {i}")
        if i in rejected and rejected[i] != (int(before[int(np.argmax(scores))]), best):
            raise AssertionError(f"dup_of/score differ from the reference on text {i}")
        if time.perf_counter() - start > budget_s and checked >= 5:
            break
    return (time.perf_counter() - start) / calls, checked


def main(argv=None) -> None:
    ap = script_parser(__doc__)
    ap.add_argument("--sizes", default="2000,10000,20000,50000")
    ap.add_argument("--full-max", type=int, default=2000,
                    help="run the whole reference loop up to this many texts")
    ap.add_argument("--ref-seconds", type=float, default=20.0,
                    help="time spent sampling the reference at larger sizes")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(machine())
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        texts = make_texts(n, args.seed)
        kept, rejected, ours = run_ours(texts)
        pairs = int(sum(np.searchsorted(kept, i) for i in range(n)))  # score() calls
        if n <= args.full_max:
            ref, (ref_kept, ref_rej) = best_of(lambda: reference_loop(texts))
            how = "full run"
            assert ref_kept == kept, "kept sets differ from the reference"
            assert ref_rej == rejected, "dup_of or scores differ from the reference"
        else:
            per_call, checked = sampled_reference(texts, kept, rejected, args.ref_seconds,
                                                  args.seed)
            ref, how = per_call * pairs, f"extrapolated ({checked} candidates checked)"
        rows.append((n, len(kept), pairs, ours, ref, how))
        print(f"  {n} texts done: ours {ours:.2f}s, reference {ref:.0f}s ({how})", flush=True)
    print(f"\n{'texts':>7} {'kept':>7} {'score() calls':>14} {'RougeDedup s':>13} "
          f"{'reference s':>12} {'speed-up':>9}  reference")
    for n, k, pairs, ours, ref, how in rows:
        print(f"{n:>7} {k:>7} {pairs:>14,} {ours:>13.2f} {ref:>12.0f} {ref / ours:>8.0f}x  {how}")


if __name__ == "__main__":
    main()
