"""``clusters(df, field)``: what topics a table covers, for a notebook, the report and the app."""
from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.fingerprint import Fingerprint, fingerprint_of
from ..errors import CurateError
from .embed import as_texts, embed_texts
from .fit import NOISE, cluster_vectors, project_2d
from .names import distinctive_words, llm_names

NOISE_NAME = "(no cluster)"


@dataclass
class ClusterOptions:
    """How to cluster a text field (for :func:`clusters` and ``ReportOptions(clusters=...)``).

    Args:
        field: the text column to embed.
        method: ``"kmeans"`` (default: labelled the Honeycomb seeds' topics better, see
            bench/README.md) or ``"hdbscan"`` (finds the number itself; leaves noise).
        k: the number of k-means clusters (default: chosen by silhouette, 2 to 30).
        min_cluster_size: HDBSCAN's smallest cluster (default 1% of the rows, at least 3).
        model: a sentence-transformers name or path (default the shipped all-MiniLM-L6-v2).
        words: distinctive words in a cluster's name.
        seed: seeds k-means, the samples and the projection.
        llm: a :class:`curate.LLM` that names each cluster from a few of its texts and its
            words (one request per cluster); without it, a name is its distinctive words.
    """

    field: str
    method: str = "kmeans"
    k: int | None = None
    min_cluster_size: int | None = None
    model: str | None = None
    words: int = 3
    seed: int = 0
    llm: object = None

    def fingerprint(self) -> Fingerprint:
        return fingerprint_of(vars(self))


@dataclass
class Clusters:
    """A cluster per row and a table of clusters.

    ``labels``: the cluster id of each row (``-1``: no cluster), indexed like the input;
    ``table``: one row per cluster with ``cluster``, ``name``, ``words`` and ``size``,
    largest first; ``xy``: each row on the plane of the first two principal components;
    ``embedded``: how many texts were encoded (the rest came from the cache).
    """

    labels: pd.Series
    table: pd.DataFrame
    xy: np.ndarray = dataclass_field(repr=False)
    vectors: np.ndarray = dataclass_field(repr=False)
    embedded: int = 0

    @property
    def names(self) -> pd.Series:
        """The cluster name of each row."""
        return self.labels.map(dict(zip(self.table["cluster"], self.table["name"])))


def clusters(df: pd.DataFrame, field: str | ClusterOptions, *, method: str = "kmeans",
             k: int | None = None, min_cluster_size: int | None = None, model=None,
             words: int = 3, seed: int = 0, llm=None,
             cache: str | Path | None = None) -> Clusters:
    """Embed ``df[field]`` with a sentence-transformers model, cluster the vectors and name
    each cluster by its distinctive words (see :class:`ClusterOptions` for the arguments;
    ``cache``: a file that keeps the vectors, so that a second call embeds only new texts).

        found = clusters(df, "nlq")
        df["topic"] = found.names
        found.table            # cluster, name, words, size
    """
    opts = field if isinstance(field, ClusterOptions) else ClusterOptions(
        field, method, k, min_cluster_size, model, words, seed, llm)
    if opts.field not in df.columns:
        raise CurateError(f"clusters: no column {opts.field!r}; columns: "
                          f"{', '.join(map(str, df.columns))}")
    texts = as_texts(df[opts.field].tolist())
    vectors, embedded = embed_texts(texts, model if model is not None else opts.model, cache)
    labels = cluster_vectors(vectors, opts.method, opts.k, opts.min_cluster_size, opts.seed)
    return Clusters(pd.Series(labels, index=df.index, name="cluster"),
                    cluster_table(texts, labels, opts.words, opts.llm),
                    project_2d(vectors, opts.seed),
                    vectors, embedded)


def cluster_table(texts: list[str], labels: np.ndarray, words: int = 3,
                  llm=None) -> pd.DataFrame:
    """One row per cluster id: its name (by ``llm``, else its distinctive words joined),
    words and size."""
    named = distinctive_words(texts, labels, words)
    written = llm_names(texts, labels, named, llm) if llm is not None else {}
    ids, sizes = np.unique(labels, return_counts=True)
    rows = []
    for c, size in zip(ids.tolist(), sizes.tolist()):
        top = [] if c == NOISE else named.get(c, [])
        name = NOISE_NAME if c == NOISE else written.get(c) or " · ".join(top) or f"cluster {c}"
        rows.append({"cluster": c, "name": name, "words": top, "size": size})
    table = pd.DataFrame(rows, columns=["cluster", "name", "words", "size"])
    return table.sort_values(["size", "cluster"], ascending=[False, True], ignore_index=True)
