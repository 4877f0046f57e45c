"""The generic core: failures, checkers and per-rule counts."""

import dataclasses
from collections import Counter

import pytest

from assertions import Checker, Failure, FailureCounter
from assertions import honeycomb


def short(text):
    if len(text) > 5:
        return [Failure("too_long", f"keep it under 6 characters, got {len(text)}")]
    return []


def no_digits(text):
    return [Failure("has_digit", f"remove the digit {char!r}") for char in text if char.isdigit()]


def silent(text):
    return None


def explodes(text):
    raise KeyError("boom")


def test_failure_is_a_frozen_value():
    failure = Failure("too_long", "keep it short")
    assert failure == Failure("too_long", "keep it short")
    assert str(failure) == "too_long: keep it short"
    with pytest.raises(dataclasses.FrozenInstanceError):
        failure.rule = "other"


def test_checker_returns_every_failure_of_every_rule_in_order():
    checker = Checker([short, no_digits, silent])
    assert checker.check("ab1c23") == [
        Failure("too_long", "keep it under 6 characters, got 6"),
        Failure("has_digit", "remove the digit '1'"),
        Failure("has_digit", "remove the digit '2'"),
        Failure("has_digit", "remove the digit '3'"),
    ]
    assert checker.is_valid("abc")
    assert not checker.is_valid("a1")


def test_checker_passes_context_to_rules():
    def within(text, allowed):
        return [Failure("not_allowed", f"{text!r} is not allowed") for _ in [1] if text not in allowed]

    checker = Checker([within])
    assert checker.is_valid("a", {"a", "b"})
    assert [failure.rule for failure in checker.check("c", {"a", "b"})] == ["not_allowed"]


def test_a_rule_that_raises_becomes_a_rule_error_and_others_still_run():
    failures = Checker([explodes, short]).check("toolong")
    assert [failure.rule for failure in failures] == ["rule_error", "too_long"]
    assert "explodes raised KeyError" in failures[0].message


def test_summarize_counts_outputs_per_rule_most_common_first():
    counts = Checker([short, no_digits]).summarize(["ok", "a1", "b22", "toolong", "long123"])
    assert counts == Counter({"has_digit": 3, "too_long": 2})
    assert list(counts) == ["has_digit", "too_long"]


def test_failure_counter_totals_rates_and_tie_order():
    counter = FailureCounter()
    counter.add([Failure("b_rule", "x"), Failure("b_rule", "y")])
    counter.add([Failure("a_rule", "x")])
    counter.add([])
    assert (counter.total, counter.valid) == (3, 1)
    assert list(counter.most_common().items()) == [("a_rule", 1), ("b_rule", 1)]
    assert counter.rate("b_rule") == pytest.approx(1 / 3)
    assert FailureCounter().rate("b_rule") == 0.0


def test_honeycomb_summarize_shows_which_assertions_fail_most():
    columns = ["duration_ms", "name"]
    rows = [
        ({"calculations": [{"op": "MAX"}]}, columns),
        ({"calculations": [{"op": "MAX"}, {"op": "MIN"}], "limit": 0}, columns),
        ("{'breakdowns': ['nope']}", columns),
        ("not json", columns),
        ({"calculations": [{"op": "COUNT"}]}, columns),
    ]
    counter = honeycomb.summarize(rows)
    assert counter.total == 5 and counter.valid == 1
    assert list(counter.most_common().items()) == [
        ("calc_column_missing", 2),
        ("breakdown_column_unknown", 1),
        ("limit_invalid", 1),
        ("query_not_json", 1),
    ]
