"""Atom F1 on hand-made prediction/gold pairs, and what degenerate answers score."""
import json

import pytest

from assertions.honeycomb import canonical
from examples.honeycomb import baselines, scoring
from examples.honeycomb.evaluate import EVAL_PATH, load_rows
from examples.honeycomb.metrics import score_answers

GOLD = {
    "calculations": [{"op": "COUNT"}, {"op": "P99", "column": "duration_ms"}],
    "filters": [{"column": "service.name", "op": "=", "value": "cart"},
                {"column": "http.status_code", "op": ">=", "value": 500},
                {"column": "http.method", "op": "in", "value": ["POST", "PUT"]}],
    "breakdowns": ["http.route", "cloud.region"],
    "orders": [{"op": "P99", "column": "duration_ms", "order": "descending"}],
    "limit": 10,
}  # 9 atoms: 2 calculations, 3 filters, 2 breakdowns, 1 order, 1 limit
ROWS = load_rows(EVAL_PATH)


def with_(**changes):
    return {**GOLD, **changes}


def f1(prediction, gold=GOLD):
    return scoring.score(prediction, gold)["atom_f1"]


def test_an_identical_query_scores_one_and_matches_exactly():
    result = scoring.score(json.dumps(GOLD), GOLD)
    assert (result["atom_f1"], result["precision"], result["recall"], result["exact"]) == (1.0, 1.0, 1.0, True)
    assert list(result["parts"]) == ["calculation", "filter", "breakdown", "order", "limit"]
    assert all(p == {"precision": 1.0, "recall": 1.0, "f1": 1.0} for p in result["parts"].values())


def test_key_order_list_order_python_repr_and_number_forms_do_not_matter():
    shuffled = {key: (list(reversed(value)) if isinstance(value, list) else value)
                for key, value in reversed(GOLD.items())}
    shuffled["filters"] = [{"value": ["PUT", "POST"], "op": "in", "column": "http.method"},
                           {"column": "http.status_code", "op": ">=", "value": "500"}, GOLD["filters"][0]]
    shuffled["limit"] = 10.0
    assert scoring.score(json.dumps(shuffled), GOLD)["exact"] and f1(json.dumps(shuffled)) == 1.0
    assert f1(repr(shuffled)) == 1.0  # single quotes, as a Python dict prints


def test_one_wrong_filter_is_one_missed_atom_and_one_extra():
    wrong = with_(filters=[*GOLD["filters"][:2], {"column": "http.method", "op": "in", "value": ["GET"]}])
    result = scoring.score(wrong, GOLD)
    assert result["precision"] == result["recall"] == pytest.approx(8 / 9)
    assert result["parts"]["filter"]["f1"] == pytest.approx(2 / 3) and not result["exact"]


def test_a_wrong_calculation_op_misses_that_calculation_and_the_order_on_it():
    wrong = with_(calculations=[{"op": "COUNT"}, {"op": "P95", "column": "duration_ms"}],
                  orders=[{"op": "P95", "column": "duration_ms", "order": "descending"}])
    assert f1(wrong) == pytest.approx(7 / 9)


def test_an_extra_breakdown_lowers_precision_only():
    extra = scoring.score(with_(breakdowns=["http.route", "cloud.region", "service.name"]), GOLD)
    assert (extra["precision"], extra["recall"]) == (pytest.approx(9 / 10), 1.0)
    assert extra["atom_f1"] == pytest.approx(2 * 9 / 19)


def test_what_both_leave_at_the_default_earns_nothing():
    gold = {"calculations": [{"op": "COUNT"}], "breakdowns": ["http.route"]}
    assert f1({}, gold) == 0.0
    assert f1({"time_range": 7200, "filter_combination": "AND"}, gold) == 0.0
    assert f1({"calculations": [{"op": "COUNT"}]}, gold) == pytest.approx(2 / 3)  # 1 of 2, nothing extra
    assert f1({"breakdowns": ["http.route"]}, gold) == 1.0  # no calculation means COUNT
    assert f1({**gold, "time_range": 3600}, gold) == pytest.approx(0.8)
    assert f1({**gold, "limit": 100}, gold) == pytest.approx(0.8)
    assert scoring.score({}, {})["atom_f1"] == 1.0  # both set nothing: defined as a match


