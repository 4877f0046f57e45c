"""Benchmark: MinHashDedup's recall, agreement, speed and memory, against baselines run here.

Four tables, each figure printed with the 1-minute load average when it was measured (the
machine may be shared; a load above the core count means the figures are pessimistic):

1. S-curve: P(candidate) at threshold-0.1, threshold, threshold+0.1 from 1-(1-s^r)^b for
   the stage's banding and for datasketch's default one, and the stage's measured rate on
   synthetic pairs of exactly that Jaccard.
2. Labelled pairs (``bench/near_dup_pairs.py``: one-word edits, reorderings, paraphrases,
   same-template and unrelated pairs): precision and recall of the stage's decision for
   each pair against (a) exact Jaccard of the same shingles at the same threshold and
   (b) ``RougeDedup`` at its default 0.7 on the same two-row table; share flagged per kind.
3. Scale: ``MinHashDedup("text").run(df)`` on seeded corpora with a known share of
   injected edits, each size in a fresh process: time, rows/s, peak RSS and the RSS before
   the run (base: Python, the libraries and the corpus), rejections, and of the injected
   edits whose source was kept and whose Jaccard with it is >= threshold ("testable"), the
   share rejected ("caught": LSH's recall on them, expected near the S-curve's).
4. Baselines on the same corpora: ``RougeDedup``, datasketch's ``MinHash.bulk`` +
   ``MinHashLSH`` and rensa's ``RMinHash`` + ``RMinHashLSH`` with the same banding,
   each in the keep-first loop (query the kept rows, verify with exact Jaccard of Python
   sets, insert when kept); time ratios and the share of rows decided alike.

    .venv/bin/python bench/minhash_dedup.py                   # 100k and 1M, baselines at 20k, 100k
    .venv/bin/python bench/minhash_dedup.py --quick           # small sizes, a minute or so
    .venv/bin/python bench/minhash_dedup.py --corpus rouge    # rouge_dedup.py's crowded corpus
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from near_dup_pairs import KINDS, labelled_pairs, make_corpus  # noqa: E402
from rouge_dedup import machine, make_texts  # noqa: E402

from curate.stages.dedup_minhash import MinHashDedup, lsh_recall  # noqa: E402
from curate.stages.dedup_rouge import RougeDedup  # noqa: E402
from curate.text import unicode_tokenize  # noqa: E402


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def memory_mb(field: str = "VmHWM") -> float:
    """This process's peak (VmHWM) or current (VmRSS) resident memory in MB. Linux's
    ru_maxrss would carry over the parent's peak into a child started by fork and exec."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def corpus(kind: str, n: int, seed: int):
    """(texts, source index or None per text); the rouge corpus has no known sources."""
    if kind == "rouge":
        return make_texts(n, seed), [None] * n
    return make_corpus(n, seed)


def with_positions(texts: list[str]) -> pd.DataFrame:
    """A table of the texts whose ``_id`` is the row position."""
    return pd.DataFrame({"text": texts, "_id": [str(i) for i in range(len(texts))]})


