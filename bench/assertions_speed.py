"""How fast the Honeycomb checker is, in queries per second on one core.

Times `honeycomb.check` on a seeded mix of valid and invalid queries (every part of the
language, wrong types, unknown columns) as dicts (all, valid, invalid), JSON text and
Python-repr text, against `json.loads` of the same text. Invalid queries cost more: an unknown
column looks for a close match. One thread, so the rates are per core.

    python bench/assertions_speed.py [--queries 5000] [--repeats 3]
"""

from __future__ import annotations

import json
import random

from benchkit import best_of, script_parser

from assertions import honeycomb

COLUMNS = [f"attr.{index}" for index in range(50)] + [
    "duration_ms", "service.name", "name", "http.method", "http.status_code", "error", "trace.parent_id",
]  # fmt: skip
CALC_OPS = ["COUNT", "CONCURRENCY", "HEATMAP", "AVG", "MAX", "P50", "P95", "P99", "COUNT_DISTINCT", "RATE_SUM"]
FILTER_OPS = ["=", "!=", ">", "<=", "contains", "starts-with", "exists", "does-not-exist", "in", "not-in"]


def random_column(rng: random.Random) -> str:
    return rng.choice(COLUMNS) if rng.random() > 0.05 else "no_such_column"


def random_calculation(rng: random.Random) -> dict:
    op = rng.choice(CALC_OPS)
    needs_column = op not in ("COUNT", "CONCURRENCY")
    return {"op": op, "column": random_column(rng)} if needs_column or rng.random() < 0.05 else {"op": op}


def random_filter(rng: random.Random) -> dict:
    op = rng.choice(FILTER_OPS)
    item = {"column": random_column(rng), "op": op}
    if op in ("in", "not-in"):
        item["value"] = ["GET", "POST"] if rng.random() > 0.1 else "GET"
    elif op not in ("exists", "does-not-exist"):
        item["value"] = rng.choice(["api's", 500, True, 0.5])
    return item


def random_query(rng: random.Random) -> dict:
    calculations = [random_calculation(rng) for _ in range(rng.randint(1, 3))]
    query = {"calculations": calculations, "filters": [random_filter(rng) for _ in range(rng.randint(0, 3))]}
    query["breakdowns"] = rng.sample(COLUMNS, rng.randint(0, 2))
    if rng.random() < 0.5:
        first = calculations[0]
        query["orders"] = [{**first, "order": rng.choice(["ascending", "descending", "down"])}]
    if rng.random() < 0.2:
        query["havings"] = [{"calculate_op": "COUNT", "op": ">", "value": rng.choice([10, "10"])}]
    query["time_range"] = rng.choice([3600, 7200, 86400, True])
    if rng.random() < 0.3:
        query["granularity"] = rng.choice([1, 60, 600, 100000])
    if rng.random() < 0.1:
        query["limit"] = rng.choice([10, 0])
    return query


def best_rate(function, items: list, repeats: int) -> float:
    """Items per second over the fastest of ``repeats`` passes."""
    def one_pass():
        for item in items:
            function(item)

    return len(items) / best_of(one_pass, repeats)[0]


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = random.Random(0)
    queries = [random_query(rng) for _ in range(args.queries)]
    as_json = [json.dumps(query) for query in queries]
    as_repr = [repr(query) for query in queries]
    valid = [query for query in queries if honeycomb.is_valid(query, COLUMNS)]
    invalid = [query for query in queries if not honeycomb.is_valid(query, COLUMNS)]

    cases = [
        ("baseline: json.loads(text)", json.loads, as_json),
        ("check(dict, columns)", lambda query: honeycomb.check(query, COLUMNS), queries),
        ("  valid dicts only", lambda query: honeycomb.check(query, COLUMNS), valid),
        ("  invalid dicts only", lambda query: honeycomb.check(query, COLUMNS), invalid),
        ("check(json text, columns)", lambda text: honeycomb.check(text, COLUMNS), as_json),
        ("check(python-repr text, columns)", lambda text: honeycomb.check(text, COLUMNS), as_repr),
    ]
    print(f"{len(queries)} queries ({len(valid) / len(queries):.0%} valid), {len(COLUMNS)} columns, one core")
    print(f"{'case':<36}{'queries/s':>12}{'us/query':>10}")
    for name, function, items in cases:
        rate = best_rate(function, items, args.repeats)
        print(f"{name:<36}{rate:>12,.0f}{1e6 / rate:>10.1f}")


if __name__ == "__main__":
    main()
