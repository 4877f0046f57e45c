"""A row-wise stage run batch by batch and combined equals one run over the whole table:
same rows in the same order with the same columns, same stats, same errored-share stop.
Row order is the stage contract's, so the batches' parts are concatenated in batch order."""
from __future__ import annotations

import pandas as pd
import pytest
from executor_kit import row_stages, rows, scripted_client

from curate import Filter, Judge, Stage, TooManyRowErrors
from curate.core.table import ID
from curate.pipeline.executors.batched import combine, merge_stats, run_batch, split

PARTS = ("kept", "rejected", "errored")


@pytest.fixture(scope="module")
def llm():
    return scripted_client()


def batched(stage, table, size):
    df = stage.prepare_input(table)
    return combine(stage, df, [run_batch(stage, b) for b in split(df, size)], 0.0)


def without_seconds(stats: dict) -> dict:
    return {k: v for k, v in stats.items() if k != "seconds"}


@pytest.mark.parametrize("index", range(11))
def test_every_row_stage_gives_the_same_result_in_batches(llm, index):
    stage = row_stages(llm)[index]
    table = rows(40)
    whole = stage.run(table)
    dropped_or_made = len(whole.rejected) + len(whole.errored) + whole.stats["rows_created"]
    assert len(whole.kept) and dropped_or_made, "a case that tests nothing"
    for size in (7, 13):
        result = batched(stage, table, size)
        for part in PARTS:  # dtypes aside: text after an empty group is object, not str
            pd.testing.assert_frame_equal(getattr(result, part), getattr(whole, part),
                                          check_dtype=False, obj=f"{stage.name} {part}")
        assert without_seconds(result.stats) == without_seconds(whole.stats)


def test_batches_may_arrive_in_any_order(llm):
    stage = row_stages(llm)[6]  # a judge that keeps the rows it cannot judge
    df = stage.prepare_input(rows(40))
    outcomes = [run_batch(stage, b) for b in split(df, 6)]
    result = combine(stage, df, outcomes[::-1], 0.0)
    assert result.kept[ID].tolist() == stage.run(df).kept[ID].tolist()
    assert result.kept["_judge_failure"].notna().sum() > 0


def test_the_errored_share_is_judged_on_the_whole_stage():
    def picky(row):
        if row["text"].startswith("bad"):
            raise ValueError("bad row")
        return True

    # 6 of 12 rows errored: 50%, not over max_errored; the first batch alone is 100%.
    table = pd.DataFrame({"text": ["bad"] * 6 + ["good"] * 6})
    stage = Filter(picky, max_errored=0.5)
    result = batched(stage, table, 3)
    assert len(result.errored) == 6 and len(result.kept) == 6
    # 7 of 12: the same one-line error as one run, with the combined errored rows.
    table.loc[6, "text"] = "bad"
    with pytest.raises(TooManyRowErrors) as local:
        stage.run(table)
    with pytest.raises(TooManyRowErrors) as spread:
        batched(stage, table, 3)
    assert str(spread.value) == str(local.value)
    assert spread.value.result.errored[ID].tolist() == local.value.result.errored[ID].tolist()


def test_a_batch_error_is_raised_as_the_same_one_line_error(llm):
    stage = Judge(llm, fields=["text"], keep=lambda verdict: verdict["missing"])
    with pytest.raises(Exception) as local:
        stage.run(rows(10).iloc[6:])
    with pytest.raises(type(local.value)) as spread:
        batched(stage, rows(10).iloc[6:], 2)
    assert str(spread.value) == str(local.value) and "\n" not in str(spread.value)


class Broken(Stage):
    """A row-wise stage with a bug: it raises on every batch."""

    def process(self, df):
        raise RuntimeError("broken on purpose")


def test_a_crashing_stage_keeps_its_own_error_in_a_batch():
    # a bug is not a row error: run_batch lets it through with its traceback; only the
    # Ray entry point turns it into one line
    pytest.importorskip("ray")
    from curate.pipeline.executors.ray_executor import run_on_worker

    batch = Broken().prepare_input(pd.DataFrame({"n": range(4)}))
    with pytest.raises(RuntimeError, match="broken on purpose"):
        run_batch(Broken(), batch)
    outcome = run_on_worker(Broken(), batch)
    assert outcome.error[1].startswith("stage 'broken' failed on a Ray worker: RuntimeError")


def test_stats_merge_sums_numbers_and_merges_counts():
    merged = merge_stats([{"derived": 2, "outcomes": {"good": 1}, "cost": 0.5, "index": "ivf",
                           "warnings": ["w"]},
                          {"derived": 3, "outcomes": {"good": 2, "bad": 1}, "cost": 0.25,
                           "index": "exact", "warnings": ["w", "v"]}])
    assert merged == {"derived": 5, "outcomes": {"good": 3, "bad": 1}, "cost": 0.75,
                      "index": "ivf", "warnings": ["w", "v"]}
