"""Judge: verdict columns, keep rule, exact fields, few-shot turns, unparseable -> errored.

The stage's logic runs on the in-process scripted model; one test goes end to end through
the HTTP client and a loopback server."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import assert_accounted, make_llm, messages_of, scripted

from curate.errors import StageError
from curate.stages.llm.judge import Judge
from curate.core.table import REASON, REASON_CODE, STAGE
from curate.testing import last_user_message

ROWS = pd.DataFrame({
    "nlq": ["slowest requests", "errors by service", "count of users", "weird one"],
    "columns": [["duration_ms"], ["service", "error"], ["user_id"], ["x"]],
    "query": ['{"calculations":[{"op":"MAX","column":"duration_ms"}]}',
              '{"calculations":[{"op":"COUNT"}]}',
              '{"calculations":[{"op":"MAX"}]}',
              '{}'],
    "prompt": ["a long prompt that the judge must not see"] * 4,
})

EXAMPLES = [{"nlq": "avg latency", "columns": ["duration_ms"],
             "query": '{"calculations":[{"op":"AVG","column":"duration_ms"}]}',
             "critique": "AVG over duration_ms answers the question.", "outcome": "good"}]


def user_text(sent) -> str:
    """Every user turn (the row stays visible on a corrective retry)."""
    return "\n".join(m["content"] for m in messages_of(sent) if m["role"] == "user")


def _verdicts(sent):
    text = user_text(sent)
    if "weird one" in text:
        return "I refuse to judge this."
    if '"op":"MAX"}' in text:
        return ("```json\n{\"critique\": \"MAX needs a column;\\nthe query is invalid.\", "
                "\"outcome\": \"Bad\"}\n```")
    return json.dumps({"critique": "The query answers the question.", "outcome": "good"})


def test_verdicts_become_columns_and_bad_rows_are_rejected_end_to_end(server, tmp_path):
    server.reply = _verdicts
    judge = Judge(make_llm(server, tmp_path), fields=["nlq", "columns", "query"],
                  examples=EXAMPLES)
    result = judge.run(ROWS)
    assert_accounted(ROWS, result)
    assert result.kept["nlq"].tolist() == ["slowest requests", "errors by service"]
    assert result.kept["outcome"].tolist() == ["good", "good"]
    assert result.kept["critique"].tolist() == ["The query answers the question."] * 2
    bad = result.rejected.iloc[0]
    assert (bad["nlq"], bad[REASON_CODE], bad[STAGE]) == ("count of users", "judge_bad", "judge")
    assert bad[REASON] == "MAX needs a column; the query is invalid."  # one line
    assert bad["critique"] == "MAX needs a column;\nthe query is invalid."
    err = result.errored.iloc[0]
    assert err["nlq"] == "weird one" and err[REASON_CODE] == "llm_parse_failed"
    assert result.stats["outcomes"] == {"good": 2, "bad": 1}
    assert result.stats["replies"]["parse_failed"] == 1 and result.stats["produced"] == 3
    assert set(result.stats["llm"]) >= {"requests", "cached", "retried", "failed",
                                        "prompt_tokens", "completion_tokens", "cost_usd"}


def test_the_judge_sees_exactly_the_named_fields_and_the_examples():
    llm, model = scripted(_verdicts)
    Judge(llm, fields=["nlq", "query"], examples=EXAMPLES).run(ROWS.head(1))
    messages = model.history[0].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == (
        'nlq: avg latency\nquery: {"calculations":[{"op":"AVG","column":"duration_ms"}]}')
    assert json.loads(messages[2]["content"])["outcome"] == "good"
    assert messages[3]["content"] == ('nlq: slowest requests\nquery: '
                                      '{"calculations":[{"op":"MAX","column":"duration_ms"}]}')
    sent = json.dumps(messages)
    assert "must not see" not in sent and "columns" not in sent


def test_annotate_only_keeps_every_judged_row():
    result = Judge(scripted(_verdicts)[0], fields=["nlq", "query"], keep="all").run(ROWS)
    assert len(result.kept) == 3 and len(result.rejected) == 0 and len(result.errored) == 1
    assert result.kept["outcome"].tolist() == ["good", "good", "bad"]
    assert "_judge_failure" not in result.kept.columns  # every kept row has its verdict


def test_an_advisory_judge_keeps_rows_it_could_not_judge():
    llm, _ = scripted(_verdicts)
    result = Judge(llm, fields=["nlq", "query"], on_failure="keep").run(ROWS)
    assert_accounted(ROWS, result)
    assert len(result.errored) == 0 and result.stats["unjudged"] == 1
    weird = result.kept.set_index("nlq").loc["weird one"]
    assert weird["outcome"] is None and weird["_judge_failure"] == "llm_parse_failed"
    assert weird["critique"] is None  # no invented critique text
    judged = result.kept[result.kept["nlq"] != "weird one"]
    assert len(judged) == 2 and judged["_judge_failure"].isna().all()  # only where it failed
    assert result.rejected["nlq"].tolist() == ["count of users"]
    with pytest.raises(StageError, match="on_failure"):
        Judge(llm, fields=["nlq"], on_failure="drop")


def test_a_user_schema_and_keep_rule():
    llm, _ = scripted(lambda request: json.dumps({
        "score": 2 if "users" in last_user_message(request) else 5, "why": "graded"}))
    schema = {"type": "object", "required": ["score", "why"],
              "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5},
                             "why": {"type": "string"}}}
    result = Judge(llm, fields=["nlq"], schema=schema, keep=lambda v: v["score"] >= 3).run(ROWS)
    assert result.kept["score"].tolist() == [5, 5, 5]
    assert result.rejected["nlq"].tolist() == ["count of users"]
    assert result.rejected[REASON].iloc[0] == 'judged bad: {"score":2,"why":"graded"}'


def test_a_custom_prompt_receives_only_the_fields():
    received = []

    def prompt(fields, examples):
        received.append(fields)
        return f"Judge this: {fields['nlq']}"

    llm, _ = scripted(lambda request: '{"critique": "ok", "outcome": "good"}')
    Judge(llm, fields=["nlq"], prompt=prompt).run(ROWS.head(2))
    assert received == [{"nlq": "slowest requests"}, {"nlq": "errors by service"}]


def test_missing_fields_and_bad_examples_are_clear_errors():
    llm, model = scripted()
    with pytest.raises(StageError, match="few-shot example 0 lacks"):
        Judge(llm, fields=["nlq", "sql"], examples=EXAMPLES)
    with pytest.raises(StageError, match="no field 'sql'"):
        Judge(llm, fields=["sql"]).run(ROWS)
    assert model.history == []


def test_the_progress_bar_shows_live_llm_figures():
    from curate.progress import run_progress

    with run_progress(enabled=False) as progress:
        Judge(scripted(_verdicts)[0], fields=["nlq"]).run(ROWS.head(2))
    bar = progress.tasks[0]
    assert bar.description == "judge" and bar.completed == 2
    assert bar.fields["info"].startswith("tok ")
