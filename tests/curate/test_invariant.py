"""Rows in = kept + rejected + errored (+ replaced), for every deterministic stage."""
import numpy as np
import pandas as pd
import pytest

from assertions.honeycomb import check, complexity
from curate import (AssertionFilter, ComplexityFilter, Derive, EmbeddingDedup, ExactDedup, Filter,
                    MinHashDedup, RougeDedup, Sample)
from curate.core.table import assign_ids, canonical_json, domain_columns, row_dicts

COLUMNS = ["duration_ms", "service.name", "http.route"]
QUERIES = [{"calculations": [{"op": "COUNT"}]},
           {"calculations": [{"op": "P99", "column": "duration_ms"}], "breakdowns": ["http.route"]},
           {"calculations": [{"op": "MAX"}]},  # invalid: MAX needs a column
           {"calculations": [{"op": "COUNT"}]}]


def table():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        vec = rng.normal(size=8)
        rows.append({"nlq": f"how many requests per route {i % 5}", "columns": COLUMNS,
                     "query": QUERIES[i % 4], "vec": (vec / np.linalg.norm(vec)).tolist()})
    return pd.DataFrame(rows)


STAGES = [
    Filter(lambda r: "1" not in r["nlq"], name="no_ones"),
    ComplexityFilter(complexity, field="query", max_value=1),
    AssertionFilter(check),
    ExactDedup([("nlq", "columns"), ("columns", "query")], json_fields=("query",), unordered=("columns",)),
    RougeDedup("nlq", threshold=0.7),
    RougeDedup("nlq", threshold=0.7, tokenizer="unicode"),
    EmbeddingDedup(embeddings_field="vec", threshold=0.5),
    MinHashDedup("nlq", threshold=0.5),
    Sample(n=7, seed=1),
    Derive(lambda r: [{"nlq": r["nlq"] + "?"}], name="questions"),
]


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_no_row_is_lost(stage):
    df = table()
    res = stage.run(df)
    s = res.stats
    assert s["rows_in"] == len(df)
    assert s["rows_in"] + s["rows_created"] == s["kept"] + s["rejected"] + s["errored"] + s["replaced"]
    out_ids = set(res.kept["_id"]) | set(res.rejected["_id"]) | set(res.errored["_id"])
    assert set(res.kept["_id"]).isdisjoint(res.rejected["_id"])
    assert out_ids >= set(res.kept.loc[res.kept["_parent"].isna(), "_id"])
    assert list(stage.run(df).kept["_id"]) == list(res.kept["_id"])  # deterministic, stable ids
    if len(res.rejected):
        assert res.rejected["_reason"].map(bool).all() and (res.rejected["_stage"] == stage.name).all()
        assert res.rejected["_reason_code"].map(bool).all()


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_a_stage_never_changes_a_row_in_place_and_adds_only_what_it_declares(stage):
    """What the checkpoints rely on: a row that keeps its id keeps its input values."""
    df = table()
    res = stage.run(df)
    given = assign_ids(df)
    before = {i: canonical_json(r) for i, r in zip(given["_id"], row_dicts(given))}
    for part in (res.kept, res.rejected):
        for row_id, row in zip(part["_id"], row_dicts(part, domain_columns(df))):
            if row_id in before:
                assert canonical_json(row) == before[row_id], (stage.name, row_id)
        added = set(part.columns) - set(given.columns) - {"_stage", "_reason_code", "_reason",
                                                           "_field", "_source", "_origin"}
        assert added <= set(stage.added_columns()), (stage.name, added)
