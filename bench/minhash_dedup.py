"""Benchmark: MinHashDedup's recall, agreement, speed and memory, against baselines run here.

Four tables, each figure beside the 1-minute load average when it was measured: 1. the S-curve,
P(candidate) at threshold-0.1, threshold, threshold+0.1 from 1-(1-s^r)^b for the stage's banding
and datasketch's default one, and the stage's measured rate on synthetic pairs of exactly that
Jaccard; 2. labelled pairs (``curate/testing/near_duplicates.py``: one-word edits, reorderings,
paraphrases, same-template and unrelated pairs): precision and recall of the stage's decision
for each pair against (a) exact Jaccard of the same shingles at the same threshold and (b)
``RougeDedup`` at its default 0.7 on the same two-row table, and the share flagged per kind;
3. the stage at scale, one process per size: time, peak and base RSS, and the
share caught of injected edits whose source was kept and whose Jaccard is >= threshold; 4. the
peers (datasketch's ``MinHashLSH``, rensa's ``RMinHashDeduplicator``) side by side with
``MinHashDedup``, beside keeping only the first row (bench/README.md).

    .venv/bin/python bench/minhash_dedup.py                   # scale at 100k and 1M, peers at 100k
    .venv/bin/python bench/minhash_dedup.py --quick           # small sizes, a minute or so
    .venv/bin/python bench/minhash_dedup.py --corpus rouge    # rouge_dedup.py's crowded corpus
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from benchkit import ChildFailed, best_of, child_json, load, machine, memory_mb, script_parser
from rouge_dedup import make_texts

from curate.stages.dedup_minhash import MinHashDedup, lsh_recall
from curate.stages.dedup_rouge import RougeDedup
from curate.testing.near_duplicates import KINDS, labelled_pairs, make_corpus
from curate.text import unicode_tokenize


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
              + f"   {load(1)}")
    measured = [stage.match_pairs(*exact_pairs(s, n))["candidate"].mean() for s in points]
    print(f"{'  measured, ' + str(n) + ' pairs':<26}" + "".join(f"{m:>10.4f}" for m in measured)
          + f"   {load(1)}")


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
    seconds, flagged = best_of(lambda: MinHashDedup("text", threshold=threshold).match_pairs(
        [p.first for p in pairs], [p.second for p in pairs])["duplicate"].to_numpy())
    exact = np.array([exact_jaccard(p.first, p.second) >= threshold for p in pairs])
    rouge = np.array([rouge_decision(p.first, p.second) for p in pairs])
    kinds = np.array([p.kind for p in pairs])
    print(f"\n2. Labelled pairs: {len(pairs)} ({per_kind} per kind, seed {seed}), "
          f"MinHashDedup at {threshold} ({seconds:.2f}s)")
    print(f"{'reference':<34}{'precision':>10}{'recall':>8}   load")
    for label, truth in ((f"exact Jaccard >= {threshold}", exact),
                         ("RougeDedup (Rouge-L > 0.7)", rouge)):
        p, r = precision_recall(flagged, truth)
        print(f"{label:<34}{p:>10.3f}{r:>8.3f}   {load(1)}")
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
    seconds, res = best_of(lambda: MinHashDedup("text", threshold=threshold).run(df))
    out = {"n": n, "seconds": seconds, "peak_mb": memory_mb(), "before_mb": before,
           "load": load(1), "rejected": len(res.rejected), **{
               k: res.stats[k] for k in ("band_pairs", "verified_pairs", "identical_sets")}}
    keep = np.ones(n, dtype=bool)
    keep[res.rejected["_id"].astype(int).to_numpy()] = False
    caught, near = planted_recall(texts, source, keep, threshold)
    out.update(injected=sum(s is not None for s in source), near=near, caught=caught)
    return out


def scale(sizes, kind: str, seed: int, threshold: float) -> None:
    print(f"\n3. Scale: MinHashDedup at {threshold} on the {kind} corpus (one process per size)")
    print(f"{'texts':>9}{'seconds':>9}{'rows/s':>10}{'peak MB':>9}{'base MB':>8}{'rejected':>10}"
          f"{'injected':>10}{'testable':>9}{'caught':>8}{'verified':>10}   load")
    for n in sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--corpus", kind,
               "--seed", str(seed), "--threshold", str(threshold)]
        r = child_json(cmd, f"{n} texts")
        caught = f"{r['caught']:.3f}" if r["near"] else "-"
        print(f"{n:>9}{r['seconds']:>9.1f}{n / r['seconds']:>10,.0f}{r['peak_mb']:>9.0f}"
              f"{r['before_mb']:>8.0f}{r['rejected']:>10}{r['injected']:>10}{r['near']:>9}"
              f"{caught:>8}{r['verified_pairs']:>10}   {r['load']}", flush=True)


# -- 4. peers side by side ----------------------------------------------------------------
ARMS = ("datasketch", "rensa", "MinHashDedup")


def arm_keep(arm: str, texts: list[str], threshold: float, num_perm: int, seed: int):
    """Each peer's own keep-first decisions on the texts' word sets, tokenising included."""
    keep = np.ones(len(texts), dtype=bool)
    if arm == "MinHashDedup":
        res = MinHashDedup("text", threshold=threshold, num_perm=num_perm, seed=seed).run(
            with_positions(texts))
        keep[res.rejected["_id"].astype(int).to_numpy()] = False
    elif arm == "rensa":  # its deduplicator: LSH candidates, estimated Jaccard >= threshold
        import rensa

        dedup = rensa.RMinHashDeduplicator(threshold=threshold, num_perm=num_perm,
                                           use_lsh=True, seed=seed)
        keep[:] = dedup.add_pairs((str(i), unicode_tokenize(t)) for i, t in enumerate(texts))
    else:  # datasketch's recipe: a row with any LSH candidate among the kept is a duplicate
        from datasketch import MinHash, MinHashLSH

        sets = [set(unicode_tokenize(t)) for t in texts]
        sigs = MinHash.bulk([[w.encode() for w in s] for s in sets], num_perm=num_perm,
                            seed=seed)
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        for i, sig in enumerate(sigs):
            if sets[i] and lsh.query(sig):
                keep[i] = False
            elif sets[i]:
                lsh.insert(i, sig)
    return keep


def arm_child(arm: str, n: int, kind: str, seed: int, threshold: float, num_perm: int,
              keep_path: str) -> dict:
    texts, _ = corpus(kind, n, seed)
    before = memory_mb("VmRSS")
    start, cpu = time.perf_counter(), time.process_time()
    keep = arm_keep(arm, texts, threshold, num_perm, seed)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    np.save(keep_path, keep)
    return {"seconds": seconds, "cpu": cpu, "peak_mb": memory_mb(), "before_mb": before,
            "load": load(1)}


def word_matrix(texts: list[str]):
    """Rows x vocabulary, 1 where the row's word set holds the word (CSR)."""
    from scipy import sparse

    sets = [set(unicode_tokenize(t)) for t in texts]
    codes, _ = pd.factorize(pd.Series([w for s in sets for w in s], dtype=object))
    indptr = np.r_[0, np.cumsum([len(s) for s in sets])]
    return sparse.csr_matrix((np.ones(len(codes), np.float32), codes, indptr),
                             shape=(len(sets), int(codes.max()) + 1))


