"""Benchmark: which clustering labels the Honeycomb seeds' topics better, and clusters() at 100k.

``--quality``: k-means and HDBSCAN against labellings read from each seed's query (AMI with a
95% interval over 80% subsamples), beside one cluster and random labels. ``--rows N``: each step
of ``clusters()`` on N templated questions, wall and CPU seconds; encoding, the baseline, is
timed on ``--encode`` texts and predicted for the rest unless ``--encode-all``; the steps after
it run on N vectors, the ``--encode`` ones tiled, each copy turned by a random rotation (as in
``embed_dedup.py``) (bench/README.md).

    .venv/bin/python bench/clusters.py --quality
    .venv/bin/python bench/clusters.py --rows 100000
    .venv/bin/python bench/clusters.py --rows 100000 --encode-all     # slow on 2 cores
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from benchkit import ROOT, load, machine, script_parser
from embed_dedup import tiled
from rouge_dedup import make_texts
from sklearn.metrics import adjusted_mutual_info_score as ami

from curate.clustering import (EmbeddingCache, cluster_table, cluster_vectors, embed_texts,
                               project_2d)
from curate.clustering.embed import text_key
from curate.stages.dedup_embedding import load_model

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
        cells = ["{:>8.3f} [{:6.3f}, {:6.3f}]".format(*ami_interval(truth, labels)).rjust(26)
                 for truth in refs.values()]
        print(f"{name:40} {len(set(labels) - {-1}):>8} {int((labels == -1).sum()):>6}  "
              + "  ".join(cells))


def speed(n: int, encode: int, encode_all: bool) -> None:
    steps = []  # (name, wall seconds, CPU seconds of all threads of this process)

    def timed(name: str, fn):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        steps.append((name, time.perf_counter() - wall, time.process_time() - cpu))
        return out

    texts = make_texts(n, seed=0)
    load_model()
    first = texts[:encode]
    encoded = timed(f"encode {len(first)} texts (model.encode)", lambda: load_model().encode(
        first, batch_size=256, normalize_embeddings=True, convert_to_numpy=True))
    rate_wall, rate_cpu = len(first) / steps[0][1], len(first) / steps[0][2]
    if encode_all:
        x = timed(f"encode all {n} texts", lambda: embed_texts(texts)[0])
    else:  # the real vectors, tiled: copies turned by random rotations (see embed_dedup.py)
        x = tiled(encoded.astype(np.float32), n)
    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(Path(tmp) / "embeddings.sqlite")
        keys = [text_key("all-MiniLM-L6-v2", f"{i}\0{t}") for i, t in enumerate(texts)]
        timed(f"write {n} vectors to the cache", lambda: cache.put(keys, x))
        timed(f"read {n} vectors from the cache (a rerun)", lambda: cache.get(keys))
        cache.close()
    labels = timed("k-means, k chosen by silhouette", lambda: cluster_vectors(x))
    timed("names (c-TF-IDF)", lambda: cluster_table(texts, labels))
    timed("2-D projection (PCA)", lambda: project_2d(x))
    print(f"\n{n} rows, {len(set(labels))} clusters; load average {load()}; {machine()}")
    print(f"{'step':48} {'wall s':>8} {'CPU s':>8}")
    for name, wall, cpu in steps:
        print(f"{name:48} {wall:>8.1f} {cpu:>8.1f}")
    rest = [s for s in steps[1:] if not s[0].startswith("encode")]
    rest_wall, rest_cpu = sum(s[1] for s in rest), sum(s[2] for s in rest)
    print(f"encoding: {rate_wall:.0f} texts/s wall, {rate_cpu:.0f} texts per CPU second")
    if not encode_all:
        print(f"{n} texts would encode in {n / rate_wall / 60:.1f} min wall at this load "
              f"({n / rate_cpu / 60:.1f} CPU min); everything else: {rest_wall:.1f} s wall, "
              f"{rest_cpu:.1f} CPU s = {rest_wall / (rest_wall + n / rate_wall):.1%} of the "
              f"total")


def main(argv=None) -> None:
    ap = script_parser(__doc__)
    ap.add_argument("--quality", action="store_true", help="k-means vs HDBSCAN on the seeds")
    ap.add_argument("--rows", type=int, default=0, help="time clustering this many rows")
    ap.add_argument("--encode", type=int, default=5000, help="texts encoded for the rate")
    ap.add_argument("--encode-all", action="store_true", help="encode every row (slow)")
    args = ap.parse_args(argv)
    if not args.quality and not args.rows:
        ap.error("give --quality and/or --rows N")
    if args.quality:
        quality()
    if args.rows:
        speed(args.rows, args.encode, args.encode_all)


if __name__ == "__main__":
    main()
