"""MinHashDedup and ExactDedup distributed on Ray keep the same rows as locally: the same
kept, rejected and errored tables (``_dup_of``, ``_jaccard``, reasons) and the same counts,
with near-duplicates and repeated keys spread over many slices; and a pipeline run with the
Ray executor keeps the local run's rows. One local Ray (2 CPUs) serves the module."""
from __future__ import annotations

import os
import random

import numpy as np
import pandas as pd
import pytest
from executor_kit import canonical, ids

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow,  # starts Ray: make test runs it, make test-fast does not
              pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")]

from curate.testing.near_duplicates import make_corpus  # noqa: E402
from curate import ExactDedup, Filter, MinHashDedup, Pipeline  # noqa: E402
from curate.pipeline.executors.ray_executor import RayExecutor  # noqa: E402

SLICE = 97  # rows per slice: duplicates land in other slices than their kept row


@pytest.fixture(scope="module")
def ray_executor():
    print(f"load average before Ray: {os.getloadavg()}")
    executor = RayExecutor(num_cpus=2, object_store_memory=256 * 2**20, batch_rows=SLICE)
    executor.start()
    yield executor
    executor.close()


def table(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """Near-duplicate texts (one-word edits, reorderings), exact repeats, empty texts, a
    cell that is not text, keys with missing values, JSON written two ways, a column of
    text and dicts."""
    rng = random.Random(seed)
    texts, _ = make_corpus(n, seed)
    for i in rng.sample(range(n), n // 10):
        texts[i] = texts[rng.randrange(i + 1)]  # an exact repeat of an earlier row (or itself)
    for i in rng.sample(range(n), 6):
        texts[i] = ""
    cells = list(texts)
    cells[rng.randrange(n)] = 42  # errored by MinHashDedup, compared by ExactDedup
    topic = [rng.choice(["a", "b", "c", None]) for _ in range(n)]
    query = [rng.choice(['{"x": 1, "y": 2}', '{"y": 2, "x": 1}', '[1, 2]', "plain", None])
             for _ in range(n)]
    # text in every slice, dicts only in the first: compared alike across slices
    meta = [rng.choice([{"a": 1}, {"a": 2}, "x"]) if i < SLICE // 2 else rng.choice("xyz")
            for i in range(n)]
    return pd.DataFrame({"text": cells, "topic": topic, "query": query, "meta": meta,
                         "label": [f"L{rng.randrange(40)}" for _ in range(n)]})


STAGES = {
    "minhash_word": lambda: MinHashDedup("text"),
    "minhash_char": lambda: MinHashDedup("text", shingles="char", threshold=0.7),
    "exact_one_key": lambda: ExactDedup("label"),
    "exact_many_keys": lambda: ExactDedup([("topic", "label"), "query", ("label", "text")],
                                          json_fields=["query"]),
    "exact_normalized": lambda: ExactDedup("text", normalize_text=True),
    "exact_mixed_types": lambda: ExactDedup(["meta", ("meta", "label")]),
}


@pytest.mark.parametrize("name", list(STAGES))
def test_distributed_pass_gives_the_local_tables_and_counts(ray_executor, name):
    df = table()
    local = STAGES[name]().run(df)
    on_ray = ray_executor.run_stage(STAGES[name](), df)
    assert len(local.rejected) > 20, "the table must exercise the pass"
    for part in ("kept", "rejected", "errored"):
        mine, theirs = getattr(on_ray, part), getattr(local, part)
        assert ids(mine) == ids(theirs), part  # the same rows in the same order
        assert canonical(mine) == canonical(theirs), part
    info = on_ray.stats.pop("executor")
    assert info["distributed"] and info["batches"] == int(np.ceil(len(df) / SLICE))
    assert {k: v for k, v in on_ray.stats.items() if k != "seconds"} == \
        {k: v for k, v in local.stats.items() if k != "seconds"}


def test_a_duplicate_in_the_last_slice_of_a_row_in_the_first_is_found(ray_executor):
    first = "show the p99 latency of checkout by region over the last hour please"
    texts = [first] + [f"unrelated text number {i} about {i * 7} things" for i in range(300)]
    texts.append(first.replace("hour", "day"))
    df = pd.DataFrame({"text": texts})
    result = ray_executor.run_stage(MinHashDedup("text", threshold=0.8), df)
    assert result.rejected["text"].tolist() == [texts[-1]]
    assert result.rejected["_dup_of"].tolist() == [result.kept["_id"].iloc[0]]
    assert result.stats["executor"]["batches"] == 4


def test_a_pipeline_on_ray_keeps_the_local_runs_rows(ray_executor, tmp_path):
    pipeline = Pipeline(source=table(800, seed=1), name="dedups", stages=[
        Filter(lambda row: isinstance(row["text"], str), requires=["text"], name="text_only"),
        ExactDedup([("topic", "label"), "query"], json_fields=["query"]),
        MinHashDedup("text", threshold=0.7)])
    local = pipeline.run(tmp_path / "local", progress=False)
    on_ray = pipeline.run(tmp_path / "ray", progress=False, executor=ray_executor)
    assert len(local.kept) and ids(on_ray.kept) == ids(local.kept)
    assert canonical(on_ray.rejected) == canonical(local.rejected)
    where = {s["stage"]: s.get("executor") for s in on_ray.manifest["stages"]}
    assert where["exact_dedup"]["distributed"] and where["minhash_dedup"]["distributed"]


def test_a_table_whose_every_row_errors_ends_errored_as_locally(ray_executor):
    df = pd.DataFrame({"text": [1, 2.5, None]})
    local = MinHashDedup("text", max_errored=1.0).run(df)
    on_ray = ray_executor.run_stage(MinHashDedup("text", max_errored=1.0), df)
    assert len(on_ray.errored) == 3 and not len(on_ray.kept)
    assert canonical(on_ray.errored) == canonical(local.errored)
