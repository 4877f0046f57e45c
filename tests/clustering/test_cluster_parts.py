"""The parts of clustering that need no model: vectors in, labels and names out."""
from __future__ import annotations

import numpy as np
import pytest

from curate.clustering import cluster_table, cluster_vectors, distinctive_words, project_2d
from curate.errors import CurateError


def blobs(sizes=(30, 20, 10), dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[: len(sizes)] * 5
    x = np.concatenate([c + rng.normal(0, 0.3, (n, dim)) for c, n in zip(centres, sizes)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return x.astype(np.float32), truth


def test_ids_are_numbered_by_size_largest_first():
    x, truth = blobs()
    labels = cluster_vectors(x, k=3)
    assert (labels == truth).all()  # sizes 30, 20, 10 become ids 0, 1, 2


def test_k_is_chosen_by_silhouette_when_not_given():
    x, truth = blobs((25, 25, 25, 25))
    assert len(set(cluster_vectors(x))) == 4


def test_hdbscan_marks_a_far_lone_row_as_noise():
    x, _ = blobs((30, 30))
    x = np.vstack([x, np.full((1, x.shape[1]), 40.0)])
    labels = cluster_vectors(x, "hdbscan", min_cluster_size=5)
    assert labels[-1] == -1 and set(labels[:-1]) == {0, 1}


def test_c_tf_idf_prefers_words_of_one_cluster_over_words_in_all():
    texts = ["latency by service", "p99 latency by route", "latency heatmap by host",
             "errors by service", "count errors by route", "errors per host"]
    named = distinctive_words(texts, np.array([0, 0, 0, 1, 1, 1]), top=1)
    assert named == {0: ["latency"], 1: ["errors"]}
    table = cluster_table(texts, np.array([0, 0, 0, 1, 1, -1]), words=1)
    assert table.to_dict("records") == [
        {"cluster": 0, "name": "latency", "words": ["latency"], "size": 3},
        {"cluster": 1, "name": "errors", "words": ["errors"], "size": 2},
        {"cluster": -1, "name": "(no cluster)", "words": [], "size": 1}]


def test_bad_method_or_k_is_one_clear_error():
    x, _ = blobs()
    with pytest.raises(CurateError, match="method must be one of kmeans, hdbscan, got 'dbscan'"):
        cluster_vectors(x, "dbscan")
    with pytest.raises(CurateError, match="k must be a positive int, got 0"):
        cluster_vectors(x, k=0)


def test_projection_keeps_the_blobs_apart():
    x, truth = blobs((20, 20))
    xy = project_2d(x)
    assert xy.shape == (40, 2)
    assert abs(xy[truth == 0, 0].mean() - xy[truth == 1, 0].mean()) > 3
