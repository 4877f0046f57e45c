"""Invalid Honeycomb queries written for these tests: each breaks a rule of the spec, named exactly."""

import pytest

from assertions import honeycomb
from honeycomb_cases import AVG, COLUMNS, COUNT, HEATMAP, P99, rules

INVALID = {
    # top level
    "unknown top-level key": ({"calculations": [COUNT], "sort": "desc"}, ["query_key_unknown"]),
    "non-string top-level key": ({1: 2}, ["query_key_unknown"]),
    # calculations
    "calculations not a list": ({"calculations": COUNT}, ["calculations_not_list"]),
    "calculation not an object": ({"calculations": ["COUNT"]}, ["calc_not_object"]),
    "calculation without op": ({"calculations": [{"column": "duration_ms"}]}, ["calc_op_missing"]),
    "unknown calculation op": ({"calculations": [{"op": "MEDIAN", "column": "duration_ms"}]}, ["calc_op_unknown"]),
    "lower-case calculation op": ({"calculations": [{"op": "count"}]}, ["calc_op_unknown"]),
    "calculation op not a string": ({"calculations": [{"op": ["COUNT"]}]}, ["calc_op_unknown"]),
    "count with a column": ({"calculations": [{"op": "COUNT", "column": "duration_ms"}]}, ["calc_column_unexpected"]),
    "concurrency with a column": (
        {"calculations": [{"op": "CONCURRENCY", "column": "name"}]},
        ["calc_column_unexpected"],
    ),
    "unknown calculation column": ({"calculations": [{"op": "P99", "column": "latency"}]}, ["calc_column_unknown"]),
    "calculation column is a prefix": (
        {"calculations": [{"op": "AVG", "column": "duration"}]},
        ["calc_column_unknown"],
    ),
    "calculation column not a string": (
        {"calculations": [{"op": "AVG", "column": ["duration_ms"]}]},
        ["calc_column_unknown"],
    ),
    "calculation extra key": ({"calculations": [{**AVG, "alias": "avg"}]}, ["calc_key_unknown"]),
    # filters
    "filters not a list": ({"filters": "error = true"}, ["filters_not_list"]),
    "filter not an object": ({"filters": [["error", "=", True]]}, ["filter_not_object"]),
    "filter without column": ({"filters": [{"op": "=", "value": 1}]}, ["filter_column_missing"]),
    "filter with null column": ({"filters": [{"column": None, "op": "exists"}]}, ["filter_column_missing"]),
    "filter empty": ({"filters": [{}]}, ["filter_column_missing", "filter_op_missing"]),
    "filter column is a substring": (
        {"filters": [{"column": "status_code", "op": "exists"}]},
        ["filter_column_unknown"],
    ),
    "filter column not a string": ({"filters": [{"column": 5, "op": "exists"}]}, ["filter_column_unknown"]),
    "filter without op": ({"filters": [{"column": "error", "value": True}]}, ["filter_op_missing"]),
    "filter op ==": ({"filters": [{"column": "error", "op": "==", "value": True}]}, ["filter_op_unknown"]),
    "filter op equals": ({"filters": [{"column": "error", "op": "equals", "value": True}]}, ["filter_op_unknown"]),
    "filter value null": ({"filters": [{"column": "name", "op": "contains", "value": None}]}, ["filter_value_missing"]),
    "exists with a value": (
        {"filters": [{"column": "error", "op": "exists", "value": True}]},
        ["filter_value_unexpected"],
    ),
    "does-not-exist with a value": (
        {"filters": [{"column": "error", "op": "does-not-exist", "value": ""}]},
        ["filter_value_unexpected"],
    ),
    "in without a value": ({"filters": [{"column": "http.method", "op": "in"}]}, ["filter_value_missing"]),
    "in with a string": (
        {"filters": [{"column": "http.method", "op": "in", "value": "GET"}]},
        ["filter_value_not_list"],
    ),
    "not-in with a string": (
        {"filters": [{"column": "http.method", "op": "not-in", "value": "GET"}]},
        ["filter_value_not_list"],
    ),
    "in with an empty list": (
        {"filters": [{"column": "http.method", "op": "in", "value": []}]},
        ["filter_value_empty"],
    ),
    "in with nested lists": (
        {"filters": [{"column": "http.method", "op": "in", "value": [["GET"]]}]},
        ["filter_value_type"],
    ),
    "equals an object": ({"filters": [{"column": "name", "op": "=", "value": {"a": 1}}]}, ["filter_value_type"]),
    "filled join_column": (
        {"filters": [{"column": "name", "op": "exists", "join_column": "trace.trace_id"}]},
        ["filter_key_unknown"],
    ),
    "filter extra key": ({"filters": [{"column": "name", "op": "exists", "negate": True}]}, ["filter_key_unknown"]),
    # filter_combination
    "lower-case combination": ({"filter_combination": "and"}, ["filter_combination_invalid"]),
    "unknown combination": ({"filter_combination": "XOR"}, ["filter_combination_invalid"]),
    "combination not a string": ({"filter_combination": 1}, ["filter_combination_invalid"]),
    # breakdowns
    "breakdowns not a list": ({"breakdowns": "http.method"}, ["breakdowns_not_list"]),
    "unknown breakdown": ({"breakdowns": ["http.methods"]}, ["breakdown_column_unknown"]),
    "breakdown is a prefix": ({"breakdowns": ["http"]}, ["breakdown_column_unknown"]),
    "breakdown is a suffix of two columns": ({"breakdowns": ["name", "service"]}, ["breakdown_column_unknown"]),
    "breakdown not a string": ({"breakdowns": [1, {"column": "name"}]}, ["breakdown_column_unknown"] * 2),
    # orders
    "orders not a list": (
        {"calculations": [COUNT], "orders": {"op": "COUNT", "order": "descending"}},
        ["orders_not_list"],
    ),
    "order not an object": ({"calculations": [COUNT], "orders": ["COUNT"]}, ["order_not_object"]),
    "order without direction": ({"calculations": [COUNT], "orders": [{"op": "COUNT"}]}, ["order_direction_invalid"]),
    "order direction desc": (
        {"calculations": [COUNT], "orders": [{"op": "COUNT", "order": "desc"}]},
        ["order_direction_invalid"],
    ),
    "order without target": ({"calculations": [COUNT], "orders": [{"order": "descending"}]}, ["order_target_missing"]),
    "order by missing count": (
        {"calculations": [P99], "orders": [{"op": "COUNT", "order": "descending"}]},
        ["order_calc_missing"],
    ),
    "order by other percentile": (
        {"calculations": [{"op": "P95", "column": "duration_ms"}], "orders": [{**P99, "order": "descending"}]},
        ["order_calc_missing"],
    ),
    "order by same op other column": (
        {"calculations": [AVG], "orders": [{"op": "AVG", "column": "http.status_code", "order": "descending"}]},
        ["order_calc_missing"],
    ),
    "order op without its column": (
        {"calculations": [AVG], "orders": [{"op": "AVG", "order": "descending"}]},
        ["order_column_missing"],
    ),
    "order count with a column": (
        {
            "calculations": [COUNT],
            "breakdowns": ["name"],
            "orders": [{"op": "COUNT", "column": "name", "order": "descending"}],
        },
        ["order_column_unexpected"],
    ),
    "order by heatmap": (
        {"calculations": [HEATMAP], "orders": [{**HEATMAP, "order": "descending"}]},
        ["order_heatmap"],
    ),
    "order by unknown op": (
        {"orders": [{"op": "MEDIAN", "column": "duration_ms", "order": "ascending"}]},
        ["order_op_unknown"],
    ),
    "order column not a string": (
        {"calculations": [AVG], "orders": [{"op": "AVG", "column": ["duration_ms"], "order": "ascending"}]},
        ["order_column_unknown"],
    ),
    "order by a column not broken down": (
        {"breakdowns": ["name"], "orders": [{"column": "service.name", "order": "ascending"}]},
        ["order_breakdown_missing"],
    ),
    "order extra key": (
        {"calculations": [COUNT], "orders": [{"op": "COUNT", "order": "descending", "limit": 5}]},
        ["order_key_unknown"],
    ),
    # havings
    "havings not a list": (
        {"calculations": [COUNT], "havings": {"calculate_op": "COUNT", "op": ">", "value": 1}},
        ["havings_not_list"],
    ),
    "having not an object": ({"calculations": [COUNT], "havings": ["COUNT > 1"]}, ["having_not_object"]),
    "having without calculate_op": (
        {"calculations": [COUNT], "havings": [{"op": ">", "value": 1}]},
        ["having_calculate_op_missing"],
    ),
    "having unknown calculate_op": (
        {"calculations": [COUNT], "havings": [{"calculate_op": "TOTAL", "op": ">", "value": 1}]},
        ["having_calculate_op_unknown"],
    ),
    "having on heatmap": (
        {
            "calculations": [HEATMAP],
            "havings": [{"calculate_op": "HEATMAP", "column": "duration_ms", "op": ">", "value": 1}],
        },
        ["having_heatmap"],
    ),
    "having count with a column": (
        {"calculations": [COUNT], "havings": [{"calculate_op": "COUNT", "column": "name", "op": ">", "value": 1}]},
        ["having_column_unexpected"],
    ),
    "having avg without column": (
        {"calculations": [AVG], "havings": [{"calculate_op": "AVG", "op": ">", "value": 1}]},
        ["having_column_missing"],
    ),
    "having on a missing calculation": (
        {"calculations": [COUNT], "havings": [{"calculate_op": "MAX", "column": "duration_ms", "op": ">", "value": 1}]},
        ["having_calc_missing"],
    ),
    "having without op": (
        {"calculations": [COUNT], "havings": [{"calculate_op": "COUNT", "value": 1}]},
        ["having_op_missing"],
    ),
    "having op contains": (
        {"calculations": [COUNT], "havings": [{"calculate_op": "COUNT", "op": "contains", "value": 1}]},
        ["having_op_unknown"],
    ),
    "having without value": (
        {"calculations": [COUNT], "havings": [{"calculate_op": "COUNT", "op": ">"}]},
        ["having_value_missing"],
    ),
    "having value a string": (
        {"calculations": [COUNT], "havings": [{"calculate_op": "COUNT", "op": ">", "value": "10"}]},
        ["having_value_not_number"],
    ),
    "having value a bool": (
        {"calculations": [COUNT], "havings": [{"calculate_op": "COUNT", "op": ">", "value": True}]},
        ["having_value_not_number"],
    ),
    "having extra key": (
        {"calculations": [COUNT], "havings": [{"calculate_op": "COUNT", "op": ">", "value": 1, "order": "descending"}]},
        ["having_key_unknown"],
    ),
    # time
    "time_range a string": ({"time_range": "7200"}, ["time_range_invalid"]),
    "time_range a float": ({"time_range": 7200.0}, ["time_range_invalid"]),
    "time_range a bool": ({"time_range": True}, ["time_range_invalid"]),
    "time_range zero": ({"time_range": 0}, ["time_range_invalid"]),
    "time_range negative": ({"time_range": -3600}, ["time_range_invalid"]),
    "start_time a bool": ({"start_time": True}, ["start_time_invalid"]),
    "end_time a string": ({"end_time": "now"}, ["end_time_invalid"]),
    "time_range with start and end": (
        {"time_range": 3600, "start_time": 1700000000, "end_time": 1700003600},
        ["time_range_conflict"],
    ),
    "end before start": ({"start_time": 1700003600, "end_time": 1700000000}, ["end_time_before_start"]),
    "end equal to start": ({"start_time": 1700000000, "end_time": 1700000000}, ["end_time_before_start"]),
    # granularity
    "granularity a bool": ({"granularity": True}, ["granularity_invalid"]),
    "granularity a float": ({"granularity": 60.0}, ["granularity_invalid"]),
    "granularity zero": ({"granularity": 0}, ["granularity_invalid"]),
    "granularity below window/1000": ({"time_range": 7200, "granularity": 7}, ["granularity_too_small"]),
    "granularity above window/10": ({"time_range": 7200, "granularity": 721}, ["granularity_too_large"]),
    "granularity above default window/10": ({"granularity": 721}, ["granularity_too_large"]),
    "granularity above start-end window/10": (
        {"start_time": 1700000000, "end_time": 1700003600, "granularity": 361},
        ["granularity_too_large"],
    ),
    "granularity below start-end window/1000": (
        {"start_time": 1700000000, "end_time": 1700003600, "granularity": 3},
        ["granularity_too_small"],
    ),
    "window too short for any granularity": ({"time_range": 5, "granularity": 1}, ["granularity_too_large"]),
    # limit
    "limit zero": ({"limit": 0}, ["limit_invalid"]),
    "limit negative": ({"limit": -1}, ["limit_invalid"]),
    "limit a bool": ({"limit": True}, ["limit_invalid"]),
    "limit a string": ({"limit": "10"}, ["limit_invalid"]),
    "limit a float": ({"limit": 10.5}, ["limit_invalid"]),
    # several at once
    "all failures are reported": (
        {
            "calculations": [{"op": "MAX"}],
            "breakdowns": ["nope"],
            "limit": 0,
            "orders": [{"op": "COUNT", "order": "up"}],
        },
        [
            "breakdown_column_unknown",
            "calc_column_missing",
            "limit_invalid",
            "order_calc_missing",
            "order_direction_invalid",
        ],
    ),
}


@pytest.mark.parametrize(("query", "expected"), INVALID.values(), ids=INVALID.keys())
def test_invalid_queries_fail_exactly_the_expected_rules(query, expected):
    assert rules(query) == sorted(expected)
    assert not honeycomb.is_valid(query, COLUMNS)


def test_failure_messages_say_what_to_do():
    query = {
        "filters": [{"column": "http.method", "op": "in", "value": "GET"}],
        "calculations": [{"op": "AVG", "column": "duration"}],
        "granularity": 1,
    }
    messages = [failure.message for failure in honeycomb.check(query, COLUMNS)]
    assert messages == [
        "calculation AVG column \"duration\" is not one of the given columns; did you mean \"duration_ms\"?",
        "filter op 'in' needs a list value, got \"GET\"",
        "granularity 1 is below window/1000; for a 7200-second window use a granularity from 8 to 720 seconds",
    ]


def test_count_and_concurrency_orders_and_havings_match_their_own_calculation():
    query = {
        "calculations": [{"op": "CONCURRENCY"}],
        "orders": [{"op": "COUNT", "order": "descending"}],
        "havings": [{"calculate_op": "CONCURRENCY", "op": ">", "value": 2}],
    }
    assert rules(query) == ["order_calc_missing"]
