"""Fingerprints decide checkpoint reuse: complete (every input that changes the work changes
the digest) and stable (the same inputs give the same digest in every process)."""
import functools
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from curate import Filter
from curate.core.fingerprint import describe, fingerprint_of

ROOT = Path(__file__).resolve().parents[2]


def digest(value) -> str:
    fp = fingerprint_of(value)
    assert fp.stable, fp.unstable
    return fp.digest


def make_threshold_filter(t):
    return Filter(lambda r: r["x"] > t, name="gt")


def test_closure_values_change_the_fingerprint():
    assert make_threshold_filter(1).fingerprint() != make_threshold_filter(100).fingerprint()
    assert make_threshold_filter(1).fingerprint() == make_threshold_filter(1).fingerprint()


def test_defaults_and_keyword_defaults():
    def a(row, t=1):
        return row["x"] > t

    def b(row, t=2):
        return row["x"] > t

    def c(row, *, t=1):
        return row["x"] > t

    def d(row, *, t=3):
        return row["x"] > t

    assert digest(a) != digest(b)
    assert digest(c) != digest(d)


def test_partial_arguments_and_keywords():
    def over(row, t, field="x"):
        return row[field] > t

    assert digest(functools.partial(over, t=1)) != digest(functools.partial(over, t=2))
    assert digest(functools.partial(over, 1)) != digest(functools.partial(over, 2))
    assert digest(functools.partial(over, 1, field="y")) != digest(functools.partial(over, 1))
    assert digest(functools.partial(over, 1)) == digest(functools.partial(over, 1))


SETTINGS = {"min": 3}
LIMIT = 5


def uses_globals(row):
    return SETTINGS["min"] < row["x"] < LIMIT


def helper(x):
    return x * LIMIT


def calls_helper(row):
    return helper(row["x"]) > 0


def test_plain_value_globals_and_referenced_functions(monkeypatch):
    before = digest(uses_globals)
    monkeypatch.setitem(SETTINGS, "min", 4)
    assert digest(uses_globals) != before
    before_helper = digest(calls_helper)
    monkeypatch.setattr(sys.modules[__name__], "LIMIT", 6)
    assert digest(calls_helper) != before_helper  # LIMIT is read by helper, one level down


def test_recursive_function_is_described_without_looping():
    def fact(n):
        return 1 if n < 2 else n * fact(n - 1)

    assert digest(fact) == digest(fact)


def test_cycles_in_containers():
    a = {"name": "a"}
    a["self"] = a
    assert "<cycle>" in str(describe(a))


def test_containers_to_any_depth_and_large_ones_by_digest():
    deep = {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}
    deeper = {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 2}}}}}}}}}
    assert digest(deep) != digest(deeper)
    big = list(range(10_000))
    changed = big[:]
    changed[9_999] = -1
    assert digest(big) != digest(changed)
    assert "sha256" in describe(big)


