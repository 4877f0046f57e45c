import numpy as np
import pandas as pd
import pytest

from curate import StageError
from curate.stages.dedup_embedding import EmbeddingDedup, greedy_dedup, load_model
from curate.core.table import assign_ids


def naive(x, t):
    """Row by row: compare with every kept row; reject when the best cosine exceeds t."""
    kept, keep = [], np.ones(len(x), dtype=bool)
    dup, cos = np.full(len(x), -1), np.full(len(x), np.nan)
    for i in range(len(x)):
        if kept:
            sims = x[kept] @ x[i]
            j = int(np.argmax(sims))
            if sims[j] > t:
                keep[i], dup[i], cos[i] = False, kept[j], sims[j]
                continue
        kept.append(i)
    return keep, dup, cos


def clustered(n_base=150, n_near=450, dim=24, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_base, dim))
    near = base[rng.integers(0, n_base, n_near)] + rng.normal(scale=noise, size=(n_near, dim))
    x = np.concatenate([base, near])[rng.permutation(n_base + n_near)].astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_path_equals_the_naive_loop():
    x = clustered()
    for t in (0.8, 0.9, 0.97):
        keep0, dup0, cos0 = naive(x, t)
        assert 0 < (~keep0).sum() < len(x) - 150
        for block in (2, 37, 1024):
            keep, dup, cos = greedy_dedup(x, t, "exact", block)
            assert (keep == keep0).all(), (t, block)
            assert (dup == dup0).all(), (t, block)
            np.testing.assert_allclose(cos[~keep], cos0[~keep0], atol=1e-5)


def test_stage_on_precomputed_embeddings_matches_the_naive_loop():
    x = clustered(seed=1)
    df = pd.DataFrame({"vec": list(x * 3.0), "_id": [f"r{i}" for i in range(len(x))]})
    res = EmbeddingDedup(embeddings_field="vec", threshold=0.9).run(df)  # vectors normalised
    keep0, dup0, cos0 = naive(x, 0.9)
    assert res.kept["_id"].tolist() == [f"r{i}" for i in np.flatnonzero(keep0)]
    assert res.rejected["_dup_of"].tolist() == [f"r{j}" for j in dup0[~keep0]]
    np.testing.assert_allclose(res.rejected["_cosine"], cos0[~keep0], atol=1e-5)
    assert set(res.rejected["_reason_code"]) == {"near_duplicate_embedding"}
    assert res.stats["index"] == "exact"
    assert len(res.kept) + len(res.rejected) == len(x)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_only_reject_true_near_duplicates(kind):
    x = clustered(n_base=400, n_near=1600, dim=32, noise=0.2, seed=2)
    keep0 = naive(x, 0.9)[0]
    keep, dup, cos = greedy_dedup(x, 0.9, kind, block=128)
    rejected = np.flatnonzero(~keep)
    assert (dup[rejected] < rejected).all() and keep[dup[rejected]].all()
    true_cos = np.einsum("ij,ij->i", x[rejected], x[dup[rejected]])
    assert (true_cos > 0.9).all()
    np.testing.assert_allclose(cos[rejected], true_cos, atol=1e-5)
    assert (~keep).sum() >= 0.95 * (~keep0).sum()  # the index finds (nearly) all of them


def test_auto_switches_to_the_approximate_index_above_exact_below():
    x = clustered(seed=3)
    df = pd.DataFrame({"vec": list(x)})
    assert EmbeddingDedup(embeddings_field="vec", exact_below=100).run(df).stats["index"] == "ivf"
    assert EmbeddingDedup(embeddings_field="vec").run(df).stats["index"] == "exact"


TEXTS = ["Count errors by service name",
         "What is the average duration of requests to /api/login?",
         "Show the slowest endpoints by p99 latency",
         "How many users signed up last week?",
         "Which hosts have the highest CPU usage?",
         "List traces with errors from the checkout service",
         "What is the capital of France?",
         "Bake the bread at 220 degrees for forty minutes.",
         # near-duplicates of rows 0-5
         "count errors by service name.",
         "What is the mean duration of requests to /api/login?",
         "Show the slowest endpoints by P99 latency!",
         "How many users signed up in the last week?",
         "Which hosts have the highest cpu usage",
         "List the traces with errors from the checkout service",
         # paraphrases and look-alikes that are not near-duplicates
         "How many people registered in the past week?",
         "Which endpoints have the highest p99 latency?",
         "Count errors by host name",
         "The cat sat on the warm windowsill all afternoon.",
         "Compare memory usage between version 1.2 and 1.3",
         "Plot request rate per region over the last day"]


