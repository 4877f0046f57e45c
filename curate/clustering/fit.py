"""Clustering unit vectors with scikit-learn, and a 2-D projection (PCA) to draw them.

k-means (``MiniBatchKMeans`` above ``MINIBATCH_ABOVE`` rows), k chosen by the silhouette score
(Rousseeuw 1987) on a sample when not given; or HDBSCAN (Campello et al. 2013), which finds
the number itself and leaves noise (``-1``), fitted on at most ``HDBSCAN_SAMPLE`` rows (the
rest take their nearest sampled neighbour's cluster).
"""
from __future__ import annotations

import numpy as np

from ..errors import CurateError

METHODS = ("kmeans", "hdbscan")
MINIBATCH_ABOVE = 20_000
CHOOSE_SAMPLE = 3_000  # rows the silhouette is measured on when k is chosen
HDBSCAN_SAMPLE = 10_000
NOISE = -1


def candidate_ks(n: int) -> list[int]:
    """The ks tried when none is given: 2 up to about sqrt(n/2), at most 30."""
    top = int(min(30, max(2, np.sqrt(n / 2))))
    return list(range(2, top + 1))


def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if len(x) > MINIBATCH_ABOVE:
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init=3)
    return model.fit_predict(x)


def choose_k(x: np.ndarray, seed: int = 0) -> int:
    """The k of best silhouette (cosine) among :func:`candidate_ks`, on a sample of rows."""
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    sample = x[rng.choice(len(x), size=min(len(x), CHOOSE_SAMPLE), replace=False)]
    best, best_k = -2.0, 2
    for k in candidate_ks(len(x)):
        if k >= len(sample):
            break
        labels = _kmeans(sample, k, seed)
        if len(set(labels)) < 2:
            continue
        score = silhouette_score(sample, labels, metric="cosine")
        if score > best:
            best, best_k = score, k
    return best_k


def _hdbscan(x: np.ndarray, min_size: int | None, seed: int) -> np.ndarray:
    from sklearn.cluster import HDBSCAN
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(x), size=min(len(x), HDBSCAN_SAMPLE), replace=False))
    size = min_size or max(3, len(picked) // 100)
    labels = HDBSCAN(min_cluster_size=size, copy=True).fit_predict(x[picked])
    if len(picked) == len(x):
        return labels
    nearest = NearestNeighbors(n_neighbors=1).fit(x[picked]).kneighbors(x, return_distance=False)
    return labels[nearest[:, 0]]


def cluster_vectors(x: np.ndarray, method: str = "kmeans", k: int | None = None,
                    min_cluster_size: int | None = None, seed: int = 0) -> np.ndarray:
    """A cluster id per row (``-1``: HDBSCAN noise), ids numbered by size, largest first."""
    if method not in METHODS:
        raise CurateError(f"clusters: method must be one of {', '.join(METHODS)}, got {method!r}")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise CurateError(f"clusters: k must be a positive int, got {k!r}")
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if method == "hdbscan":
        labels = _hdbscan(x, min_cluster_size, seed) if n > 2 else np.full(n, NOISE)
    else:
        k = min(k or (choose_k(x, seed) if n > 3 else 1), n)
        labels = _kmeans(x, k, seed) if k > 1 else np.zeros(n, dtype=np.int64)
    return _by_size(np.asarray(labels, dtype=np.int64))


def _by_size(labels: np.ndarray) -> np.ndarray:
    ids, counts = np.unique(labels[labels != NOISE], return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    mapping = {int(old): new for new, old in enumerate(order)}
    return np.array([mapping.get(int(v), NOISE) for v in labels], dtype=np.int64)


def project_2d(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """The rows on the plane of their two principal components (PCA)."""
    from sklearn.decomposition import PCA

    if len(x) < 2 or x.shape[1] < 2:
        return np.zeros((len(x), 2), dtype=np.float32)
    return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)
