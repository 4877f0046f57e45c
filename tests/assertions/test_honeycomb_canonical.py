"""canonical() for exact-match evaluation and complexity() for the curation filter."""

import json

import pytest

from assertions import honeycomb
from assertions.parsing import ParseError

COUNT = {"op": "COUNT"}
P99 = {"op": "P99", "column": "duration_ms"}
ERRORS = {"column": "error", "op": "=", "value": True}
ROOTS = {"column": "trace.parent_id", "op": "does-not-exist"}


def same(first, second):
    return honeycomb.canonical(first) == honeycomb.canonical(second)


def test_key_and_list_order_do_not_matter():
    first = {"calculations": [COUNT, P99], "filters": [ERRORS, ROOTS], "breakdowns": ["name", "http.method"]}
    second = {"breakdowns": ["http.method", "name"], "filters": [ROOTS, ERRORS], "calculations": [P99, COUNT]}
    assert same(first, second)


def test_order_of_orders_matters():
    calcs = [COUNT, P99]
    first = {"calculations": calcs, "orders": [{"op": "COUNT", "order": "descending"}, {**P99, "order": "descending"}]}
    second = {"calculations": calcs, "orders": [{**P99, "order": "descending"}, {"op": "COUNT", "order": "descending"}]}
    assert not same(first, second)


def test_the_default_time_range_is_made_explicit():
    assert same({"calculations": [COUNT]}, {"calculations": [COUNT], "time_range": 7200})
    assert not same({"calculations": [COUNT]}, {"calculations": [COUNT], "time_range": 3600})
    window = {"start_time": 1700000000, "end_time": 1700003600}
    assert "time_range" not in json.loads(honeycomb.canonical(window))


def test_harmless_differences_are_dropped():
    assert same({"filters": [{**ROOTS, "join_column": ""}]}, {"filters": [ROOTS]})
    assert same({"calculations": [{"op": "COUNT", "column": None}]}, {"calculations": [COUNT]})
    assert same({"calculations": [COUNT], "breakdowns": [], "havings": None}, {"calculations": [COUNT]})


def test_filter_combination_default_and_irrelevance():
    two = [ERRORS, ROOTS]
    assert same({"filters": two}, {"filters": two, "filter_combination": "AND"})
    assert not same({"filters": two}, {"filters": two, "filter_combination": "OR"})
    assert same({"filters": [ERRORS], "filter_combination": "OR"}, {"filters": [ERRORS]})


def test_in_values_are_a_set():
    first = {"filters": [{"column": "http.method", "op": "in", "value": ["GET", "POST"]}]}
    second = {"filters": [{"column": "http.method", "op": "in", "value": ["POST", "GET"]}]}
    assert same(first, second)


def test_text_forms_give_the_same_canonical_json():
    as_json = '{"filters": [{"column": "name", "op": "=", "value": "user\'s cart"}], "time_range": 7200}'
    as_repr = "{'time_range': 7200, 'filters': [{'column': 'name', 'op': '=', 'value': \"user's cart\"}]}"
    assert same(as_json, as_repr)
    assert honeycomb.canonical(as_json) == (
        '{"calculations":[{"op":"COUNT"}],"filters":[{"column":"name","op":"=","value":"user\'s cart"}],'
        '"time_range":7200}'
    )


def test_canonical_is_idempotent_and_keeps_the_query_valid():
    orders = [{"op": "COUNT", "order": "descending"}]
    query = {"filters": [ROOTS, ERRORS], "calculations": [P99, COUNT], "orders": orders}
    once = honeycomb.canonical(query)
    assert honeycomb.canonical(once) == once
    assert honeycomb.check(once, ["error", "trace.parent_id", "duration_ms"]) == []


def test_canonical_survives_wrong_shapes_and_rejects_unreadable_text():
    assert honeycomb.canonical({"calculations": "COUNT", "filters": [1, {"op": None}]}) == (
        '{"calculations":"COUNT","filter_combination":"AND","filters":[1,{}],"time_range":7200}'
    )
    with pytest.raises(ParseError):
        honeycomb.canonical("not a query")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, 0),
        ({"calculations": [COUNT], "time_range": 7200}, 1),
        ({"calculations": [COUNT], "time_range": 3600}, 2),
        ({"calculations": [COUNT, P99], "filters": [ROOTS], "breakdowns": ["name"]}, 4),
        ({"calculations": [COUNT], "orders": [{"op": "COUNT", "order": "descending"}], "limit": 10}, 3),
        ({"calculations": [COUNT], "havings": [{"calculate_op": "COUNT", "op": ">", "value": 1}]}, 2),
        ({"start_time": 1700000000, "end_time": 1700003600, "granularity": 60}, 3),
        ({"calculations": "COUNT", "filters": {"column": "x"}}, 0),
        ('{"calculations": [{"op": "COUNT"}], "breakdowns": ["name"]}', 2),
    ],
)
def test_complexity_counts_query_parts(query, expected):
    assert honeycomb.complexity(query) == expected


def test_complexity_agrees_with_canonical_form():
    query = {"filters": [ERRORS, ROOTS], "calculations": [COUNT]}
    assert honeycomb.complexity(query) == honeycomb.complexity(honeycomb.canonical(query)) == 3
