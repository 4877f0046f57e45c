"""Valid Honeycomb queries written for these tests: every op and every part of the language is accepted."""

import pytest

from assertions import honeycomb
from honeycomb_cases import AVG, COLUMNS, COUNT, HEATMAP, P99, rules

COLUMN_OPS = [
    "COUNT_DISTINCT", "HEATMAP", "SUM", "AVG", "MAX", "MIN",
    "P001", "P01", "P05", "P10", "P25", "P50", "P75", "P90", "P95", "P99", "P999",
    "RATE_AVG", "RATE_SUM", "RATE_MAX",
]  # fmt: skip
SINGLE_VALUE_FILTER_OPS = [
    "=", "!=", ">", ">=", "<", "<=",
    "starts-with", "does-not-start-with", "contains", "does-not-contain",
]  # fmt: skip
HAVING_OPS = ["=", "!=", ">", ">=", "<", "<="]

VALID = {
    "count": {"calculations": [COUNT]},
    "concurrency": {"calculations": [{"op": "CONCURRENCY"}]},
    "count with null column": {"calculations": [{"op": "COUNT", "column": None}]},
    "several calculations": {
        "calculations": [COUNT, HEATMAP, P99, {"op": "COUNT_DISTINCT", "column": "trace.trace_id"}],
    },
    "filter equals false": {"filters": [{"column": "error", "op": "=", "value": False}]},
    "filter equals zero": {"filters": [{"column": "http.status_code", "op": ">", "value": 0}]},
    "filter exists": {"filters": [{"column": "error", "op": "exists"}]},
    "filter does-not-exist": {"filters": [{"column": "trace.parent_id", "op": "does-not-exist"}]},
    "filter in": {"filters": [{"column": "http.method", "op": "in", "value": ["GET", "POST"]}]},
    "filter not-in numbers": {"filters": [{"column": "http.status_code", "op": "not-in", "value": [200, 204]}]},
    "empty join_column": {"filters": [{"column": "error", "op": "=", "value": True, "join_column": ""}]},
    "filter_combination AND": {"filters": [{"column": "error", "op": "exists"}], "filter_combination": "AND"},
    "filter_combination OR": {
        "filters": [{"column": "error", "op": "exists"}, {"column": "http.status_code", "op": ">=", "value": 500}],
        "filter_combination": "OR",
    },
    "breakdowns": {"breakdowns": ["service.name", "name"], "calculations": [COUNT]},
    "order by count": {"calculations": [COUNT], "orders": [{"op": "COUNT", "order": "descending"}]},
    "order by percentile": {"calculations": [HEATMAP, P99], "orders": [{**P99, "order": "ascending"}]},
    "order by breakdown": {"breakdowns": ["name"], "orders": [{"column": "name", "order": "ascending"}]},
    "having on count": {"calculations": [COUNT], "havings": [{"calculate_op": "COUNT", "op": ">", "value": 10}]},
    "having on avg with float": {
        "calculations": [AVG],
        "havings": [{"calculate_op": "AVG", "column": "duration_ms", "op": ">=", "value": 1.5}],
    },
    "time_range": {"time_range": 86400},
    "start and end": {"start_time": 1700000000, "end_time": 1700003600},
    "time_range and start": {"time_range": 3600, "start_time": 1700000000},
    "time_range and end": {"time_range": 3600, "end_time": 1700000000},
    "granularity lowest for 7200": {"time_range": 7200, "granularity": 8},
    "granularity highest for 7200": {"time_range": 7200, "granularity": 720},
    "granularity with default window": {"granularity": 720},
    "granularity from start and end": {"start_time": 1700000000, "end_time": 1700003600, "granularity": 360},
    "granularity from start and the default range": {"start_time": 1700000000, "granularity": 720},
    "only a time range: the events of the last five minutes": {"time_range": 300},
    "only a limit": {"limit": 1000},
    "limit": {"limit": 1},
    "everything": {
        "calculations": [COUNT, HEATMAP, P99],
        "filters": [
            {"column": "trace.parent_id", "op": "does-not-exist", "join_column": ""},
            {"column": "service.name", "op": "starts-with", "value": "api"},
        ],
        "filter_combination": "AND",
        "breakdowns": ["http.method"],
        "orders": [
            {"op": "P99", "column": "duration_ms", "order": "descending"},
            {"column": "http.method", "order": "ascending"},
        ],
        "havings": [{"calculate_op": "P99", "column": "duration_ms", "op": ">", "value": 500}],
        "time_range": 604800,
        "granularity": 3600,
        "limit": 100,
    },
}


@pytest.mark.parametrize("query", VALID.values(), ids=VALID.keys())
def test_valid_queries_have_no_failures(query):
    assert honeycomb.check(query, COLUMNS) == []
    assert honeycomb.is_valid(query, COLUMNS)


EMPTY = {
    "nothing": {},
    "empty lists and nulls": {"calculations": [], "filters": [], "breakdowns": None},
    "only the default time range": {"time_range": 7200},
    "only a filter_combination": {"filter_combination": "AND"},
    "OR without filters": {"filter_combination": "OR", "havings": []},
}


@pytest.mark.parametrize("query", EMPTY.values(), ids=EMPTY.keys())
def test_a_query_that_sets_nothing_is_rejected_with_what_to_add(query):
    failures = honeycomb.check(query, COLUMNS)
    assert [f.rule for f in failures] == ["query_empty"]
    assert '"calculations": [{"op": "COUNT"}]' in failures[0].message
    assert "add what the question asks for" in failures[0].message
    assert honeycomb.atoms(query) == frozenset()


def test_a_start_time_alone_runs_for_the_default_range():
    """Honeycomb counts time_range (default 7200 s) forward from start_time, so granularity
    is bounded by that window, not left open."""
    assert rules({"start_time": 1700000000, "granularity": 86400}) == ["granularity_too_large"]
    assert rules({"end_time": 1700000000, "time_range": 86400, "granularity": 86400}) == ["granularity_too_large"]
    assert rules({"end_time": 1700000000, "time_range": 86400, "granularity": 3600}) == []


@pytest.mark.parametrize("op", COLUMN_OPS)
def test_every_column_op_is_accepted_with_a_column_and_rejected_without(op):
    assert rules({"calculations": [{"op": op, "column": "duration_ms"}]}) == []
    assert rules({"calculations": [{"op": op}]}) == ["calc_column_missing"]


@pytest.mark.parametrize("op", SINGLE_VALUE_FILTER_OPS)
def test_every_single_value_filter_op_needs_a_value(op):
    assert rules({"filters": [{"column": "name", "op": op, "value": "x"}]}) == []
    assert rules({"filters": [{"column": "name", "op": op}]}) == ["filter_value_missing"]
    assert rules({"filters": [{"column": "name", "op": op, "value": ["x", "y"]}]}) == ["filter_value_type"]


@pytest.mark.parametrize("op", HAVING_OPS)
def test_every_having_op_is_accepted(op):
    query = {"calculations": [COUNT], "havings": [{"calculate_op": "COUNT", "op": op, "value": 1}]}
    assert rules(query) == []
