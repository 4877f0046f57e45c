"""The deterministic column-swap augmenter of the Honeycomb example."""

import copy
import json
import random
import sys
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parents[2]
if str(ROOT_DIR) not in sys.path:  # `examples` is not an installed package
    sys.path.insert(0, str(ROOT_DIR))

from assertions.honeycomb import check  # noqa: E402
from examples.honeycomb.column_swap import column_swaps, mentions, plan_swap, swap_row  # noqa: E402
from examples.honeycomb.data.dsl import ROOT, Q, query_columns  # noqa: E402
from examples.honeycomb.schemas import load_schema  # noqa: E402

WEBSHOP = load_schema("webshop")
with (ROOT_DIR / "examples" / "honeycomb" / "data" / "seeds.jsonl").open() as f:
    SEEDS = [json.loads(line) for line in f]
SWAPPED = column_swaps(SEEDS, n=1, seed=0)


def _row(nlq, query, extra=("name", "error", "http.method", "cloud.region", "user.id")):
    return {"nlq": nlq, "columns": query_columns(query) + list(extra), "query": query,
            "schema": "webshop"}


def _swap(row, old, new, seed=0):
    return plan_swap(row, WEBSHOP, old, new, random.Random(seed))


def test_breakdown_swap_rewrites_question_list_and_query():
    row = _row("p99 latency by route",
               Q("P99(duration_ms)", by=["http.route"], order=["P99(duration_ms) desc"]))
    out = _swap(row, "http.route", "service.name")
    assert out["nlq"] == "p99 latency by service"
    assert out["columns"] == ["duration_ms", "service.name", "name", "error", "http.method",
                              "cloud.region", "user.id"]
    assert out["query"] == Q("P99(duration_ms)", by=["service.name"],
                             order=["P99(duration_ms) desc"])
    assert out["swap"] == ["http.route", "service.name"] and out["schema"] == "webshop"
    assert row["query"]["breakdowns"] == ["http.route"]  # the input row is untouched


def test_column_names_are_replaced_by_names_and_aliases_by_aliases():
    row = _row("count spans without a user.id, by Service",
               Q("COUNT", where=[("user.id", "does-not-exist")], by=["service.name"]),
               extra=("duration_ms", "session.id"))
    out = _swap(row, "user.id", "order.id")
    assert out["nlq"] == "count spans without a order.id, by Service"
    assert out["query"]["filters"] == [{"column": "order.id", "op": "does-not-exist"}]
    out = _swap(row, "service.name", "cloud.region")
    assert out["nlq"] == "count spans without a user.id, by Region"


def test_duration_thresholds_and_havings_follow_the_new_column():
    row = _row("services where the average latency is above 500ms",
               Q("AVG(duration_ms)", by=["service.name"], order=["AVG(duration_ms) desc"],
                 having=[("AVG(duration_ms)", ">", 500)]))
    out = _swap(row, "duration_ms", "http.ttfb_ms")
    assert out["nlq"] == "services where the average time to first byte is above 500ms"
    assert out["query"] == Q("AVG(http.ttfb_ms)", by=["service.name"],
                             order=["AVG(http.ttfb_ms) desc"],
                             having=[("AVG(http.ttfb_ms)", ">", 500)])


def test_categorical_filter_values_are_replaced_in_question_and_query():
    row = _row("error count for the checkout service",
               Q("COUNT", where=[("error", "=", True), ("service.name", "=", "checkout")]))
    out = _swap(row, "service.name", "cloud.region")
    value = out["query"]["filters"][1]["value"]
    assert value in WEBSHOP["cloud.region"].values
    assert out["nlq"] == f"error count for the {value} region"
    assert out["query"]["filters"][1]["column"] == "cloud.region"