@pytest.mark.slow
def test_real_model_rejects_near_duplicates_and_keeps_paraphrases():
    df = pd.DataFrame({"nlq": TEXTS, "_id": [f"t{i}" for i in range(len(TEXTS))]})
    res = EmbeddingDedup("nlq", batch_size=8).run(df)
    assert res.rejected["_id"].tolist() == [f"t{i}" for i in range(8, 14)]
    assert res.rejected["_dup_of"].tolist() == [f"t{i}" for i in range(0, 6)]
    assert (res.rejected["_cosine"] > 0.95).all()
    assert res.rejected["_reason"].iloc[0].startswith("cosine 0.9")
    assert res.rejected["_reason"].iloc[0].endswith("> 0.95 vs t0")
    assert len(res.kept) == len(TEXTS) - 6
    assert load_model() is load_model()  # cached per process
    direct = load_model().encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(EmbeddingDedup("nlq").embed(df), direct, atol=1e-5)


def test_bad_input_is_a_stage_error():
    with pytest.raises(StageError, match="index must be one of"):
        EmbeddingDedup("q", index="annoy")
    with pytest.raises(StageError, match="threshold"):
        EmbeddingDedup("q", threshold=2)
    with pytest.raises(StageError, match="text field to embed or an embeddings_field"):
        EmbeddingDedup()
    ragged = pd.DataFrame({"v": [[1.0, 0.0], [1.0, 0.0, 0.0]]})
    with pytest.raises(StageError, match="field 'v'.*equal length"):
        EmbeddingDedup(embeddings_field="v").run(ragged)
    res = EmbeddingDedup("q").run(pd.DataFrame({"q": ["a", np.nan, 7, "b"]}, dtype=object))
    assert res.errored["_reason_code"].tolist() == ["missing_field", "wrong_type"]
    assert res.errored["_source"].tolist() == ["<DataFrame>:2", "<DataFrame>:3"]
    assert sorted(res.kept["q"]) == ["a", "b"]


def test_empty_table_and_invariant():
    empty = EmbeddingDedup("q").run(pd.DataFrame({"q": pd.Series([], dtype=object)}))
    assert len(empty.kept) == 0 and len(empty.rejected) == 0
    x = clustered(seed=4)
    df = pd.DataFrame({"vec": list(x)})
    res = EmbeddingDedup(embeddings_field="vec", threshold=0.85).run(df)
    out = res.kept["_id"].tolist() + res.rejected["_id"].tolist()
    assert sorted(out) == sorted(assign_ids(df)["_id"])
    assert len(res.rejected) > 0 and set(res.rejected["_dup_of"]) <= set(res.kept["_id"])


@pytest.mark.slow
def test_a_huge_row_is_cut_before_tokenising_and_normal_rows_embed_alike(monkeypatch):
    model = load_model()
    long_row = " ".join(f"{TEXTS[i % len(TEXTS)]} (part {i})" for i in range(1500))  # ~70k chars
    rows = TEXTS[:6] + [long_row]
    direct = model.encode(rows, normalize_embeddings=True)  # the model's own reading

    handed = []
    preprocess = model.preprocess

    def spy(inputs, *args, **kwargs):  # what encode() gives the tokenizer
        handed.extend(len(text) for text in inputs)
        return preprocess(inputs, *args, **kwargs)

    monkeypatch.setattr(model, "preprocess", spy)
    stage = EmbeddingDedup("nlq", batch_size=8)
    np.testing.assert_allclose(stage.embed(pd.DataFrame({"nlq": rows})), direct, atol=1e-5)
    assert max(handed) < len(long_row)  # the long row was cut, its vector unchanged

    handed.clear()
    huge = "error rate by host " * (20 * 2**20 // 19)  # one 20 MB row
    res = stage.run(pd.DataFrame({"nlq": TEXTS[:3] + [huge]}))
    assert len(res.kept) == 4 and len(huge) > 20_000_000
    limit = model.max_seq_length * 32
    assert sorted(handed)[-1] == limit and sum(handed) < 2 * limit