def test_time_windows_compare_as_the_time_they_cover():
    gold = {"calculations": [{"op": "COUNT"}], "start_time": 1700000000, "end_time": 1700003600}
    assert f1({"calculations": [{"op": "COUNT"}], "start_time": 1700000000, "time_range": 3600}, gold) == 1.0
    assert f1({"calculations": [{"op": "COUNT"}], "time_range": 3600}, gold) == pytest.approx(0.5)


def test_an_order_without_direction_matches_no_order():
    gold = {"calculations": [{"op": "COUNT"}], "orders": [{"op": "COUNT", "order": "ascending"}]}
    result = scoring.score({"calculations": [{"op": "COUNT"}], "orders": [{"op": "COUNT"}]}, gold)
    assert result["parts"]["order"]["f1"] == 0.0 and result["atom_f1"] == pytest.approx(0.5)


def test_what_is_not_a_query_scores_zero():
    for text in ("The query is COUNT by route.", "", '["calculations"]', '{"calculations": [', None):
        result = scoring.score(text, GOLD)
        assert (result["atom_f1"], result["exact"]) == (0.0, False)
        assert all(p["f1"] == 0.0 for p in result["parts"].values())
    with pytest.raises(scoring.ParseError):
        scoring.score(GOLD, "not a query")


def test_summarize_averages_rows_and_each_kind_over_the_rows_that_have_it():
    rows = [scoring.score(GOLD, GOLD), scoring.score(with_(breakdowns=["http.route"]), GOLD),
            scoring.score({"calculations": [{"op": "COUNT"}]}, {"calculations": [{"op": "COUNT"}]})]
    summary = scoring.summarize(rows)
    assert summary["atom_f1"] == round((1 + 2 * 8 / 17 + 1) / 3, 4)
    assert summary["parts"]["breakdown"] == {"precision": 1.0, "recall": 0.75, "f1": round((1 + 2 / 3) / 2, 4),
                                             "rows": 2}
    assert summary["parts"]["calculation"]["rows"] == 3 and "time" not in summary["parts"]


def test_every_held_out_gold_scores_one_against_itself_and_its_canonical_form():
    for row in ROWS:
        assert f1(row["query"], row["query"]) == 1.0
        assert f1(canonical(row["query"]), row["query"]) == 1.0


def test_degenerate_answers_score_near_zero_and_a_perfect_one_scores_one():
    """On every held-out row: the empty query and COUNT + a regex time window score low, the
    gold itself 1 (before the atom F1, `{}` scored 0.706 and the regex answer 0.728)."""
    seeds = load_rows(baselines.SEEDS_PATH)
    made = baselines.answers(ROWS, seeds)
    empty, regex, nearest = (score_answers(made[name], ROWS) for name in ("empty", "count_and_time", "nearest_seed"))
    perfect = score_answers([row["query"] for row in ROWS], ROWS)
    assert empty["atom_f1"] == 0.0 and empty["validity_rate"] == 0.0
    assert empty["failures_per_rule"] == {"query_empty": len(ROWS)}
    assert regex["validity_rate"] == 1.0 and 0.1 < regex["atom_f1"] < 0.35
    assert nearest["atom_f1"] < 0.35 and nearest["validity_rate"] < 0.6
    assert perfect["atom_f1"] == perfect["validity_rate"] == perfect["exact_match_rate"] == 1.0


def test_the_regex_baseline_reads_relative_windows_only():
    assert baselines.window_from_question("failed payments in the last 6 hours") == 21600
    assert baselines.window_from_question("sum of refunds, last week") == 604800
    assert baselines.window_from_question("unique sessions per hour over the past day") == 86400
    assert baselines.window_from_question("between 08:00 and 08:30 UTC on 3 September 2024") is None
    assert baselines.count_and_time({"nlq": "errors in the last two hours"}) == {"calculations": [{"op": "COUNT"}]}