# -- 1. the S-curve -----------------------------------------------------------------------
def exact_pairs(similarity: float, n: int, union: int = 100):
    """n pairs of word sets whose Jaccard is exactly round(similarity·union)/union."""
    shared = round(similarity * union)
    own = union - shared
    first, second = [], []
    for p in range(n):
        common = " ".join(f"c{p}x{k}" for k in range(shared))
        first.append(common + " " + " ".join(f"a{p}x{k}" for k in range(own // 2)))
        second.append(common + " " + " ".join(f"b{p}x{k}" for k in range(own - own // 2)))
    return first, second


def s_curve(threshold: float, num_perm: int, n: int) -> None:
    stage = MinHashDedup("text", threshold=threshold, num_perm=num_perm)
    points = [round(threshold + d, 2) for d in (-0.1, 0.0, 0.1) if 0 < threshold + d <= 1]
    rows = [(f"MinHashDedup {stage.banding[0]}x{stage.banding[1]}", *stage.banding)]
    try:
        from datasketch.lsh import _optimal_param

        b, r = _optimal_param(threshold, num_perm, 0.5, 0.5)
        rows.append((f"datasketch default {b}x{r}", b, r))
    except ImportError:
        pass
    print(f"\n1. S-curve, {num_perm} permutations, threshold {threshold}: P(candidate | Jaccard s)")
    print(f"{'banding':<26}" + "".join(f"{'s=' + str(s):>10}" for s in points) + "   load")
    for label, b, r in rows:
        print(f"{label:<26}" + "".join(f"{lsh_recall(s, b, r):>10.4f}" for s in points)
              + f"   {load()}")
    measured = [stage.match_pairs(*exact_pairs(s, n))["candidate"].mean() for s in points]
    print(f"{'  measured, ' + str(n) + ' pairs':<26}" + "".join(f"{m:>10.4f}" for m in measured)
          + f"   {load()}")


# -- 2. the labelled pairs ------------------------------------------------------------------
def exact_jaccard(a: str, b: str) -> float:
    x, y = set(unicode_tokenize(a)), set(unicode_tokenize(b))
    return len(x & y) / len(x | y) if x and y else 0.0


def rouge_decision(a: str, b: str) -> bool:
    return len(RougeDedup("text").run(with_positions([a, b])).rejected) == 1


def precision_recall(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hits = (flagged & truth).sum()
    return hits / max(1, flagged.sum()), hits / max(1, truth.sum())


def labelled(threshold: float, per_kind: int, seed: int) -> None:
    pairs = labelled_pairs(per_kind, seed)
    start = time.perf_counter()
    flagged = MinHashDedup("text", threshold=threshold).match_pairs(
        [p.first for p in pairs], [p.second for p in pairs])["duplicate"].to_numpy()
    seconds = time.perf_counter() - start
    exact = np.array([exact_jaccard(p.first, p.second) >= threshold for p in pairs])
    rouge = np.array([rouge_decision(p.first, p.second) for p in pairs])
    kinds = np.array([p.kind for p in pairs])
    print(f"\n2. Labelled pairs: {len(pairs)} ({per_kind} per kind, seed {seed}), "
          f"MinHashDedup at {threshold} ({seconds:.2f}s)")
    print(f"{'reference':<34}{'precision':>10}{'recall':>8}   load")
    for label, truth in ((f"exact Jaccard >= {threshold}", exact),
                         ("RougeDedup (Rouge-L > 0.7)", rouge)):
        p, r = precision_recall(flagged, truth)
        print(f"{label:<34}{p:>10.3f}{r:>8.3f}   {load()}")
    print(f"{'share flagged, kind':<20}{'MinHash':>9}{'exact J':>9}{'Rouge':>9}")
    for kind in KINDS:
        at = kinds == kind
        print(f"{kind:<20}{flagged[at].mean():>9.2f}{exact[at].mean():>9.2f}"
              f"{rouge[at].mean():>9.2f}")


# -- 3. scale, one size per process ---------------------------------------------------------
def child(n: int, kind: str, seed: int, threshold: float) -> dict:
    """Run the stage once on n texts; report time, memory and what was caught."""
    texts, source = corpus(kind, n, seed)
    df = with_positions(texts)
    before = memory_mb("VmRSS")
    start = time.perf_counter()
    res = MinHashDedup("text", threshold=threshold).run(df)
    seconds = time.perf_counter() - start
    out = {"n": n, "seconds": seconds, "peak_mb": memory_mb(), "before_mb": before,
           "load": load(), "rejected": len(res.rejected), **{
               k: res.stats[k] for k in ("band_pairs", "verified_pairs", "identical_sets")}}
    rejected = set(res.rejected["_id"].astype(int))
    injected = [(i, s) for i, s in enumerate(source) if s is not None]
    # an edit can only be caught when its source was kept (else it is compared with the
    # row that rejected the source); those at or above the threshold test LSH's recall
    near = [i for i, s in injected if s not in rejected
            and exact_jaccard(texts[i], texts[s]) >= threshold]
    out.update(injected=len(injected), near=len(near),
               caught=sum(i in rejected for i in near) / max(1, len(near)))
    return out


def scale(sizes, kind: str, seed: int, threshold: float) -> None:
    print(f"\n3. Scale: MinHashDedup at {threshold} on the {kind} corpus (one process per size)")
    print(f"{'texts':>9}{'seconds':>9}{'rows/s':>10}{'peak MB':>9}{'base MB':>8}{'rejected':>10}"
          f"{'injected':>10}{'testable':>9}{'caught':>8}{'verified':>10}   load")
    for n in sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--corpus", kind,
               "--seed", str(seed), "--threshold", str(threshold)]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                      text=True).stdout.splitlines()[-1])
        caught = f"{r['caught']:.3f}" if r["near"] else "-"
        print(f"{n:>9}{r['seconds']:>9.1f}{n / r['seconds']:>10,.0f}{r['peak_mb']:>9.0f}"
              f"{r['before_mb']:>8.0f}{r['rejected']:>10}{r['injected']:>10}{r['near']:>9}"
              f"{caught:>8}{r['verified_pairs']:>10}   {r['load']}", flush=True)


# -- 4. baselines ---------------------------------------------------------------------------
def keep_first_loop(sets, query, insert, threshold):
    keep = np.ones(len(sets), dtype=bool)
    for i, s in enumerate(sets):
        best = max((len(s & sets[j]) / len(s | sets[j]) for j in query(i)),
                   default=0.0) if s else 0.0
        if best >= threshold:
            keep[i] = False
        elif s:
            insert(i)
    return keep


def datasketch_run(texts, threshold, bands, rows, seed):
    from datasketch import MinHash, MinHashLSH

    sets = [set(unicode_tokenize(t)) for t in texts]
    sigs = MinHash.bulk([[w.encode() for w in s] for s in sets], num_perm=bands * rows,
                        seed=seed)
    lsh = MinHashLSH(threshold=threshold, num_perm=bands * rows, params=(bands, rows))
    return keep_first_loop(sets, lambda i: lsh.query(sigs[i]),
                           lambda i: lsh.insert(i, sigs[i]), threshold)


def rensa_run(texts, threshold, bands, rows, seed):
    import rensa

    sets = [set(unicode_tokenize(t)) for t in texts]
    sigs = rensa.RMinHash.from_token_sets([list(s) for s in sets], num_perm=bands * rows,
                                          seed=seed)
    lsh = rensa.RMinHashLSH(threshold, bands * rows, bands)
    return keep_first_loop(sets, lambda i: lsh.query(sigs[i]),
                           lambda i: lsh.insert(i, sigs[i]), threshold)


def rouge_run(texts, *_):
    res = RougeDedup("text").run(with_positions(texts))
    keep = np.ones(len(texts), dtype=bool)
    keep[res.rejected["_id"].astype(int).to_numpy()] = False
    return keep


def timed(fn, *args):
    start = time.perf_counter()
    keep = fn(*args)
    return time.perf_counter() - start, keep, load()


def baselines(sizes, kind: str, seed: int, threshold: float) -> None:
    stage = MinHashDedup("text", threshold=threshold, seed=seed)
    bands, rows = stage.banding
    runners = [("RougeDedup", rouge_run), ("datasketch", datasketch_run), ("rensa", rensa_run)]
    print(f"\n4. Baselines on the {kind} corpus ({bands}x{rows} bands, exact verification): "
          f"seconds, MinHashDedup's speed-up, share of rows decided alike")
    for n in sizes:
        texts, _ = corpus(kind, n, seed)
        ours, res, ours_load = timed(stage.run, with_positions(texts))
        keep = np.ones(n, dtype=bool)
        keep[res.rejected["_id"].astype(int).to_numpy()] = False
        print(f"  {n:>8} texts  MinHashDedup {ours:7.2f}s  rejected {(~keep).sum():>7}"
              f"   load {ours_load}", flush=True)
        for label, fn in runners:
            try:
                seconds, other, other_load = timed(fn, texts, threshold, bands, rows, seed)
            except ImportError:
                print(f"  {'':>8}        {label:<12} not installed")
                continue
            print(f"  {'':>8}        {label:<12} {seconds:7.2f}s  rejected {(~other).sum():>7}"
                  f"  {seconds / ours:6.1f}x  alike {(other == keep).mean():.4f}"
                  f"   load {other_load}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 1)[1])
    ap.add_argument("--sizes", default="100000,1000000", help="scale sizes (table 3)")
    ap.add_argument("--baseline-sizes", default="20000,100000", help="table 4 sizes")
    ap.add_argument("--per-kind", type=int, default=300, help="labelled pairs per kind")
    ap.add_argument("--curve-pairs", type=int, default=20000, help="pairs per S-curve point")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--corpus", choices=("pairs", "rouge"), default="pairs",
                    help="near_dup_pairs.make_corpus (20%% injected edits) or "
                         "rouge_dedup.make_texts (templated, crowded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="small sizes: 20k scale, 5k baselines")
    ap.add_argument("--skip", default="", help="tables to skip, e.g. 1,2")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.corpus, args.seed, args.threshold)))
        return
    if args.quick:
        args.sizes, args.baseline_sizes, args.per_kind, args.curve_pairs = (
            "20000", "5000", 100, 3000)
    skip = set(args.skip.split(","))
    print(machine(), f"| load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if "1" not in skip:
        s_curve(args.threshold, args.num_perm, args.curve_pairs)
    if "2" not in skip:
        labelled(args.threshold, args.per_kind, args.seed)
    if "3" not in skip:
        scale([int(s) for s in args.sizes.split(",")], args.corpus, args.seed, args.threshold)
    if "4" not in skip:
        baselines([int(s) for s in args.baseline_sizes.split(",")], args.corpus, args.seed,
                  args.threshold)


if __name__ == "__main__":
    main()