def false_share(words, keep: np.ndarray, threshold: float, sample: int, seed: int):
    """(share, rows checked) of sampled rejected rows that no earlier kept row matches at an
    exact Jaccard >= threshold (a false rejection)."""
    rejected = np.flatnonzero(~keep)
    rows = np.random.default_rng(seed).choice(rejected, min(sample, len(rejected)),
                                              replace=False)
    sizes = np.asarray(words.sum(axis=1)).ravel()
    false = 0
    for lo in range(0, len(rows), 25):
        part = rows[lo:lo + 25]
        shared = (words[part] @ words.T).tocoo()
        union = sizes[part][shared.row] + sizes[shared.col] - shared.data
        hit = ((shared.data / union >= threshold) & keep[shared.col]
               & (shared.col < part[shared.row]))
        false += len(part) - len(np.unique(shared.row[hit]))
    return false / max(1, len(rows)), len(rows)


def wilson(hits: float, n: int, z: float = 1.96) -> str:
    """A 95% Wilson interval for a share of ``n`` trials."""
    if not n:
        return "-"
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"[{max(0, centre - half):.3f}, {min(1, centre + half):.3f}]"


def planted_recall(texts, source, keep, threshold):
    """(share rejected, pairs) of the planted edits whose source was kept (else an edit is
    compared with the row that rejected its source) and whose exact Jaccard with it is >=
    threshold: those test LSH's recall."""
    near = [i for i, s in enumerate(source) if s is not None and keep[s]
            and exact_jaccard(texts[i], texts[s]) >= threshold]
    return float((~keep[near]).mean()) if near else float("nan"), len(near)


