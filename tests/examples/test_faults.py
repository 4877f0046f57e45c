"""The fault injector: every fault is of its kind, at the configured rate, labelled, seeded."""
import json
from pathlib import Path

import pandas as pd
import pytest

from assertions.honeycomb import canonical, check
from examples.honeycomb.column_swap import column_swaps
from examples.honeycomb.faults import (CHECKER_DETECTABLE, DEFAULT_RATES, KINDS, NEAR_DUPLICATE,
                                       WRONG_BUT_VALID, inject_faults)

SEEDS = Path(__file__).resolve().parents[2] / "examples/honeycomb/data/seeds.jsonl"
RULE_OF = {"truncated_json": ("query_not_json",),
           "unknown_column": ("calc_column_unknown", "filter_column_unknown",
                              "breakdown_column_unknown", "order_column_unknown",
                              "having_column_unknown"),
           "unknown_key": ("query_key_unknown", "calc_key_unknown", "filter_key_unknown")}


@pytest.fixture(scope="module")
def table():
    seeds = [json.loads(line) for line in SEEDS.read_text().splitlines() if line.strip()]
    return pd.DataFrame(seeds + column_swaps(seeds, n=2, seed=0))


@pytest.fixture(scope="module")
def faulted(table):
    rates = {kind: 0.06 for kind in KINDS}
    return inject_faults(table, rates, seed=3, eligible=table["swap"].notna()), rates


def test_each_kind_comes_out_at_its_rate_of_the_eligible_rows_and_seeds_stay_clean(table, faulted):
    out, rates = faulted
    eligible = int(table["swap"].notna().sum())
    counts = out["fault"].value_counts().to_dict()
    assert counts == {kind: round(rate * eligible) for kind, rate in rates.items()}
    assert len(out) == len(table) + counts[NEAR_DUPLICATE]
    seeds = table["swap"].isna().to_numpy()
    assert out["fault"].iloc[: len(table)][seeds].isna().all()


def test_clean_rows_are_unchanged_and_faulted_rows_keep_their_place_and_question(table, faulted):
    out, _ = faulted
    head = out.iloc[: len(table)]
    clean = head["fault"].isna().to_numpy()
    assert head[clean]["query"].tolist() == table[clean]["query"].tolist()
    assert head["nlq"].tolist() == table["nlq"].tolist()
    assert head["columns"].tolist() == table["columns"].tolist()


def test_every_checker_detectable_fault_fails_the_checker_with_its_own_rule(table, faulted):
    out, _ = faulted
    for kind in CHECKER_DETECTABLE:
        rows = out[out["fault"] == kind]
        assert len(rows)
        for query, columns in zip(rows["query"], rows["columns"]):
            rules = {f.rule for f in check(query, columns)}
            assert rules & set(RULE_OF[kind]), (kind, query, rules)
    assert all(isinstance(q, str) for q in out.loc[out["fault"] == "truncated_json", "query"])


def test_every_wrong_but_valid_fault_passes_the_checker_and_changes_the_query(table, faulted):
    out, _ = faulted
    for kind in WRONG_BUT_VALID:
        rows = out.iloc[: len(table)][out["fault"].iloc[: len(table)] == kind]
        assert len(rows)
        for position, row in rows.iterrows():
            assert check(row["query"], row["columns"]) == [], (kind, row["query"])
            assert canonical(row["query"]) != canonical(table.loc[position, "query"])


def test_each_wrong_but_valid_kind_changes_what_it_says(table, faulted):
    out, _ = faulted
    for position, row in out.iloc[: len(table)].iterrows():
        before, after = table.loc[position, "query"], row["query"]
        if row["fault"] == "dropped_filter":
            assert len(after.get("filters", [])) == len(before["filters"]) - 1
        elif row["fault"] == "changed_time_window":
            assert after["time_range"] != before.get("time_range", 7200)
            assert {k: v for k, v in after.items() if k != "time_range"} == \
                {k: v for k, v in before.items() if k != "time_range"}
        elif row["fault"] == "changed_breakdown":
            assert after["breakdowns"] != before.get("breakdowns", [])
            assert after["calculations"] == before["calculations"]
        elif row["fault"] == "changed_calculation":
            assert after["calculations"] != before["calculations"]
            assert after.get("filters") == before.get("filters")


def test_a_flood_is_light_rewordings_and_copies_of_a_few_clean_rows(table, faulted):
    out, _ = faulted
    flood = out.iloc[len(table):]
    assert (flood["fault"] == NEAR_DUPLICATE).all()
    keys = {(json.dumps(q, sort_keys=True), tuple(c)) for q, c in zip(flood["query"], flood["columns"])}
    assert len(keys) <= 3
    sources = out.iloc[: len(table)]
    for nlq, query in zip(flood["nlq"], flood["query"]):
        source = sources[sources["query"].map(lambda q: q == query)]
        assert source["fault"].isna().all() and len(source)
        words = set(source["nlq"].iloc[0].lower().strip("?").split())
        assert words <= set(nlq.lower().strip("?").split())
    assert (flood["nlq"].isin(sources["nlq"])).any()  # plain copies are part of it


def test_the_same_seed_gives_the_same_table_and_another_seed_another(table):
    eligible = table["swap"].notna()
    one = inject_faults(table, seed=1, eligible=eligible)
    again = inject_faults(table, seed=1, eligible=eligible)
    other = inject_faults(table, seed=2, eligible=eligible)
    assert one.to_json() == again.to_json()
    assert one["fault"].tolist() != other["fault"].tolist()
    assert one["fault"].value_counts().to_dict() == other["fault"].value_counts().to_dict()
    assert set(DEFAULT_RATES) == set(KINDS)


def test_rates_the_rows_cannot_reach_and_unknown_kinds_are_refused(table):
    rows = table.head(20)
    with pytest.raises(ValueError, match="unknown fault kind"):
        inject_faults(rows, {"typo": 0.1})
    with pytest.raises(ValueError, match="only 20 rows are eligible"):
        inject_faults(rows, {"dropped_filter": 0.6, "unknown_key": 0.6})
    no_filters = rows.assign(query=[{"calculations": [{"op": "COUNT"}]}] * len(rows))
    with pytest.raises(ValueError, match="dropped_filter: only 0 of the 20"):
        inject_faults(no_filters, {"dropped_filter": 0.1})
