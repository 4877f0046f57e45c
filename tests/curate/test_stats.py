"""Cluster bootstrap intervals, paired differences and McNemar's exact test."""
import numpy as np
import pytest

from curate import Interval, interval, mcnemar_exact, paired_difference


def test_the_interval_covers_the_true_mean_about_95_times_in_100():
    """Coverage on a synthetic case with a known mean: 200 samples of 150 Bernoulli(0.3) rows."""
    rng = np.random.default_rng(1)
    covered = 0
    for trial in range(200):
        found = interval(rng.random(150) < 0.3, resamples=500, seed=trial)
        covered += found.low <= 0.3 <= found.high
    assert 0.90 <= covered / 200 <= 0.99


def test_grouped_rows_give_a_wider_interval_than_rows_taken_as_independent():
    """Three rows per parent that mostly agree: 40 independent facts, not 120."""
    rng = np.random.default_rng(2)
    parents = rng.random(40) < 0.5
    values = np.repeat(parents, 3).astype(float)
    groups = np.repeat(np.arange(40), 3)
    alone, clustered = interval(values), interval(values, groups)
    assert alone.value == clustered.value
    assert (clustered.high - clustered.low) > 1.4 * (alone.high - alone.low)
    # a row without a group is its own group: None labels change nothing for single rows
    assert interval(values, [None] * len(values)) == alone


def test_intervals_are_seeded_and_hold_the_mean():
    values = [1, 0, 1, 1, 0, 1, 1, 1]
    first, again = interval(values, seed=3), interval(values, seed=3)
    assert first == again and first.low <= first.value == 0.75 <= first.high
    assert first.as_dict() == {"value": 0.75, "low": round(first.low, 4), "high": round(first.high, 4)}
    assert isinstance(first, Interval) and str(first).startswith("0.750 [")
    assert interval([1, 1, 1]) == Interval(1.0, 1.0, 1.0)


def test_paired_difference_sees_a_small_consistent_gain():
    rng = np.random.default_rng(4)
    base = rng.random(200)
    better = base + 0.02 + rng.normal(0, 0.01, 200)
    found = paired_difference(better, base)
    assert 0.015 < found.value < 0.025 and found.low > 0
    # the same rows taken unpaired: the spread between rows hides the gain
    assert interval(better).low < interval(base).high


def test_mcnemar_counts_only_the_rows_where_the_two_disagree():
    first = [True] * 10 + [False] * 2 + [True] * 50 + [False] * 8
    second = [False] * 10 + [True] * 2 + [True] * 50 + [False] * 8
    result = mcnemar_exact(first, second)
    assert (result["first_only"], result["second_only"]) == (10, 2)
    assert result["p_value"] == pytest.approx(0.03857, abs=1e-4)  # two-sided binomial, 2 of 12
    assert mcnemar_exact([True, False], [True, False]) == {"first_only": 0, "second_only": 0, "p_value": 1.0}


@pytest.mark.parametrize("call, message", [
    (lambda: interval([]), "non-empty"),
    (lambda: interval([1, 0], groups=["a"]), "1 group labels for 2 values"),
    (lambda: interval([1, 0], confidence=95), "confidence"),
    (lambda: paired_difference([1, 0], [1]), "differ in length"),
    (lambda: mcnemar_exact([True], [True, False]), "differ in length"),
])
def test_bad_input_says_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()