def peers(n: int, kind: str, seed: int, threshold: float, num_perm: int, rounds: int,
          sample: int) -> None:
    print(f"\n4. Peers on {n:,} texts of the {kind} corpus, threshold {threshold}, {num_perm} "
          f"permutations, word sets; best of {rounds}, arms alternating, one process per run")
    best: dict[str, dict] = {}
    cpu: dict[str, float] = {}  # the least CPU time of each arm's runs
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for arm in ARMS[r % len(ARMS):] + ARMS[:r % len(ARMS)]:
                cmd = [sys.executable, __file__, "--arm", arm, "--child", str(n), "--corpus",
                       kind, "--seed", str(seed), "--threshold", str(threshold),
                       "--num-perm", str(num_perm), "--keep-path", f"{tmp}/{arm}.npy"]
                try:
                    out = child_json(cmd, arm)
                except ChildFailed as error:
                    print(f"  {arm}: failed ({str(error).splitlines()[-1]})")
                    continue
                print(f"  round {r + 1} {arm:<13}{out['seconds']:8.2f}s  CPU {out['cpu']:6.2f}s"
                      f"  peak {out['peak_mb']:6.0f} MB   load {out['load']}", flush=True)
                if arm not in best or out["seconds"] < best[arm]["seconds"]:
                    best[arm] = out
                cpu[arm] = min(cpu.get(arm, np.inf), out["cpu"])
        texts, source = corpus(kind, n, seed)
        words = word_matrix(texts)
        masks = {arm: np.load(f"{tmp}/{arm}.npy") for arm in best}
        masks["(degenerate: keep one)"] = np.r_[True, np.zeros(n - 1, dtype=bool)]
    ours = best.get("MinHashDedup", {}).get("seconds")
    print(f"{'arm':<24}{'seconds':>8}{'vs ours':>8}{'CPU s':>7}{'vs ours':>8}{'peak MB':>8}"
          f"{'base MB':>8}{'rejected':>9}{'recall':>8}{'95% CI':>16}{'false':>7}{'95% CI':>16}   load")
    for arm, keep in masks.items():
        recall, pairs = planted_recall(texts, source, keep, threshold)
        false, checked = false_share(words, keep, threshold, sample, seed)
        run = best.get(arm, {})
        timing = (f"{run['seconds']:>8.2f}{run['seconds'] / ours:>7.2f}x{cpu[arm]:>7.2f}"
                  f"{cpu[arm] / cpu['MinHashDedup']:>7.2f}x{run['peak_mb']:>8.0f}"
                  f"{run['before_mb']:>8.0f}" if run and ours else "".join(
                      f"{'-':>{w}}" for w in (8, 8, 7, 8, 8, 8)))
        print(f"{arm:<24}{timing}{(~keep).sum():>9}{recall:>8.4f}"
              f"{wilson(recall * pairs, pairs):>16}{false:>7.3f}"
              f"{wilson(false * checked, checked):>16}   {run.get('load', load(1))}")
    print(f"  recall: planted one-word edits and reorderings whose source the arm kept and whose "
          f"exact Jaccard is >= {threshold}; false: {sample} sampled rejections that no earlier "
          f"kept row matches at exact Jaccard >= {threshold}")


def main(argv=None) -> None:
    ap = script_parser(__doc__)
    ap.add_argument("--sizes", default="100000,1000000", help="scale sizes (table 3)")
    ap.add_argument("--peer-size", type=int, default=100_000, help="table 4 texts")
    ap.add_argument("--rounds", type=int, default=3, help="table 4 runs per arm")
    ap.add_argument("--sample", type=int, default=500, help="rejections checked per arm")
    ap.add_argument("--per-kind", type=int, default=300, help="labelled pairs per kind")
    ap.add_argument("--curve-pairs", type=int, default=20000, help="pairs per S-curve point")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--corpus", choices=("pairs", "rouge"), default="pairs",
                    help="near_duplicates.make_corpus (20%% injected edits) or "
                         "rouge_dedup.make_texts (templated, crowded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="small sizes: 20k scale, 10k peers, one round")
    ap.add_argument("--skip", default="", help="tables to skip, e.g. 1,2")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)
    ap.add_argument("--keep-path", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child and args.arm:
        print(json.dumps(arm_child(args.arm, args.child, args.corpus, args.seed,
                                   args.threshold, args.num_perm, args.keep_path)))
        return
    if args.child:
        print(json.dumps(child(args.child, args.corpus, args.seed, args.threshold)))
        return
    if args.quick:
        args.sizes, args.peer_size, args.per_kind, args.curve_pairs, args.rounds = (
            "20000", 10_000, 100, 3000, 1)
    skip = set(args.skip.split(","))
    print(machine(), f"| load average {load()}")
    if "1" not in skip:
        s_curve(args.threshold, args.num_perm, args.curve_pairs)
    if "2" not in skip:
        labelled(args.threshold, args.per_kind, args.seed)
    if "3" not in skip:
        scale([int(s) for s in args.sizes.split(",")], args.corpus, args.seed, args.threshold)
    if "4" not in skip:
        peers(args.peer_size, args.corpus, args.seed, args.threshold, args.num_perm,
              args.rounds, args.sample)


if __name__ == "__main__":
    main()
