"""Naming clusters by their distinctive words: class-based TF-IDF (c-TF-IDF).

All texts of a cluster are one document; a word's weight in a cluster is its frequency
there (normalised by the cluster's word count) times ``log(1 + A / f)``, where ``A`` is the
average number of words per cluster and ``f`` the word's frequency over all clusters
(Grootendorst 2022, BERTopic, arXiv:2203.05794). Words are counted by scikit-learn's
``CountVectorizer`` (English stop words removed, single words and pairs).
"""
from __future__ import annotations

import numpy as np


def distinctive_words(texts: list[str], labels: np.ndarray, top: int = 4) -> dict[int, list[str]]:
    """The ``top`` most distinctive words or word pairs of each cluster id in ``labels``."""
    from sklearn.feature_extraction.text import CountVectorizer

    ids = sorted(set(int(v) for v in labels))
    if not ids:
        return {}
    labels = np.asarray(labels)
    docs = _joined(texts, labels, ids)
    try:
        vectorizer = CountVectorizer(stop_words="english", ngram_range=(1, 2), min_df=1,
                                     token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z0-9_.]+\b")
        counts = vectorizer.fit_transform(docs).astype(np.float64)
    except ValueError:  # no word at all (empty or stop-word-only texts)
        return {c: [] for c in ids}
    words = vectorizer.get_feature_names_out()
    per_class = np.asarray(counts.sum(axis=1)).ravel()
    tf = counts.multiply(1.0 / np.maximum(per_class, 1)[:, None]).tocsr()
    frequency = np.asarray(counts.sum(axis=0)).ravel()
    idf = np.log(1 + per_class.mean() / np.maximum(frequency, 1))
    weights = tf.multiply(idf).tocsr()
    out = {}
    for row, c in enumerate(ids):
        scores = weights.getrow(row).toarray().ravel()
        best = [i for i in np.argsort(-scores, kind="stable")[: 4 * top] if scores[i] > 0]
        out[c] = _without_overlap([str(words[i]) for i in best], top)
    return out


def _joined(texts, labels, ids) -> list[str]:
    order = np.argsort(labels, kind="stable")
    groups = {c: [] for c in ids}
    for i in order:
        groups[int(labels[i])].append(texts[i])
    return [" ".join(groups[c]) for c in ids]


def _without_overlap(words: list[str], top: int) -> list[str]:
    """Skip a word that is part of a pair already chosen (or a pair of chosen words)."""
    chosen: list[str] = []
    for word in words:
        parts = set(word.split())
        if any(parts <= set(c.split()) or set(c.split()) <= parts for c in chosen):
            continue
        chosen.append(word)
        if len(chosen) == top:
            break
    return chosen
