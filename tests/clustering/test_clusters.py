"""clusters(): the shipped MiniLM for real, k-means and HDBSCAN, c-TF-IDF names, the cache."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from curate import ClusterOptions, clusters
from curate.errors import CurateError
from planted import WORDS, planted

pytestmark = pytest.mark.slow  # loads the embedding model


def test_kmeans_recovers_planted_topics_and_names_them_by_their_words():
    df = planted()
    found = clusters(df, "text")
    assert len(found.table) == 4  # k chosen by silhouette
    assert adjusted_rand_score(df["topic"], found.labels) == 1.0
    assert found.labels.index.equals(df.index) and found.xy.shape == (len(df), 2)
    for topic in ("baking", "football", "weather", "databases"):
        ids = set(found.labels[df["topic"] == topic])
        assert len(ids) == 1
        words = found.table.set_index("cluster").loc[ids.pop(), "words"]
        vocabulary = " ".join(WORDS[topic]).lower().split()
        assert len(words) == 3 and all(w in vocabulary for word in words for w in word.split()), words
    assert found.table["size"].tolist() == [24, 24, 24, 24]
    assert (found.names == found.labels.map(dict(zip(found.table.cluster, found.table.name)))).all()


def test_hdbscan_recovers_planted_topics_with_a_given_size():
    df = planted()
    found = clusters(df, ClusterOptions("text", method="hdbscan", min_cluster_size=8))
    clustered = found.labels != -1
    assert clustered.mean() > 0.8
    assert adjusted_rand_score(df["topic"][clustered], found.labels[clustered]) > 0.9


def test_the_cache_embeds_only_new_texts(tmp_path):
    df = planted()
    cache = tmp_path / "embeddings.sqlite"
    first = clusters(df, "text", k=4, cache=cache)
    assert first.embedded == df["text"].nunique()
    grown = pd.concat([df, pd.DataFrame({"text": ["is it sunny in Lisbon on friday"],
                                         "topic": ["weather"]})], ignore_index=True)
    second = clusters(grown, "text", k=4, cache=cache)
    assert second.embedded == 1
    np.testing.assert_allclose(second.vectors[:-1], first.vectors, atol=2e-3)
    assert adjusted_rand_score(second.labels[:-1], first.labels) == 1.0
    assert second.labels.iloc[-1] == second.labels[grown["topic"] == "weather"].iloc[0]


def test_a_missing_field_is_one_clear_error():
    with pytest.raises(CurateError, match="no column 'nlq'; columns: text, topic"):
        clusters(planted(4), "nlq")
