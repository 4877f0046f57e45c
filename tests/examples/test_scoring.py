"""Partial credit per query part, on hand-made prediction/gold pairs."""
import json

import pytest

from assertions.honeycomb import canonical
from examples.honeycomb import scoring
from examples.honeycomb.evaluate import EVAL_PATH, load_rows

GOLD = {
    "calculations": [{"op": "COUNT"}, {"op": "P99", "column": "duration_ms"}],
    "filters": [{"column": "service.name", "op": "=", "value": "cart"},
                {"column": "http.status_code", "op": ">=", "value": 500},
                {"column": "http.method", "op": "in", "value": ["POST", "PUT"]}],
    "breakdowns": ["http.route", "cloud.region"],
    "orders": [{"op": "P99", "column": "duration_ms", "order": "descending"}],
    "limit": 10,
}


def with_(**changes):
    return {**GOLD, **changes}


def f1s(prediction, gold=GOLD):
    return {part: round(s["f1"], 4) for part, s in scoring.part_scores(prediction, gold).items()}


def mean(prediction, gold=GOLD):
    return scoring.score(prediction, gold)["part_f1"]


def test_an_identical_query_scores_one_on_every_part():
    result = scoring.score(json.dumps(GOLD), GOLD)
    assert result["part_f1"] == 1.0
    assert list(result["parts"]) == list(scoring.PARTS)
    assert all(s == {"precision": 1.0, "recall": 1.0, "f1": 1.0} for s in result["parts"].values())


def test_key_order_list_order_and_python_repr_do_not_matter():
    shuffled = {key: (list(reversed(value)) if isinstance(value, list) else value)
                for key, value in reversed(GOLD.items())}
    shuffled["filters"] = [{"value": ["PUT", "POST"], "op": "in", "column": "http.method"},
                           *[dict(reversed(f.items())) for f in GOLD["filters"][:2]]]
    assert mean(json.dumps(shuffled)) == 1.0
    assert mean(repr(shuffled)) == 1.0  # single quotes, as a Python dict prints


def test_one_wrong_filter_costs_a_third_of_the_filters_part():
    wrong = with_(filters=[*GOLD["filters"][:2], {"column": "http.method", "op": "in", "value": ["GET"]}])
    expected = {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3}
    assert scoring.part_scores(wrong, GOLD)["filters"] == pytest.approx(expected)
    assert mean(wrong) == pytest.approx((8 + 2 / 3) / 9)
    assert round(mean(wrong), 4) == 0.963


def test_a_wrong_calculation_op_misses_that_calculation_and_the_order_on_it():
    wrong = with_(calculations=[{"op": "COUNT"}, {"op": "P95", "column": "duration_ms"}],
                  orders=[{"op": "P95", "column": "duration_ms", "order": "descending"}])
    assert f1s(wrong) == {**f1s(GOLD), "calculations": 0.5, "orders": 0.0}
    assert mean(wrong) == pytest.approx(7.5 / 9)


def test_an_extra_breakdown_lowers_precision_only():
    extra = with_(breakdowns=["http.route", "cloud.region", "service.name"])
    expected = {"precision": 2 / 3, "recall": 1.0, "f1": 0.8}
    assert scoring.part_scores(extra, GOLD)["breakdowns"] == pytest.approx(expected)
    assert mean(extra) == pytest.approx(8.8 / 9)


def test_a_part_absent_from_the_gold_still_counts():
    gold = {"calculations": [{"op": "COUNT"}]}
    assert mean({"calculations": [{"op": "COUNT"}], "breakdowns": ["http.route"]}, gold) == pytest.approx(8 / 9)
    assert mean({"calculations": [{"op": "COUNT"}], "limit": 5}, gold) == pytest.approx(8 / 9)
    # COUNT alone: 2/3 of the calculations; no filters, breakdowns, orders or limit
    assert mean({"calculations": [{"op": "COUNT"}]}, GOLD) == pytest.approx((4 + 2 / 3) / 9)


