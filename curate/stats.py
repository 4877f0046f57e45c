"""Intervals and paired tests for evaluation figures over held-out rows.

Rows derived from one parent (a question and its column swaps) are not independent, so the
bootstrap resamples whole groups (the cluster bootstrap: Field & Welsh, 2007, "Bootstrapping
clustered data"); a row without a group is its own group. Intervals are percentile
intervals, seeded, so a rerun prints the same figures. Between two answer sets on the same
rows: the bootstrap of the paired per-row differences, and McNemar's exact test on a
pass/fail measure (validity).

    >>> from curate.stats import interval
    >>> interval([1, 0, 1, 1], groups=["a", "a", "b", "c"]).value
    0.75
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

__all__ = ["Interval", "interval", "mcnemar_exact", "paired_difference"]

RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap interval."""

    value: float
    low: float
    high: float

    def as_dict(self, digits: int = 4) -> dict[str, float]:
        return {key: round(float(v), digits) for key, v in asdict(self).items()}

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def interval(values: Sequence[float], groups: Sequence | None = None, *, confidence: float = 0.95,
             resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """The mean of ``values`` with a percentile bootstrap interval that resamples whole
    ``groups`` (one label per value; None, or a None label, makes a row its own group)."""
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or not len(data):
        raise ValueError(f"need a non-empty list of numbers, got {len(data)} values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence}")
    sums, sizes = _group_totals(data, groups)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(sums), size=(resamples, len(sums)))
    means = sums[picks].sum(axis=1) / sizes[picks].sum(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(data.mean()), float(low), float(high))


def paired_difference(first: Sequence[float], second: Sequence[float], groups: Sequence | None = None,
                      **options) -> Interval:
    """The mean of ``first - second`` row by row, with the cluster bootstrap interval of
    `interval` (the two lists score the same rows, in the same order)."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired lists differ in length: {len(a)} and {len(b)}")
    return interval(a - b, groups, **options)


def mcnemar_exact(first: Sequence[bool], second: Sequence[bool]) -> dict:
    """McNemar's exact test of two pass/fail lists on the same rows: a two-sided binomial
    test on the rows where they disagree. ``{"first_only", "second_only", "p_value"}``."""
    a, b = np.asarray(first, dtype=bool), np.asarray(second, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired lists differ in length: {len(a)} and {len(b)}")
    first_only, second_only = int((a & ~b).sum()), int((~a & b).sum())
    if not first_only + second_only:
        return {"first_only": 0, "second_only": 0, "p_value": 1.0}
    from scipy.stats import binomtest

    p_value = binomtest(first_only, first_only + second_only, 0.5).pvalue
    return {"first_only": first_only, "second_only": second_only, "p_value": float(p_value)}


def _group_totals(data: np.ndarray, groups: Sequence | None) -> tuple[np.ndarray, np.ndarray]:
    """The sum and the size of each group."""
    if groups is None:
        return data, np.ones(len(data))
    if len(groups) != len(data):
        raise ValueError(f"{len(groups)} group labels for {len(data)} values")
    index: dict = {}
    labels = [index.setdefault(("row", i) if g is None else ("group", g), len(index))
              for i, g in enumerate(groups)]
    labels = np.asarray(labels)
    return (np.bincount(labels, weights=data, minlength=len(index)),
            np.bincount(labels, minlength=len(index)).astype(float))
