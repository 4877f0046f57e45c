"""The one normal form: which queries are the same for the checker's canonical form, exact
match and atom scoring alike, and the atoms a query sets."""

import pytest

from assertions import honeycomb
from assertions.honeycomb_normal import atoms, normalize, number

COUNT = {"op": "COUNT"}
P99 = {"op": "P99", "column": "duration_ms"}
ROOTS = {"column": "trace.parent_id", "op": "does-not-exist"}
ERRORS = {"column": "error", "op": "=", "value": True}
STATUS = {"column": "http.status_code", "op": "=", "value": 404}
BY_ROUTE = {"breakdowns": ["http.route"], "calculations": [COUNT]}

# (first, second, same canonical text (exact match), same atoms (scoring))
PAIRS = {
    "numeric text is a number": ({"filters": [{**STATUS, "value": "404"}]}, {"filters": [STATUS]}, True, True),
    "an integral float is an integer": (
        {"calculations": [COUNT], "havings": [{"calculate_op": "COUNT", "op": ">", "value": 500.0}], "limit": 10.0},
        {"calculations": [COUNT], "havings": [{"calculate_op": "COUNT", "op": ">", "value": 500}], "limit": 10},
        True, True),
    "decimal text is a float": ({"filters": [{"column": "v", "op": "=", "value": "1.2"}]},
                                {"filters": [{"column": "v", "op": "=", "value": 1.2}]}, True, True),
    "no calculation means COUNT": ({"filters": [ROOTS]}, {"filters": [ROOTS], "calculations": [COUNT]}, True, True),
    "a time range alone counts": ({"time_range": 300}, {"calculations": [COUNT], "time_range": 300}, True, True),
    "exists takes no value": ({"filters": [{"column": "error", "op": "exists", "value": ""}]},
                              {"filters": [{"column": "error", "op": "exists"}]}, True, True),
    "in values are a set": ({"filters": [{"column": "m", "op": "in", "value": ["GET", "POST", "GET"]}]},
                            {"filters": [{"column": "m", "op": "in", "value": ["POST", "GET"]}]}, True, True),
    "repeats mean nothing": ({**BY_ROUTE, "breakdowns": ["http.route", "http.route"]}, BY_ROUTE, True, True),
    "start plus range is a window": (
        {"calculations": [COUNT], "start_time": 1700000000, "time_range": 3600},
        {"calculations": [COUNT], "start_time": 1700000000, "end_time": 1700003600}, True, True),
    "end alone runs back the default range": (
        {"calculations": [COUNT], "end_time": 1700007200},
        {"calculations": [COUNT], "start_time": 1700000000, "end_time": 1700007200}, True, True),
    "AND is the default combination": ({"filters": [ROOTS, ERRORS]},
                                       {"filters": [ERRORS, ROOTS], "filter_combination": "AND"}, True, True),
    "OR means nothing with one filter": ({"filters": [ROOTS], "filter_combination": "OR"}, {"filters": [ROOTS]},
                                         True, True),
    "the default window written out": ({**BY_ROUTE, "time_range": 7200}, BY_ROUTE, True, True),
    "Python repr and JSON": ("{'calculations': [{'op': 'COUNT', 'column': None}]}", '{"calculations": [{"op": "COUNT"}]}',
                             True, True),
    "orders keep their sequence": (
        {"calculations": [COUNT, P99], "orders": [{**P99, "order": "descending"}, {**COUNT, "order": "ascending"}]},
        {"calculations": [COUNT, P99], "orders": [{**COUNT, "order": "ascending"}, {**P99, "order": "descending"}]},
        False, True),
    "an order without direction is not ascending": (
        {**BY_ROUTE, "orders": [{"column": "http.route"}]},
        {**BY_ROUTE, "orders": [{"column": "http.route", "order": "ascending"}]}, False, False),
    "an order without direction is not descending": (
        {**BY_ROUTE, "orders": [{"column": "http.route"}]},
        {**BY_ROUTE, "orders": [{"column": "http.route", "order": "descending"}]}, False, False),
    "the empty query is not COUNT": ({}, {"calculations": [COUNT]}, False, False),
    "true as text is text": ({"filters": [{**ERRORS, "value": "true"}]}, {"filters": [ERRORS]}, False, False),
    "a leading zero keeps text": ({"filters": [{**STATUS, "value": "0404"}]}, {"filters": [STATUS]}, False, False),
    "an hour is not the default": ({**BY_ROUTE, "time_range": 3600}, BY_ROUTE, False, False),
    "OR is not AND": ({"filters": [ROOTS, ERRORS], "filter_combination": "OR"}, {"filters": [ROOTS, ERRORS]},
                      False, False),
    "= is not in": ({"filters": [{"column": "m", "op": "=", "value": "GET"}]},
                    {"filters": [{"column": "m", "op": "in", "value": ["GET"]}]}, False, False),
}


@pytest.mark.parametrize(("first", "second", "same_text", "same_atoms"), PAIRS.values(), ids=PAIRS.keys())
def test_canonical_form_and_atoms_agree_on_what_is_the_same_query(first, second, same_text, same_atoms):
    assert (honeycomb.canonical(first) == honeycomb.canonical(second)) is same_text
    assert (atoms(first) == atoms(second)) is same_atoms


def test_the_atoms_of_a_full_query():
    query = {
        "calculations": [COUNT, P99],
        "filters": [ROOTS, {**STATUS, "value": "404"}, {"column": "m", "op": "in", "value": ["b", "a"]}],
        "filter_combination": "OR",
        "breakdowns": ["http.route"],
        "orders": [{**P99, "order": "descending"}],
        "havings": [{"calculate_op": "COUNT", "op": ">", "value": 10.0}],
        "time_range": 86400, "granularity": 3600, "limit": 5,
    }
    assert atoms(query) == {
        ("calculation", "COUNT", None), ("calculation", "P99", "duration_ms"),
        ("filter", "trace.parent_id", "does-not-exist", None), ("filter", "http.status_code", "=", 404),
        ("filter", "m", "in", ("a", "b")), ("filter_combination", "OR"), ("breakdown", "http.route"),
        ("order", "P99", "duration_ms", "descending"), ("having", "COUNT", None, ">", 10),
        ("time", "relative", 86400), ("granularity", 3600), ("limit", 5),
    }
    assert honeycomb.complexity(query) == 12


def test_what_sets_no_atom():
    assert atoms({}) == atoms({"time_range": 7200, "filter_combination": "AND"}) == frozenset()
    # parts of the wrong shape and keys the language does not know set nothing (the checker reports them)
    assert atoms({"calculations": "COUNT", "filters": [1], "dataset": "x"}) == frozenset()
    assert atoms({"limit": 1000}) == {("calculation", "COUNT", None), ("limit", 1000)}


def test_number_reads_plain_decimals_only():
    assert [number(v) for v in ("404", "-3", "0", "2.50", 7.0, True, "1e3", " 5", "007", "x")] == \
        [404, -3, 0, 2.5, 7, True, "1e3", " 5", "007", "x"]
    assert number("9" * 5000) == "9" * 5000  # past what int() converts: compared as text


def test_normalize_leaves_the_input_alone_and_is_idempotent():
    query = {"filters": [{**STATUS, "value": "404"}, ROOTS], "breakdowns": ["b", "a"], "start_time": 1700000000}
    before = repr(query)
    once = normalize(query)
    assert repr(query) == before
    assert normalize(once) == once
    assert once == {"calculations": [COUNT], "filters": [STATUS, ROOTS], "filter_combination": "AND",
                    "breakdowns": ["a", "b"], "start_time": 1700000000, "end_time": 1700007200}
