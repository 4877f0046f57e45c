"""Benchmark: EmbeddingDedup end to end against the raw embedding throughput of its model.

Baseline: ``model.encode`` on the same texts with the same model; goal: rows/s >= 0.9 x raw.
Sizes above ``--full-max`` add the measured dedup of tiled real vectors to the encoding time at
the measured rate, unless ``--encode-all`` (bench/README.md).

    .venv/bin/python bench/embed_dedup.py                       # 10k end to end, 100k reused
    .venv/bin/python bench/embed_dedup.py --sizes 2000 --repeat 1
    .venv/bin/python bench/embed_dedup.py --sizes 100000 --encode-all   # slow on CPU
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from benchkit import best_of, machine, script_parser
from rouge_dedup import make_texts

from curate.stages.dedup_embedding import EmbeddingDedup, greedy_dedup, load_model


def tiled(vectors: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors: the first copy of ``vectors`` as is, each further copy turned by a
    random rotation, which keeps its near-duplicate structure and makes it unrelated to the
    other copies (a table with the same duplicate rate, not exact repeats)."""
    rng = np.random.default_rng(seed)
    dim, copies = vectors.shape[1], [vectors]
    while sum(map(len, copies)) < n:
        q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        copies.append(vectors @ q.astype(np.float32))
    return np.ascontiguousarray(np.concatenate(copies)[:n], dtype=np.float32)


def end_to_end(n: int, encode, args):
    """Raw encode and the stage on the same n texts, interleaved; best of ``--repeat``."""
    texts = make_texts(n)
    df = pd.DataFrame({"text": texts})
    stage = EmbeddingDedup("text", threshold=args.threshold, batch_size=args.batch_size)
    times = []
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        raw, vecs = best_of(lambda: encode(texts))
        e2e, res = best_of(lambda: stage.run(df))
        times.append((raw, e2e))
    raw, e2e = map(min, zip(*times))
    return raw, e2e, e2e - res.stats["embed_seconds"], res, vecs


def reused(n: int, base_vecs: np.ndarray, args):
    """The stage on n precomputed vectors: (seconds, result)."""
    vecs = tiled(base_vecs, n)
    df = pd.DataFrame({"vec": list(vecs), "_id": [str(i) for i in range(n)]})
    stage = EmbeddingDedup(embeddings_field="vec", threshold=args.threshold)
    seconds, res = best_of(lambda: stage.run(df))
    if args.recall:
        exact = set(np.flatnonzero(~greedy_dedup(vecs, args.threshold, "exact")[0]))
        approx = {int(i) for i in res.rejected["_id"]}
        print(f"  {n}: exact search rejects {len(exact)}, {res.stats['index']} "
              f"rejects {len(approx)}, {len(exact & approx)} in common", flush=True)
    return seconds, res


def print_table(rows) -> None:
    print(f"\n{'rows':>7} {'kept':>7} {'index':>6} {'raw rows/s':>11} {'dedup rows/s':>13} "
          f"{'non-encode s':>13} {'share':>6} {'ratio':>6}  measured")
    for n, kept, index, raw_rate, e2e_rate, overhead, share, ratio, how in rows:
        print(f"{n:>7} {kept:>7} {index:>6} {raw_rate:>11.0f} {e2e_rate:>13.0f} "
              f"{overhead:>13.2f} {share:>6.1%} {ratio:>6.3f}  {how}")
    print("ratio = dedup rows/s / raw rows/s (goal >= 0.9); non-encode s = time of the stage "
          "outside model.encode (search, bookkeeping, tables); share = its part of the total")


def main(argv=None) -> None:
    ap = script_parser(__doc__)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--full-max", type=int, default=10000,
                    help="largest size measured end to end (unless --encode-all)")
    ap.add_argument("--encode-all", action="store_true", help="measure every size end to end")
    ap.add_argument("--repeat", type=int, default=1, help="best of N for end-to-end sizes")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threshold", type=float, default=0.95)
    ap.add_argument("--recall", action="store_true",
                    help="also run the exact search on reused vectors and report IVF recall")
    args = ap.parse_args(argv)
    print(machine())
    model = load_model()
    model.encode(make_texts(512, seed=99), batch_size=args.batch_size)  # warm-up
    encode = lambda texts: model.encode(texts, batch_size=args.batch_size,  # noqa: E731
                                        normalize_embeddings=True, show_progress_bar=False)
    rows, rate, base_vecs = [], None, None
    for n in sorted(int(s) for s in args.sizes.split(",")):
        if n <= args.full_max or args.encode_all:
            raw, e2e, overhead, res, base_vecs = end_to_end(n, encode, args)
            rate, how = n / raw, "end to end"
        else:
            if base_vecs is None:
                raise SystemExit("give a size <= --full-max first (its vectors are reused)")
            overhead, res = reused(n, base_vecs, args)
            raw = n / rate
            e2e, how = raw + overhead, f"encode at {rate:.0f} rows/s + measured dedup"
        rows.append((n, res.stats["kept"], res.stats["index"], n / raw, n / e2e, overhead,
                     overhead / e2e, raw / e2e, how))
        print(f"  {n} rows done ({how}): raw {raw:.1f}s, dedup {e2e:.1f}s", flush=True)
    print_table(rows)


if __name__ == "__main__":
    main()