def test_unsafe_swaps_are_refused():
    # a numeric threshold does not carry over to another number
    row = _row("avg cart total when the cart size is at most 1",
               Q("AVG(cart.total_usd)", where=[("cart.item_count", "<=", 1)]))
    assert _swap(row, "cart.item_count", "retry.count") is None
    # booleans are never swapped
    row = _row("how many errors", Q("COUNT", where=[("error", "=", True)]))
    assert _swap(row, "error", "cache.hit") is None
    # a column the question does not mention cannot change with the query
    checkout = ("http.route", "=", "/api/checkout")
    row = _row("slow checkouts", Q("HEATMAP(duration_ms)", where=[ROOT, checkout]))
    assert _swap(row, "http.route", "service.name") is None
    # identifiers with a value, different kinds, and the root-span idiom are left alone
    row = _row("traces for user 48213", Q("COUNT", where=[("user.id", "=", "48213")],
                                          by=["trace.trace_id"]))
    assert _swap(row, "user.id", "session.id") is None
    assert _swap(row, "trace.trace_id", "trace.span_id") is None
    row = _row("p99 latency by route", Q("P99(duration_ms)", by=["http.route"]))
    assert _swap(row, "http.route", "http.status_code") is None
    assert _swap(row, "http.route", "duration_ms") is None  # already used by the query


def test_a_replacement_already_listed_trades_places():
    row = _row("p99 latency by route", Q("P99(duration_ms)", by=["http.route"]))
    out = _swap(row, "http.route", "cloud.region")
    assert out["columns"] == ["duration_ms", "cloud.region", "name", "error", "http.method",
                              "http.route", "user.id"]


def test_longer_mentions_win():
    found = mentions("which database operation is slowest on the database", WEBSHOP)
    assert found["db.operation"] == [(6, 24, "database operation")]
    assert found["db.system"] == [(43, 51, "database")]
    assert "http.route" not in mentions("group by http.route.v2 please", WEBSHOP)


def test_swapped_seeds_stay_valid_and_consistent():
    assert len(SWAPPED) >= len(SEEDS) // 2
    originals = {(r["schema"], r["nlq"]): r for r in SEEDS}
    swapped_from = set()
    for out in SWAPPED:
        old, new = out["swap"]
        assert check(out["query"], out["columns"]) == []
        assert len(out["columns"]) == len(set(out["columns"]))
        src = next(r for r in SEEDS if r["schema"] == out["schema"]
                   and r["query"] == _unswap(out["query"], old, new, r["query"]))
        swapped_from.add((src["schema"], src["nlq"]))
        assert out["columns"] == [new if c == old else old if c == new else c
                                  for c in src["columns"]]
        assert old not in query_columns(out["query"]) and new in query_columns(out["query"])
        assert out["nlq"] != src["nlq"]
    assert swapped_from <= set(originals)


def _unswap(query, old, new, original):
    """``query`` with ``new`` renamed back to ``old`` and filter values taken from ``original``."""
    back = json.loads(json.dumps(query).replace(json.dumps(new), json.dumps(old)))
    for f, g in zip(back.get("filters", []), original.get("filters", [])):
        if f.get("column") == old == g.get("column") and "value" in g:
            f["value"] = g["value"]
    return back


def test_swaps_are_deterministic_and_independent_of_row_order():
    again = column_swaps(copy.deepcopy(SEEDS), n=1, seed=0)
    assert again == SWAPPED
    reordered = column_swaps(list(reversed(SEEDS)), n=1, seed=0)
    assert sorted(map(json.dumps, reordered)) == sorted(map(json.dumps, SWAPPED))
    assert column_swaps(SEEDS[:40], n=1, seed=1) != column_swaps(SEEDS[:40], n=1, seed=0)


def test_several_swaps_per_row_use_different_pairs():
    row = _row("p99 latency by route and region",
               Q("P99(duration_ms)", by=["http.route", "cloud.region"]))
    outs = swap_row(row, WEBSHOP, n=3, seed=0)
    assert len(outs) == 3
    assert len({tuple(o["swap"]) for o in outs}) == 3