def test_tables_arrays_and_files(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": [["x"], ["y"]]})
    assert digest(df) != digest(df.assign(a=[1, 3]))
    assert digest(np.arange(3)) != digest(np.arange(4))
    f = tmp_path / "examples.jsonl"
    f.write_text("one\n")
    first = digest(f)
    f.write_text("two\n")
    assert digest(f) != first


def test_an_object_with_only_an_address_is_unstable():
    class Opaque:
        __slots__ = ()

    fp = fingerprint_of({"thing": Opaque()})
    assert not fp.stable and "Opaque" in fp.describe() and fp.describe().startswith("unstable:")


def test_secret_named_values_are_never_described():
    assert "sk-123" not in str(describe({"api_key": "sk-123", "x": 1}))


def test_two_lambdas_on_one_line_differ():
    f, g = (lambda r: r["x"] > 1), (lambda r: r["x"] < 1)
    assert digest(f) != digest(g)


def _digest_in_new_process(code: str) -> str:
    script = textwrap.dedent(code) + "\nprint(fingerprint_of(target).digest)\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_stable_across_processes_with_nested_code_objects():
    """A generator expression inside a function is a nested code object whose repr holds a
    memory address: it must be described by content."""
    code = """
        from curate.core.fingerprint import fingerprint_of
        def prompt(row, examples=()):
            return "\\n".join(str(x) for x in examples if x) + row["q"]
        target = {"fn": prompt, "data": {"k": [1, 2, (3, 4)]}}
    """
    assert _digest_in_new_process(code) == _digest_in_new_process(code)


# -- tables and arrays: every index kind and dtype ------------------------------------------
INDEXES = {
    "range": lambda: pd.RangeIndex(4),
    "int": lambda: pd.Index([10, 20, 30, 40]),
    "str": lambda: pd.Index(["a", "b", "c", "d"]),
    "multi": lambda: pd.MultiIndex.from_tuples([("x", 1), ("x", 2), ("y", 1), ("y", 2)],
                                               names=["k", "n"]),
    "datetime": lambda: pd.DatetimeIndex(pd.date_range("2024-01-01", periods=4)),
    "categorical": lambda: pd.CategoricalIndex(["p", "q", "p", "r"]),
    "duplicated": lambda: pd.Index([7, 7, 8, 8]),
}
COLUMNS = {  # name: (dtype or None, values, another value for the row at position 2)
    "int": ("int64", [1, 2, 3, 4], 30),
    "float": ("float64", [0.5, 1.5, float("nan"), 2.5], 9.5),
    "object_str": (object, ["a", "b", None, "d"], "c"),
    "str": ("str", ["a", "b", "c", "d"], "C"),
    "arrow_str": ("string[pyarrow]", ["a", "b", "c", "d"], "z"),
    "bool": ("bool", [True, False, True, False], False),
    "nullable_int": ("Int64", [1, None, 3, 4], None),
    "nullable_bool": ("boolean", [True, None, False, True], True),
    "datetime": ("datetime64[ns]", pd.to_datetime(["2024-01-01", "2024-01-02",
                                                   "2024-01-03", "2024-01-04"]).tolist(),
                 pd.Timestamp("2025-01-03")),
    "datetime_tz": ("datetime64[ns, UTC]", pd.to_datetime(["2024-01-01"] * 4, utc=True).tolist(),
                    pd.Timestamp("2024-01-02", tz="UTC")),
    "categorical": ("category", ["x", "y", "x", "z"], "y"),
    "nested": (object, [{"a": 1}, [1, 2], {"b": [1]}, None], {"b": [2]}),
}


def frame(index: str, change: str | None = None, label=None) -> pd.DataFrame:
    data = {}
    for name, (dtype, values, other) in COLUMNS.items():
        values = list(values)
        if name == change:
            values[2] = other
        data[name] = pd.Series(values, dtype=dtype if dtype != "category" else
                               pd.CategoricalDtype(["x", "y", "z"]))
    df = pd.DataFrame(data)
    idx = INDEXES[index]()
    if label is not None:
        idx = idx.delete(2).insert(2, label)
    df.index = idx
    return df


@pytest.mark.parametrize("index", list(INDEXES))
def test_a_change_of_any_cell_changes_a_tables_digest_for_every_index_and_dtype(index):
    base = frame(index)
    digests = {"base": digest(base)}
    assert digest(frame(index)) == digests["base"]  # equal content: equal digest
    for column in COLUMNS:
        digests[column] = digest(frame(index, change=column))
        series = frame(index, change=column)[column]
        digests[f"series:{column}"] = digest(series)
        assert digest(series) != digest(base[column]), column
    other_label = {"range": 99, "int": 99, "str": "z", "multi": ("z", 9),
                   "datetime": pd.Timestamp("2030-01-01"), "categorical": "q",
                   "duplicated": 9}[index]
    digests["label"] = digest(frame(index, label=other_label))
    assert len(set(digests.values())) == len(digests), digests  # every change shows
    assert digest(base.index) != digest(frame(index, label=other_label).index)


def test_two_tables_with_the_same_non_default_index_and_different_data_differ():
    """The lookup-table case: columns used to be aligned on a range index by label, so every
    value of a frame indexed by ``id`` read as missing and two such frames digested alike."""
    a = pd.DataFrame({"id": [101, 102, 103], "label": ["good", "bad", "good"],
                      "score": [1.0, 2.0, 3.0]}).set_index("id")
    b = pd.DataFrame({"id": [101, 102, 103], "label": ["bad", "bad", "bad"],
                      "score": [7.0, 8.0, 9.0]}).set_index("id")
    assert digest(a) != digest(b)
    assert digest(a["label"]) != digest(b["label"])


@pytest.mark.parametrize("make,change", [
    (lambda: np.arange(6).reshape(2, 3), lambda a: a.__setitem__((1, 2), 60)),
    (lambda: np.array([0.5, 1.5, np.nan]), lambda a: a.__setitem__(2, 3.0)),
    (lambda: np.array(["ab", "cd"]), lambda a: a.__setitem__(0, "zz")),
    (lambda: np.array([True, False]), lambda a: a.__setitem__(1, True)),
    (lambda: np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[ns]"),
     lambda a: a.__setitem__(0, np.datetime64("2020-01-01"))),
    (lambda: np.array([{"a": i} for i in range(3000)], dtype=object),  # repr elides the middle
     lambda a: a.__setitem__(1500, {"a": -1})),
    (lambda: pd.array([1, None, 3], dtype="Int64"), lambda a: a.__setitem__(1, 2)),
    (lambda: pd.Categorical(["x", "y", "x"]), lambda a: a.__setitem__(0, "y")),
    (lambda: pd.Index([1, 2, 3]), None),
])
def test_a_change_of_any_element_changes_an_arrays_digest(make, change):
    base = make()
    before = digest(base)
    if change is None:  # an Index is immutable: compare with another one
        assert digest(pd.Index([1, 2, 4])) != before
        return
    changed = base.copy()
    change(changed)
    assert digest(changed) != before
    assert digest(make()) == before


def test_tables_of_every_index_and_dtype_digest_alike_in_another_process():
    code = f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import numpy as np, pandas as pd
        from test_fingerprint import frame, INDEXES
        from curate.core.fingerprint import fingerprint_of
        target = [frame(i) for i in INDEXES] + [frame("int")["str"],
                  np.array([{{"a": 1}}, [2]], dtype=object), pd.Index(["a", "b"])]
    """
    here = fingerprint_of([frame(i) for i in INDEXES] + [
        frame("int")["str"], np.array([{"a": 1}, [2]], dtype=object), pd.Index(["a", "b"])])
    assert here.stable
    assert _digest_in_new_process(code) == here.digest


def test_fingerprint_ignore_leaves_a_global_out_and_keeps_the_rest():
    import sqlite3

    from curate import fingerprint_ignore

    db = sqlite3.connect(":memory:")
    assert not fingerprint_of({"db": db}).stable
    assert fingerprint_ignore(db) is db
    assert fingerprint_of({"db": db}).stable
    other = fingerprint_ignore(sqlite3.connect(":memory:"))
    assert digest({"db": db, "n": 1}) == digest({"db": other, "n": 1})  # a connection is no input
    assert digest({"db": db, "n": 1}) != digest({"db": db, "n": 2})
    with pytest.raises(TypeError, match="fingerprint_ignore"):
        fingerprint_ignore(3)
