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
