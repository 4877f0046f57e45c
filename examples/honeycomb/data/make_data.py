"""Write ``seeds.jsonl`` and ``eval.jsonl`` from the hand-written questions.

The (question, query) pairs are written by hand in ``questions/<schema>.py``; each row gets a
column list the way a retrieval step would make one: the query's columns, some of the same
namespaces (``http.*`` next to ``http.route``) and other columns of the schema, 15 to 60 in a
seeded random order. The held-out file holds the hand-written rows first, their schemas
interleaved so that any prefix is balanced, then the column swaps each lists (``plan_swap``), in
the same order; every held-out row carries ``group`` (the ``row_key`` of its hand-written row,
to cluster confidence intervals by parent) and ``swap`` (``[old, new]``, or null).

Before writing, it checks that every query column exists, that every query passes
``assertions.honeycomb.check``, and that no held-out question is a near duplicate of a seed or
of a column swap of a seed (the training data holds both).

    python -m examples.honeycomb.data.make_data
"""
from __future__ import annotations

import random
from pathlib import Path

from curate.io import write_jsonl
from examples.honeycomb.column_swap import plan_swap, swap_row
from examples.honeycomb.data.dsl import query_columns
from examples.honeycomb.data.questions import k8s, payments, webshop
from examples.honeycomb.schemas import Schema, load_schema

DATA_DIR = Path(__file__).parent
SOURCES = {"webshop": webshop, "k8s": k8s, "payments": payments}
MIN_COLUMNS, MAX_COLUMNS = 15, 60
NEAR_DUP = 90  # rapidfuzz token ratio above which two questions count as the same
SEED = 20240612
TRAINING_SWAP_SEED = 0  # the seed the curation spec's column swap uses


def _namespace(column: str) -> str:
    return column.rsplit(".", 1)[0]


def column_list(query: dict, schema: Schema, rng: random.Random) -> list[str]:
    """Query columns + same-namespace distractors + random schema columns, shuffled."""
    used = query_columns(query)
    unknown = [c for c in used if c not in schema]
    if unknown:
        raise ValueError(f"query uses columns not in schema {schema.name!r}: {unknown}")
    size = rng.randint(max(MIN_COLUMNS, len(used) + 3), min(MAX_COLUMNS, len(schema.names)))
    spaces = {_namespace(c) for c in used}
    related = [c for c in schema.names if c not in used and _namespace(c) in spaces]
    picked = used + rng.sample(related, min(len(related), rng.randint(2, 8), size - len(used)))
    rest = [c for c in schema.names if c not in picked]
    picked += rng.sample(rest, size - len(picked))
    rng.shuffle(picked)
    return picked


def _written(split: str) -> dict[str, list[tuple[dict, list]]]:
    """Schema -> (row, swaps listed for it) in the order of its question bank."""
    out = {}
    for name, module in SOURCES.items():
        schema, rows = load_schema(name), []
        for i, (nlq, query, *swaps) in enumerate(module.SEEDS if split == "seeds" else module.EVAL):
            rng = random.Random(f"{SEED}:{split}:{name}:{i}")
            row = {"nlq": nlq, "columns": column_list(query, schema, rng), "query": query,
                   "schema": name}
            rows.append((row, swaps[0] if swaps else []))
        out[name] = rows
    return out


def interleave(groups: dict[str, list], rng: random.Random) -> list:
    """Each list shuffled, then merged so that every prefix holds them in proportion."""
    queues = {name: rng.sample(items, len(items)) for name, items in groups.items()}
    tiebreak = {name: i for i, name in enumerate(rng.sample(sorted(groups), len(groups)))}
    taken, out = dict.fromkeys(queues, 0), []
    while len(out) < sum(map(len, queues.values())):
        name = min((n for n in queues if taken[n] < len(queues[n])),
                   key=lambda n: ((taken[n] + 0.5) / len(queues[n]), tiebreak[n]))
        out.append(queues[name][taken[name]])
        taken[name] += 1
    return out


def held_out() -> list[dict]:
    """The held-out rows, then their column swaps, each with its ``group`` and ``swap``."""
    from examples.honeycomb.evaluate import row_key

    parents = interleave(_written("eval"), random.Random(f"{SEED}:eval-order"))
    originals = [{**row, "swap": None, "group": row_key(row)} for row, _ in parents]
    swapped = [{**_swapped(row, *swaps[k]), "group": original["group"]}
               for k in range(max(len(swaps) for _, swaps in parents))
               for (row, swaps), original in zip(parents, originals) if k < len(swaps)]
    return originals + swapped


def _swapped(row: dict, old: str, new: str) -> dict:
    rng = random.Random(f"{SEED}:swap:{row['nlq']}:{old}:{new}")
    out = plan_swap(row, load_schema(row["schema"]), old, new, rng)
    if out is None:
        raise ValueError(f"held-out row {row['nlq']!r}: the swap {old} -> {new} is not safe")
    return out


def build(split: str) -> list[dict]:
    """Rows of one split (``"seeds"`` or ``"eval"``) over every schema."""
    if split == "eval":
        return held_out()
    return [row for rows in _written(split).values() for row, _ in rows]


def training_swaps(seed_rows: list[dict]) -> list[dict]:
    """Every column swap of the seeds that the curation spec can make, at any number per row."""
    return [s for row in seed_rows for s in swap_row(row, n=10**6, seed=TRAINING_SWAP_SEED)]


def near_duplicates(rows: list[dict], reference: list[dict]) -> list[tuple[str, str, float]]:
    """(question, reference question, score) for every pair above ``NEAR_DUP``."""
    from rapidfuzz import fuzz, process, utils

    known = [r["nlq"] for r in reference]
    return [(row["nlq"], other, score) for row in rows
            for other, score, _ in process.extract(row["nlq"], known, scorer=fuzz.token_ratio,
                                                   processor=utils.default_process,
                                                   score_cutoff=NEAR_DUP, limit=None)
            if score > NEAR_DUP]


def invalid(rows: list[dict]) -> list[tuple[str, list]]:
    """(question, failures) for every row whose query fails the Honeycomb checker."""
    from assertions.honeycomb import check

    return [(r["nlq"], fails) for r in rows if (fails := check(r["query"], r["columns"]))]


def main() -> None:
    seeds, evaluation = build("seeds"), build("eval")
    bad = invalid(seeds + evaluation)
    if bad:
        raise SystemExit("invalid queries:\n" + "\n".join(f"  {q!r}: {f}" for q, f in bad))
    dups = near_duplicates(evaluation, seeds + training_swaps(seeds))
    if dups:
        raise SystemExit("held-out questions too close to seeds or their swaps:\n" +
                         "\n".join(f"  {e!r} ~ {s!r} ({v:.0f})" for e, s, v in dups))
    for split, rows in (("seeds", seeds), ("eval", evaluation)):
        write_jsonl(DATA_DIR / f"{split}.jsonl", rows)
        counts = {n: sum(r["schema"] == n for r in rows) for n in SOURCES}
        swaps = sum(bool(r.get("swap")) for r in rows)
        print(f"{split}.jsonl: {len(rows)} rows {counts}" + (f", {swaps} swaps" if swaps else ""))


if __name__ == "__main__":
    main()
