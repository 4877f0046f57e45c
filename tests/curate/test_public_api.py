"""One public API: every stage, exporter and reader importable from curate, lazily."""
import subprocess
import sys
from pathlib import Path

import pandas as pd

import curate
from curate import Filter

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["Filter", "ComplexityFilter", "AssertionFilter", "ExactDedup", "RougeDedup",
          "EmbeddingDedup", "Decontaminate", "Sample", "Derive", "SuspectFilter", "Augment", "Judge", "Repair", "Vote"]


def test_every_public_name_is_importable_from_curate_and_curate_stages():
    import curate.stages

    for name in curate.__all__:
        assert getattr(curate, name) is not None, name
    for name in STAGES:
        assert getattr(curate.stages, name) is getattr(curate, name)
    assert {"Mix", "ChatExport", "read_table", "write_table", "Pipeline",
            "LLM", "LLMStage", "StageResult", "PreferencePairs"} <= set(curate.__all__)
    assert not {"SharegptExport", "Generate"} & set(curate.__all__)  # one name per thing


def test_import_curate_pulls_in_neither_torch_nor_openai():
    code = ("import sys, curate; from curate import Filter, Pipeline, RougeDedup, SuspectFilter, read_table; "
            "print(sorted(m for m in ('torch', 'openai', 'transformers', 'sentence_transformers') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_filter_counts_each_code_a_predicate_returns():
    def size(row):
        if len(row["q"]) < 2:
            return False, "too_short"
        if len(row["q"]) > 5:
            return False, "too_long", f"{len(row['q'])} characters, more than 5"
        if row["q"] == "xyz":
            return False, "a sentence, not a code"
        return True

    df = pd.DataFrame({"q": ["a", "abc", "abcdefgh", "b", "xyz", "longer one"]})
    res = Filter(size).run(df)
    assert res.stats["reasons"] == {"too_short": 2, "too_long": 2, "a_sentence_not_a_code": 1}
    reasons = dict(zip(res.rejected["q"], res.rejected["_reason"]))
    assert reasons["abcdefgh"] == "8 characters, more than 5"
    assert reasons["a"] == "size: too_short" and reasons["xyz"] == "a sentence, not a code"
    assert Filter(lambda r: True).name == "filter"
    assert Filter(lambda df: df["q"].str.len() > 1, batched=True, name="b").run(df).stats[
        "reasons"] == {"b": 2}
