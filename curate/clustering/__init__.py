"""Clustering: embed a text field, cluster it, name each cluster by its distinctive words.

``clusters(df, "nlq")`` is the notebook entry point (:mod:`.topics`); the run report and the
review app show a run's clusters when ``ReportOptions(clusters="nlq")`` is set.
"""
from .embed import EmbeddingCache, embed_texts
from .fit import METHODS, NOISE, cluster_vectors, project_2d
from .names import distinctive_words
from .topics import ClusterOptions, Clusters, cluster_table, clusters

__all__ = ["ClusterOptions", "Clusters", "EmbeddingCache", "METHODS", "NOISE", "cluster_table",
           "cluster_vectors", "clusters", "distinctive_words", "embed_texts", "project_2d"]