def test_time_defaults_to_the_last_two_hours():
    gold = {"calculations": [{"op": "COUNT"}]}
    assert mean({**gold, "time_range": 7200}, gold) == 1.0
    assert mean({**gold, "time_range": 3600}, gold) == pytest.approx(8 / 9)
    absolute = {**gold, "start_time": 1700000000, "end_time": 1700003600}
    assert mean({**gold, "start_time": 1700000000, "time_range": 3600}, absolute) == 1.0
    assert mean({**gold, "end_time": 1700007200}, {**gold, "start_time": 1700000000}) == 1.0
    assert f1s({**gold, "time_range": 3600}, absolute)["time_range"] == 0.0
    for unreadable in ({}, "yesterday", True):
        assert f1s({**gold, "start_time": unreadable}, gold)["time_range"] == 0.0


def test_values_are_compared_as_honeycomb_reads_them():
    numbers = with_(filters=[*GOLD["filters"][::2], {"column": "http.status_code", "op": ">=", "value": "500"}],
                    limit=10.0)
    assert mean(numbers) == 1.0
    assert mean({"filters": [{"column": "a", "op": "exists", "value": ""}]},
                {"filters": [{"column": "a", "op": "exists"}]}) == 1.0
    assert f1s({"filters": [{"column": "a", "op": "=", "value": "true"}]},
               {"filters": [{"column": "a", "op": "=", "value": True}]})["filters"] == 0.0
    in_order = {"filters": [{"column": "a", "op": "=", "value": [1, 2]}]}
    assert f1s({"filters": [{"column": "a", "op": "=", "value": [2, 1]}]}, in_order)["filters"] == 0.0


def test_honeycomb_defaults_fill_what_a_query_leaves_out():
    assert mean({}, {"calculations": [{"op": "COUNT"}]}) == 1.0
    ascending = {"orders": [{"column": "http.route", "order": "ascending"}], "breakdowns": ["http.route"]}
    assert mean({"orders": [{"column": "http.route"}], "breakdowns": ["http.route"]}, ascending) == 1.0
    descending = {**ascending, "orders": [{"column": "http.route", "order": "descending"}]}
    assert f1s(ascending, descending)["orders"] == 0.0
    two = [{"column": "a", "op": "exists"}, {"column": "b", "op": "exists"}]
    assert f1s({"filters": two, "filter_combination": "AND"}, {"filters": two})["filter_combination"] == 1.0
    assert f1s({"filters": two, "filter_combination": "OR"}, {"filters": two})["filter_combination"] == 0.0
    assert f1s({"filters": two[:1], "filter_combination": "OR"}, {"filters": two[:1]})["filter_combination"] == 1.0


def test_what_is_not_a_query_scores_zero_everywhere():
    for text in ("The query is COUNT by route.", "", '["calculations"]', '{"calculations": [', None):
        result = scoring.score(text, GOLD)
        assert result["part_f1"] == 0.0
        assert all(s == {"precision": 0.0, "recall": 0.0, "f1": 0.0} for s in result["parts"].values())
    assert f1s({"breakdowns": "http.route"}, {"breakdowns": ["http.route"]})["breakdowns"] == 0.0
    assert f1s({"filters": [["a", "exists", None]]}, {"filters": [{"column": "a", "op": "exists"}]})["filters"] == 0.0
    with pytest.raises(scoring.ParseError):
        scoring.score(GOLD, "not a query")


def test_summarize_averages_rows_part_by_part():
    rows = [scoring.score(GOLD, GOLD), scoring.score(with_(breakdowns=["http.route"]), GOLD)]
    summary = scoring.summarize(rows)
    assert summary["parts"]["breakdowns"] == {"precision": 1.0, "recall": 0.75, "f1": round((1 + 2 / 3) / 2, 4)}
    assert summary["parts"]["limit"]["f1"] == 1.0
    assert summary["part_f1"] == round((1 + (8 + 2 / 3) / 9) / 2, 4)


def test_every_held_out_gold_query_scores_one_against_itself_and_its_canonical_form():
    for row in load_rows(EVAL_PATH):
        assert mean(row["query"], row["query"]) == 1.0
        assert mean(canonical(row["query"]), row["query"]) == 1.0
