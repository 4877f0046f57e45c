"""Benchmark: which clustering labels the Honeycomb seeds' topics better, and clusters() at 100k.

Quality (``--quality``): the 171 Honeycomb seeds' questions (``nlq``) are clustered by
k-means (k chosen by silhouette, the default; and k = the number of reference classes) and
by HDBSCAN (default and smaller minimum size). Three reference labellings are read from each
question's own query, not from its words: the schema it is asked over (k8s / webshop /
payments), the family of its first calculation (count, distinct count, percentile or heatmap,
sum/avg/min/max, rate or concurrency) and its subject column (the first calculation's column,
else the first breakdown, else the first filter column). Agreement is the adjusted mutual
information (AMI: 0 for labels unrelated to the reference, 1 for the same partition; HDBSCAN's
noise counts as one more cluster), with a 95% interval over random 80% subsamples of the rows, beside the
degenerate answers: one cluster for all, and random labels of the default's cluster sizes.

Speed (``--rows N``): ``clusters(df, "text")`` end to end on N templated monitoring questions
(``rouge_dedup.make_texts``), then again with the embedding cache filled (the rerun's cost).
Baseline: raw ``model.encode`` rows/s on the first 5,000 texts in the same run.

    .venv/bin/python bench/clusters.py --quality
    .venv/bin/python bench/clusters.py --rows 100000
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from curate.clustering import cluster_vectors, clusters, embed_texts  # noqa: E402
from rouge_dedup import machine, make_texts  # noqa: E402

SEEDS = ROOT / "examples" / "honeycomb" / "data" / "seeds.jsonl"
FAMILIES = {"COUNT": "count", "COUNT_DISTINCT": "distinct", "HEATMAP": "percentile",
            "CONCURRENCY": "rate", "SUM": "aggregate", "AVG": "aggregate", "MAX": "aggregate",
            "MIN": "aggregate"}


def family(query: dict) -> str:
    calcs = query.get("calculations") or [{}]
    op = str(calcs[0].get("op", "none"))
    return FAMILIES.get(op, "percentile" if op.startswith("P") else
                        "rate" if op.startswith("RATE") else op.lower())


def subject(query: dict) -> str:
    calcs = query.get("calculations") or [{}]
    if calcs[0].get("column"):
        return calcs[0]["column"]
    if query.get("breakdowns"):
        return str(query["breakdowns"][0])
    filters = query.get("filters") or [{}]
    return str(filters[0].get("column", "none"))


def ami_interval(truth, labels, rounds: int = 1000, seed: int = 0):
    from sklearn.metrics import adjusted_mutual_info_score as ami

    truth, labels = np.asarray(truth), np.asarray(labels)
    rng = np.random.default_rng(seed)
    size = int(0.8 * len(truth))  # subsamples without replacement: a repeated row would
    draws = [ami(truth[i], labels[i]) for i in  # count as agreement by itself
             (rng.choice(len(truth), size, replace=False) for _ in range(rounds))]
    return ami(truth, labels), np.percentile(draws, 2.5), np.percentile(draws, 97.5)


def quality() -> None:
    rows = [json.loads(line) for line in SEEDS.read_text().splitlines() if line.strip()]
    refs = {"schema": [r["schema"] for r in rows], "calculation": [family(r["query"]) for r in rows],
            "subject column": [subject(r["query"]) for r in rows]}
    x, _ = embed_texts([r["nlq"] for r in rows])
    default = cluster_vectors(x)
    methods = {"k-means, k by silhouette (default)": default,
               **{f"k-means, k={len(set(v))} ({n})": cluster_vectors(x, k=len(set(v)))
                  for n, v in refs.items() if n != "subject column"},
               "HDBSCAN, default min size": cluster_vectors(x, "hdbscan"),
               "HDBSCAN, min size 5": cluster_vectors(x, "hdbscan", min_cluster_size=5),
               "one cluster (degenerate)": np.zeros(len(rows), int),
               "random, default's sizes (degenerate)": np.random.default_rng(0).permutation(default)}
    print(f"{len(rows)} Honeycomb seeds; reference classes: "
          + ", ".join(f"{n} {len(set(v))}" for n, v in refs.items()))
    print(f"{'clustering':40} {'clusters':>8} {'noise':>6}  " +
          "  ".join(f"{'AMI ' + n:>26}" for n in refs))
    for name, labels in methods.items():
        cells = []
        for truth in refs.values():
            value, lo, hi = ami_interval(truth, labels)
            cells.append(f"{value:>8.3f} [{lo:6.3f}, {hi:6.3f}]".rjust(26))
        print(f"{name:40} {len(set(labels) - {-1}):>8} {int((labels == -1).sum()):>6}  "
              + "  ".join(cells))


def speed(n: int) -> None:
    from curate.stages.dedup_embedding import load_model

    texts = make_texts(n, seed=0)
    df = pd.DataFrame({"text": texts})
    model = load_model()
    start = time.perf_counter()
    model.encode(texts[:5000], batch_size=256, normalize_embeddings=True)
    raw = 5000 / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "embeddings.sqlite"
        start = time.perf_counter()
        first = clusters(df, "text", cache=cache)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        vectors, embedded = embed_texts(texts, cache=cache)
        cached_embed = time.perf_counter() - start
        start = time.perf_counter()
        labels = cluster_vectors(vectors)
        fit = time.perf_counter() - start
    distinct = len(set(texts))
    print(f"{n} rows ({distinct} distinct texts); load average {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; {machine()}")
    print(f"raw model.encode: {raw:.0f} texts/s -> {distinct / raw:.1f} s predicted for the "
          f"distinct texts")
    print(f"clusters() cold: {cold:.1f} s ({len(first.table)} clusters, "
          f"{first.embedded} texts encoded); encoding share {distinct / raw / cold:.0%}")
    print(f"rerun: vectors from the cache {cached_embed:.1f} s ({embedded} encoded), "
          f"k chosen and fitted {fit:.1f} s ({len(set(labels))} clusters)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quality", action="store_true", help="k-means vs HDBSCAN on the seeds")
    ap.add_argument("--rows", type=int, default=0, help="time clusters() on this many rows")
    args = ap.parse_args(argv)
    if not args.quality and not args.rows:
        ap.error("give --quality and/or --rows N")
    if args.quality:
        quality()
    if args.rows:
        speed(args.rows)


if __name__ == "__main__":
    main()
