"""Naming clusters by their distinctive words: class-based TF-IDF (c-TF-IDF).

All texts of a cluster are one document; a word's weight in a cluster is its frequency
there (normalised by the cluster's word count) times ``log(1 + A / f)``, where ``A`` is the
average number of words per cluster and ``f`` the word's frequency over all clusters
(Grootendorst 2022, BERTopic, arXiv:2203.05794).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def distinctive_words(texts: list[str], labels: np.ndarray, top: int = 4) -> dict[int, list[str]]:
    """The ``top`` most distinctive words or word pairs of each cluster id in ``labels``."""
    from sklearn.feature_extraction.text import CountVectorizer

    ids = sorted(set(int(v) for v in labels))
    if not ids:
        return {}
    labels = np.asarray(labels)
    docs = pd.Series(texts).groupby(labels).agg(" ".join).reindex(ids).tolist()
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


NAME_PROMPT = ("Below are {n} example texts from one cluster of a dataset, and the words that "
               "set the cluster apart from the others: {words}.\n\n{examples}\n\n"
               "Reply with a short name for what these texts are about (two to five words), "
               "and nothing else.")
MAX_NAME_CHARS = 60


def llm_names(texts: list[str], labels: np.ndarray, words: dict[int, list[str]], llm,
              examples: int = 6, seed: int = 0) -> dict[int, str]:
    """A short name per cluster written by ``llm`` (a :class:`curate.LLM`) from a few of its
    texts and its distinctive words, in one batch of requests (cached by the client). A
    cluster whose reply fails or is empty is left out: it keeps its words as its name."""
    from ..llm.types import Request

    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    ids = [c for c in sorted(words) if c >= 0]
    requests = []
    for c in ids:
        members = np.flatnonzero(labels == c)
        shown = rng.choice(members, size=min(examples, len(members)), replace=False)
        listed = "\n".join(f"- {texts[i][:300]}" for i in sorted(shown))
        requests.append(Request(NAME_PROMPT.format(n=len(shown), words=", ".join(words[c]),
                                                   examples=listed), temperature=0.0))
    named = {}
    for c, result in zip(ids, llm.complete_many(requests)):
        lines = (result.text or "").strip().splitlines() if result.ok else []
        name = lines[0].strip().strip("\"'`*.").strip() if lines else ""
        if name:
            named[c] = name[:MAX_NAME_CHARS]
    return named
