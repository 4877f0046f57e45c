"""Write ``seeds.jsonl`` and ``eval.jsonl`` from the hand-written questions.

The (question, query) pairs are written by hand in ``questions/<schema>.py``; this script gives
each row a column list the way a retrieval step would: the columns the query uses, some columns
of the same namespaces (``http.*`` next to ``http.route``), and other columns of the schema,
15 to 60 in all, in a seeded random order. It checks that every query column exists and that no
held-out question is a near duplicate of a seed question, that every query passes
``assertions.honeycomb.check``, then writes the two files.

    python -m examples.honeycomb.data.make_data
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from examples.honeycomb.data.dsl import query_columns
from examples.honeycomb.data.questions import k8s, payments, webshop
from examples.honeycomb.schemas import Schema, load_schema

DATA_DIR = Path(__file__).parent
SOURCES = {"webshop": webshop, "k8s": k8s, "payments": payments}
MIN_COLUMNS, MAX_COLUMNS = 15, 60
NEAR_DUP = 90  # rapidfuzz token ratio at or above which two questions count as the same
SEED = 20240612


def _namespace(column: str) -> str:
    return column.rsplit(".", 1)[0] if "." in column else column


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


def build(split: str) -> list[dict]:
    """Rows of one split (``"seeds"`` or ``"eval"``) over every schema."""
    rows = []
    for name, module in SOURCES.items():
        schema = load_schema(name)
        pairs = module.SEEDS if split == "seeds" else module.EVAL
        for i, (nlq, query) in enumerate(pairs):
            rng = random.Random(f"{SEED}:{split}:{name}:{i}")
            rows.append({"nlq": nlq, "columns": column_list(query, schema, rng),
                         "query": query, "schema": name})
    return rows


def near_duplicates(eval_rows: list[dict], seed_rows: list[dict]) -> list[tuple[str, str, float]]:
    """(eval question, seed question, score) for every pair at or above ``NEAR_DUP``."""
    from rapidfuzz import fuzz, process, utils

    seeds = [r["nlq"] for r in seed_rows]
    found = []
    for row in eval_rows:
        for seed, score, _ in process.extract(row["nlq"], seeds, scorer=fuzz.token_ratio,
                                              processor=utils.default_process,
                                              score_cutoff=NEAR_DUP, limit=None):
            found.append((row["nlq"], seed, score))
    return found


def invalid(rows: list[dict]) -> list[tuple[str, list]]:
    """(question, failures) for every row whose query fails the Honeycomb checker."""
    from assertions.honeycomb import check

    return [(r["nlq"], fails) for r in rows if (fails := check(r["query"], r["columns"]))]


def _write(rows: list[dict], path: Path) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def main() -> None:
    seeds, held_out = build("seeds"), build("eval")
    bad = invalid(seeds + held_out)
    if bad:
        raise SystemExit("invalid queries:\n" + "\n".join(f"  {q!r}: {f}" for q, f in bad))
    dups = near_duplicates(held_out, seeds)
    if dups:
        raise SystemExit("held-out questions too close to seeds:\n" +
                         "\n".join(f"  {e!r} ~ {s!r} ({v:.0f})" for e, s, v in dups))
    for split, rows in (("seeds", seeds), ("eval", held_out)):
        _write(rows, DATA_DIR / f"{split}.jsonl")
        counts = {n: sum(r["schema"] == n for r in rows) for n in SOURCES}
        print(f"{split}.jsonl: {len(rows)} rows {counts}")


if __name__ == "__main__":
    main()
