import pandas as pd
import pytest

from curate import AssertionFilter, ComplexityFilter, Filter, StageError


def rows():
    return pd.DataFrame({"q": ["count errors", "p99 latency by route", "x", "slow"],
                         "n": [2, 4, 1, 1]})


def short_check(q):
    fails = []
    if len(q) < 3:
        fails.append(("too_short", f"question {q!r} has fewer than 3 characters"))
    if " " not in q:
        fails.append(("one_word", "question is a single word"))
    return fails


def test_filter_reason_from_predicate():
    stage = Filter(lambda r: True if r["n"] > 1 else (False, f"n={r['n']} is too small"),
                   name="enough_parts")
    res = stage.run(rows())
    assert list(res.kept["q"]) == ["count errors", "p99 latency by route"]
    assert list(res.rejected["_reason"]) == ["n=1 is too small", "n=1 is too small"]
    assert set(res.rejected["_stage"]) == {"enough_parts"}


def test_complexity_filter_bounds_and_codes():
    res = ComplexityFilter(lambda q: len(q.split()), field="q", min_value=2, max_value=3).run(rows())
    assert list(res.kept["q"]) == ["count errors"]
    codes = dict(zip(res.rejected["q"], res.rejected["_reason_code"]))
    assert codes == {"p99 latency by route": "too_complex", "x": "too_simple", "slow": "too_simple"}
    assert "complexity 4 > 3" in res.rejected["_reason"].tolist()


def test_complexity_filter_needs_a_bound():
    with pytest.raises(StageError, match="min_value, max_value"):
        ComplexityFilter(len, field="q")


def test_assertion_filter_rules_messages_and_counts():
    res = AssertionFilter(short_check, check_fields=["q"]).run(rows())
    assert list(res.kept["q"]) == ["count errors", "p99 latency by route"]
    x = res.rejected.set_index("q").loc["x"]
    assert x["_reason_code"] == "assertion_too_short"
    assert x["_reason"] == ("too_short: question 'x' has fewer than 3 characters; "
                            "one_word: question is a single word")
    assert [f["rule"] for f in x["_failures"]] == ["too_short", "one_word"]
    assert res.stats["rule_failures"] == {"one_word": 2, "too_short": 1}
    assert "_failures" not in res.kept.columns


def test_assertion_filter_maps_keyword_fields_and_loads_by_reference():
    df = pd.DataFrame({"question": ["ab", "a b c"]})
    res = AssertionFilter("tests.curate.test_filters:short_check", check_fields={"q": "question"}).run(df)
    assert list(res.kept["question"]) == ["a b c"]


def test_crashing_checker_errors_the_row_instead_of_losing_it():
    def check(q):
        if q == "x":
            raise ValueError("boom")
        return []
    res = AssertionFilter(check, ["q"]).run(rows())
    assert len(res.errored) == 1 and res.errored["_reason_code"][0] == "check_raised"
    assert "ValueError: boom" in res.errored["_reason"][0]
    assert len(res.kept) + len(res.rejected) + len(res.errored) == 4


def test_unknown_checker_reference_names_the_stage():
    with pytest.raises(StageError, match="stage 'assertions'.*cannot import 'no_such_module'"):
        AssertionFilter("no_such_module:check", ["q"])
