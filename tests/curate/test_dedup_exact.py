import numpy as np
import pandas as pd
import pytest

from curate import StageError
from curate.stages.dedup_exact import ExactDedup
from curate.core.table import assign_ids


def test_single_field_keeps_first_and_names_the_kept_row():
    df = pd.DataFrame({"nlq": ["a", "b", "a", "c", "b"], "_id": ["r1", "r2", "r3", "r4", "r5"]})
    res = ExactDedup("nlq").run(df)
    assert res.kept["_id"].tolist() == ["r1", "r2", "r4"]
    assert res.rejected["_id"].tolist() == ["r3", "r5"]
    assert res.rejected["_dup_of"].tolist() == ["r1", "r2"]
    assert res.rejected["_reason_code"].tolist() == ["duplicate_nlq", "duplicate_nlq"]
    assert res.rejected["_reason"].tolist() == ["same nlq as kept row r1",
                                                "same nlq as kept row r2"]
    assert "_dup_of" not in res.kept.columns  # written on rejected rows only
    assert res.stats["duplicates_by_key"] == {"nlq": 2}


def test_key_pairs_rule_drops_a_row_when_any_pair_repeats():
    df = pd.DataFrame({
        "_id": ["k1", "d_nc", "d_cq", "d_nq", "k2"],
        "nlq": ["count errors", "count errors", "other question", "count errors", "new"],
        "columns": ["status", "status", "status", "host", "status"],
        "query": ["Q1", "Q2", "Q1", "Q1", "Q9"],
    })
    stage = ExactDedup([("nlq", "columns"), ("columns", "query"), ("nlq", "query")])
    res = stage.run(df)
    assert res.kept["_id"].tolist() == ["k1", "k2"]
    codes = dict(zip(res.rejected["_id"], res.rejected["_reason_code"]))
    assert codes == {"d_nc": "duplicate_nlq+columns", "d_cq": "duplicate_columns+query",
                     "d_nq": "duplicate_nlq+query"}
    assert set(res.rejected["_dup_of"]) == {"k1"}
    assert res.stats["duplicates_by_key"] == {"nlq+columns": 1, "columns+query": 1,
                                              "nlq+query": 1}


def test_rows_are_compared_with_kept_rows_only():
    # row 2 is dropped (same nlq as row 1); row 3 repeats row 2's query only, and row 2 was
    # not kept, so row 3 stays: dup_of always names a kept row.
    df = pd.DataFrame({"_id": ["r1", "r2", "r3"], "nlq": ["a", "a", "b"],
                       "query": ["Q1", "Q2", "Q2"]})
    res = ExactDedup(["nlq", "query"]).run(df)
    assert res.kept["_id"].tolist() == ["r1", "r3"]
    assert res.rejected["_reason_code"].tolist() == ["duplicate_nlq"]


def test_a_list_of_names_is_several_keys_and_a_tuple_is_one():
    df = pd.DataFrame({"a": [1, 1, 2, 3], "b": [1, 2, 1, 3]})
    several = ExactDedup(["a", "b"]).run(df)
    assert several.kept["a"].tolist() == [1, 3]
    assert several.rejected["_reason_code"].tolist() == ["duplicate_a", "duplicate_b"]
    assert len(ExactDedup(("a", "b"))(df)) == 4


def test_json_values_compare_with_sorted_keys():
    df = pd.DataFrame({"query": [{"calculations": [{"op": "COUNT"}], "time_range": 7200},
                                 {"time_range": 7200, "calculations": [{"op": "COUNT"}]},
                                 '{"time_range": 7200, "calculations": [{"op": "COUNT"}]}',
                                 '{"time_range":7200,"calculations":[{"op":"COUNT"}]}']})
    plain = ExactDedup("query").run(df)
    assert len(plain.kept) == 3  # the two strings differ in spacing, not parsed
    parsed = ExactDedup("query", json_fields="query").run(df)
    assert len(parsed.kept) == 1
    assert parsed.rejected["_dup_of"].nunique() == 1


def test_unordered_lists_compare_as_multisets():
    df = pd.DataFrame({"columns": [["duration_ms", "status"], ["status", "duration_ms"],
                                   ["status", "status", "duration_ms"],
                                   np.array(["duration_ms", "status"])]})
    assert len(ExactDedup("columns")(df)) == 3  # order matters; ndarray equals the list
    kept = ExactDedup("columns", unordered=("columns",))(df)
    assert kept["columns"].map(list).tolist() == [["duration_ms", "status"],
                                                   ["status", "status", "duration_ms"]]


def test_normalize_text_strips_collapses_and_casefolds():
    df = pd.DataFrame({"nlq": ["Count errors", "  count   ERRORS ", "count errors!"]})
    assert len(ExactDedup("nlq")(df)) == 3
    kept = ExactDedup("nlq", normalize_text=True)(df)
    assert kept["nlq"].tolist() == ["Count errors", "count errors!"]


def test_invariant_rows_in_equal_kept_plus_rejected():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"nlq": rng.integers(0, 20, 300).astype(str),
                       "columns": rng.integers(0, 5, 300).astype(str),
                       "query": rng.integers(0, 30, 300).astype(str)})
    res = ExactDedup([("nlq", "columns"), ("columns", "query"), ("nlq", "query")]).run(df)
    assert len(res.kept) + len(res.rejected) == 300
    assert len(res.rejected) > 0
    out = res.kept["_id"].tolist() + res.rejected["_id"].tolist()
    assert sorted(out) == sorted(assign_ids(df)["_id"])
    assert set(res.rejected["_dup_of"]) <= set(res.kept["_id"])
    assert res.stats["rows_in"] == 300 and res.stats["rejected"] == len(res.rejected)


def test_bad_parameters_name_the_problem():
    with pytest.raises(StageError, match="unordered names 'cols'"):
        ExactDedup("nlq", unordered=("cols",))
    with pytest.raises(StageError, match="non-empty keys"):
        ExactDedup([()])
    with pytest.raises(StageError, match="field 'query'"):
        ExactDedup(["nlq", "query"]).run(pd.DataFrame({"nlq": ["a"]}))


def test_a_missing_key_value_matches_nothing_so_rows_without_the_field_are_kept():
    """A missing value is no evidence of a repeat: rows that lack a key field are not
    duplicates of each other (and the export errors them if it needs the field)."""
    df = pd.DataFrame({"_id": ["a1", "none1", "none2", "a2", "nan1", "nan2"],
                       "nlq": ["a", None, None, "a", None, None],
                       "query": ["Q", "Q", "Q", "Q2", float("nan"), float("nan")]})
    res = ExactDedup("nlq").run(df)
    assert res.kept["_id"].tolist() == ["a1", "none1", "none2", "nan1", "nan2"]
    assert res.rejected["_id"].tolist() == ["a2"]
    pairs = ExactDedup([("nlq", "query"), ("query",)]).run(df)
    # (nlq, query) never matches where nlq is missing; query alone still does
    assert pairs.kept["_id"].tolist() == ["a1", "a2", "nan1", "nan2"]
    assert dict(zip(pairs.rejected["_id"], pairs.rejected["_reason_code"])) == {
        "none1": "duplicate_query", "none2": "duplicate_query"}
