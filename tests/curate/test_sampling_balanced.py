"""Sample(balance=...): even shares across groups, or across clusters of a text field."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from curate import ClusterOptions, Sample
from curate.errors import CurateError
from curate.stages.sampling import balanced_counts


def grouped(sizes: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame([{"text": f"{g} row {i}", "group": g}
                         for g, n in sizes.items() for i in range(n)])


def test_small_groups_give_all_their_rows_and_the_rest_is_shared_evenly():
    df = grouped({"a": 60, "b": 30, "c": 6, "d": 4})
    res = Sample(n=40, balance="group").run(df)
    assert res.kept["group"].value_counts().to_dict() == {"a": 15, "b": 15, "c": 6, "d": 4}
    assert res.stats["by_group"] == {"a": 15, "b": 15, "c": 6, "d": 4}
    assert len(res.kept) + len(res.rejected) == len(df)
    assert set(res.rejected["_reason_code"]) == {"not_sampled"}


def test_a_uniform_sample_would_not_balance_the_same_table():
    df = grouped({"a": 60, "b": 30, "c": 6, "d": 4})
    counts = Sample(n=40).run(df).kept["group"].value_counts()
    assert counts["a"] > 15  # what balance= corrects


def test_rounding_leftovers_go_to_the_largest_groups():
    assert balanced_counts(np.array([5, 9, 5]), 7).tolist() == [2, 3, 2]
    assert balanced_counts(np.array([1, 2]), 10).tolist() == [1, 2]
    assert balanced_counts(np.array([4, 4, 4]), 0).tolist() == [0, 0, 0]


def test_the_draw_is_seeded():
    df = grouped({"a": 50, "b": 20})
    first = Sample(n=20, balance="group", seed=3).run(df).kept["_id"].tolist()
    assert first == Sample(n=20, balance="group", seed=3).run(df).kept["_id"].tolist()
    assert first != Sample(n=20, balance="group", seed=4).run(df).kept["_id"].tolist()


def test_bad_balance_is_a_clear_error():
    with pytest.raises(CurateError, match="balance must be a column name or ClusterOptions, got 3"):
        Sample(n=3, balance=3)
    with pytest.raises(CurateError, match="topic"):
        Sample(n=3, balance="topic").run(grouped({"a": 5}))


@pytest.mark.slow  # loads the embedding model
def test_balance_across_clusters_of_a_text_field_evens_out_planted_topics():
    from tests.clustering.planted import planted

    df = planted()
    df = pd.concat([df[df["topic"] == "baking"]] + [df[df["topic"] == t].head(8)
                                                    for t in ("football", "weather", "databases")],
                   ignore_index=True)  # 24 baking rows, 8 of each other topic
    res = Sample(n=24, balance=ClusterOptions("text", k=4)).run(df)
    assert res.kept["topic"].value_counts().to_dict() == {
        "baking": 6, "football": 6, "weather": 6, "databases": 6}
    assert sorted(res.stats["by_group"].values()) == [6, 6, 6, 6]
