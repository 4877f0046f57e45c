import pandas as pd
import pytest

from curate import Mix, Sample, StageError


def test_sample_is_seeded_and_rejects_the_rest():
    df = pd.DataFrame({"x": range(20)})
    a, b = Sample(n=5, seed=3).run(df), Sample(n=5, seed=3).run(df)
    assert list(a.kept["x"]) == list(b.kept["x"])
    assert list(a.kept["x"]) == sorted(a.kept["x"])  # table order kept
    assert len(a.rejected) == 15 and set(a.rejected["_reason_code"]) == {"not_sampled"}
    assert list(Sample(n=5, seed=4)(df)["x"]) != list(a.kept["x"])


def test_sample_fraction_and_bad_parameters():
    assert len(Sample(frac=0.25)(pd.DataFrame({"x": range(8)}))) == 2
    with pytest.raises(StageError, match="exactly one of n or frac"):
        Sample(n=2, frac=0.5)
    with pytest.raises(StageError, match="n must be"):
        Sample(n=-1)


def test_mix_by_weight_with_source_column():
    a = pd.DataFrame({"x": range(100)})
    b = pd.DataFrame({"x": range(100, 200)})
    mix = Mix({"a": a, "b": b}, weights={"a": 3, "b": 1}, n=40, seed=1)
    out = mix.load()
    assert out["_source_name"].value_counts().to_dict() == {"a": 30, "b": 10}
    assert out.loc[out["_source_name"] == "b", "x"].between(100, 199).all()
    assert out.loc[out["_source_name"] == "b", "_source"].str.startswith("b:").all()
    assert list(Mix({"a": a, "b": b}, weights={"a": 3, "b": 1}, n=40, seed=1).load()["x"]) == list(out["x"])


def test_mix_reports_shortfall_instead_of_refilling():
    mix = Mix({"a": pd.DataFrame({"x": range(5)}), "b": pd.DataFrame({"x": range(50)})}, n=20)
    out = mix.load()
    assert mix.counts["a"] == {"wanted": 10, "taken": 5, "available": 5}
    assert len(out) == 15


def test_mix_rejects_unknown_weight_names():
    with pytest.raises(StageError, match="unknown sources"):
        Mix({"a": pd.DataFrame({"x": [1]})}, weights={"c": 1})
