"""The README's "your own LLM stage" example, run as written there: a stage in one short
file gets the shared loop (corrective retry, on_failure, when, health, the estimate)."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from curate.testing import Reply, ScriptedModel

README = Path(__file__).resolve().parents[2] / "curate" / "llm" / "README.md"
ROWS = pd.DataFrame({"nlq": ["slowest requests", "the weather in Paris", "how many errors"]})


@pytest.fixture(scope="module")
def example():
    """The section's code blocks: the stage, then its test on the scripted model."""
    section = README.read_text().split("### Your own LLM stage", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2 and "class Classify(LLMStage)" in blocks[0]
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    return namespace["Classify"], blocks[1]


def test_the_readme_example_runs_as_written(example):
    classify, usage = example
    namespace = {"Classify": classify, "df": ROWS.head(2)}
    exec(compile(usage, str(README), "exec"), namespace)
    assert namespace["result"].kept["label"].tolist() == ["latency"]


def labels(request):
    text = request.messages[-1]["content"]
    if "could not be used" in text:  # the corrective retry
        return '{"label": "latency"}'
    if "slowest" in text:
        return '{"label": "Latency"}'
    return '{"label": "other"}' if "weather" in text else '{"label": "count"}'


def test_the_stage_has_the_shared_loop(example):
    classify, _ = example
    model = ScriptedModel(reply=labels)
    stage = classify(model.client(), field="nlq", labels=["count", "latency", "other"],
                     drop=["other"])
    result = stage.run(ROWS)
    assert result.kept[["nlq", "label"]].values.tolist() == [
        ["slowest requests", "latency"], ["how many errors", "count"]]
    rejected = result.rejected.iloc[0]
    assert (rejected["label"], rejected["_reason_code"], rejected["_reason"]) == (
        "other", "labelled_other", "the model labelled it other")
    assert len(model.history) == 4  # "Latency" is outside the schema: one corrective retry
    assert "'Latency' is not one of" in model.history[3].messages[-1]["content"]
    assert result.stats["replies"]["parsed"] == 3 and result.stats["health"] == "ok"
    assert result.stats["produced"] == 3
    assert len(stage.planned_requests(ROWS)) == 3 and len(model.history) == 4


def test_when_and_on_failure_come_with_the_base(example):
    classify, _ = example
    model = ScriptedModel(Reply('{"label": "co', finish_reason="length"))
    stage = classify(model.client(), field="nlq", labels=["count", "other"], on_failure="reject",
                     when=lambda row: "errors" in row["nlq"])
    result = stage.run(ROWS)
    assert result.rejected["_reason_code"].tolist() == ["llm_truncated"]
    assert len(result.kept) == 2 and result.stats["not_selected"] == 2
    assert result.stats["warnings"][0].startswith("produced no labels from 1 requests")
