"""Repair: critique -> improved output -> checks again, up to k tries; lineage kept (the
stage's logic on the scripted model; a failing endpoint end to end through a server)."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import pytest
from conftest import assert_accounted, make_llm, messages_of, scripted

from curate.stages.llm.prompts import describe_failure, strip_fence
from curate.stages.llm.repair import Repair
from curate.core.table import ID, PARENT, REASON, REASON_CODE, assign_ids
from curate.testing import Fault

GOOD = '{"calculations":[{"op":"MAX","column":"duration_ms"}]}'
BAD = '{"calculations":[{"op":"MAX"}]}'


@dataclass
class Failure:  # the shape of an assertion failure: a rule name and a message
    rule: str
    message: str


def check(row):
    query = json.loads(row["query"])
    return [Failure("calc_column_missing", f"{c['op']} needs a column")
            for c in query["calculations"] if c["op"] != "COUNT" and "column" not in c]


REJECTED = pd.DataFrame({
    "nlq": ["slowest requests", "hopeless case", "endpoint down"],
    "query": [BAD, BAD, BAD],
    "critique": ["MAX without a column cannot answer 'slowest'.", "Nonsense.", "Broken."],
    "outcome": ["bad"] * 3,
    "_stage": ["judge"] * 3, "_reason_code": ["judge_bad"] * 3, "_reason": ["bad"] * 3,
})


def _repairs(sent):
    first = messages_of(sent)[0]["content"]
    turns = sum(m["role"] == "user" for m in messages_of(sent))
    if "endpoint down" in first:
        return Fault.status(500)
    if "slowest requests" in first and turns >= 2:
        return f"```json\n{GOOD}\n```"
    return BAD


def test_repair_loops_until_the_checks_pass_or_gives_up_end_to_end(server, tmp_path):
    server.reply = _repairs
    stage = Repair(make_llm(server, tmp_path, max_tries=2), field="query", check=check,
                   max_attempts=3)
    result = stage.run(REJECTED)
    assert_accounted(REJECTED, result)
    originals = assign_ids(REJECTED)
    fixed = result.kept.iloc[0]
    assert len(result.kept) == 1 and fixed[PARENT] == originals.iloc[0][ID]
    assert fixed[ID] != originals.iloc[0][ID]
    assert fixed["query"] == GOOD and fixed["_query_before_repair"] == BAD
    assert fixed["_repair_attempts"] == 2
    assert pd.isna(fixed[REASON_CODE])
    gave_up = result.rejected.iloc[0]
    assert (gave_up["nlq"], gave_up[REASON_CODE]) == ("hopeless case", "repair_failed")
    assert gave_up[REASON] == ("still failing after 3 attempts: "
                               "calc_column_missing: MAX needs a column")
    assert result.errored[REASON_CODE].tolist() == ["llm_request_failed"]
    assert result.stats["repaired"] == 1 and result.stats["attempts"] == {"2": 1}
    assert result.stats["replaced"] == 1


def test_feedback_reaches_the_model_and_failures_come_back():
    llm, model = scripted(_repairs)
    Repair(llm, field="query", check=check).run(REJECTED.head(1))
    first, second = (r.messages for r in model.history)
    assert "MAX without a column cannot answer 'slowest'." in first[0]["content"]
    assert "critique" not in first[0]["content"].split("Problems:")[0]
    assert second[1] == {"role": "assistant", "content": BAD}
    assert "- calc_column_missing: MAX needs a column" in second[2]["content"]


def test_feedback_from_an_assertion_reason_and_a_custom_prompt():
    rows = pd.DataFrame({"nlq": ["slowest requests"], "query": [BAD],
                         "_reason": ["assertion calc_column_missing: MAX needs a column"]})
    seen = []

    def prompt(row, feedback):
        seen.append(feedback)
        return f"Fix the query for {row['nlq']!r}: {row['query']}\nProblem: {feedback}"

    result = Repair(scripted(lambda request: GOOD)[0], prompt, field="query",
                    check=check).run(rows)
    assert seen == ["assertion calc_column_missing: MAX needs a column"]
    assert result.kept["query"].tolist() == [GOOD]
    assert result.kept["_repair_attempts"].tolist() == [1]


def test_without_a_checker_the_first_parseable_reply_is_kept():
    rows = pd.DataFrame({"nlq": ["q"], "query": [{"calculations": []}], "critique": ["empty"]})
    llm, _ = scripted(None, 'Here: {"calculations": [{"op": "COUNT"}]}')
    result = Repair(llm, field="query").run(rows)
    assert result.kept["query"].tolist() == [{"calculations": [{"op": "COUNT"}]}]


def test_helpers():
    assert describe_failure(Failure("r", "m")) == "r: m"
    assert describe_failure({"rule": "r", "message": "m"}) == "r: m"
    assert describe_failure("plain") == "plain"
    assert strip_fence("```sql\nSELECT 1\n```") == "SELECT 1"
    assert strip_fence("  SELECT 1 ") == "SELECT 1"


def test_when_selects_rows_and_stale_verdicts_are_cleared():
    judged = pd.DataFrame({"nlq": ["slowest requests", "count"],
                           "query": [BAD, '{"calculations":[{"op":"COUNT"}]}'],
                           "critique": ["MAX needs a column.", "Fine."],
                           "outcome": ["bad", "good"]})
    llm, model = scripted(lambda request: GOOD)
    result = Repair(llm, field="query", check=check,
                    when=lambda row: row["outcome"] == "bad").run(judged)
    assert_accounted(judged, result)
    fixed, untouched = result.kept.iloc[0], result.kept.iloc[1]  # the repair in its row's place
    assert untouched[ID] == assign_ids(judged).iloc[1][ID] and untouched["outcome"] == "good"
    assert fixed["query"] == GOOD and fixed[PARENT] == assign_ids(judged).iloc[0][ID]
    assert fixed["critique"] is None and fixed["outcome"] is None
    assert fixed["_repair_feedback"] == "MAX needs a column."
    assert len(model.history) == 1 and result.stats["not_selected"] == 1
    # the repair's bookkeeping is on the repaired row only
    assert untouched[["_query_before_repair", "_repair_attempts", "_repair_feedback"]].isna().all()


FULL = '{"calculations":[{"op":"MAX","column":"duration_ms"},{"op":"COUNT"}]}'


def says_no_less(row, value):
    """The repaired query keeps at least as many calculations as the one it replaces."""
    before, after = json.loads(row["query"])["calculations"], json.loads(value)["calculations"]
    if any(c.get("column") == "boom" for c in after):
        raise RuntimeError("cannot compare")
    if len(after) < len(before):
        return False, "repair_says_less", f"{len(after)} calculations where there were {len(before)}"
    return True


def test_accept_refuses_a_repair_that_says_less_and_keeps_one_that_does_not():
    rows = pd.DataFrame({"nlq": ["slowest and how many", "just the slowest", "broken compare"],
                         "query": ['{"calculations":[{"op":"MAX"},{"op":"COUNT"}]}', BAD, BAD],
                         "critique": ["MAX needs a column."] * 3})
    replies = {"slowest and how many": GOOD, "just the slowest": FULL,
               "broken compare": '{"calculations":[{"op":"MAX","column":"boom"}]}'}
    seen = []

    def accept(row, value):
        seen.append((row["nlq"], row["query"], value))
        return says_no_less(row, value)

    llm, model = scripted(lambda request: next(v for k, v in replies.items()
                                               if k in request.messages[0]["content"]))
    result = Repair(llm, field="query", check=check, accept=accept, max_attempts=3).run(rows)
    assert_accounted(rows, result)
    assert len(model.history) == 3  # a refusal is final: no follow-up request
    assert result.kept["query"].tolist() == [FULL]
    refused = result.rejected.iloc[0]
    assert (refused["nlq"], refused[REASON_CODE]) == ("slowest and how many", "repair_says_less")
    assert refused[REASON] == "1 calculations where there were 2"
    assert result.errored[REASON_CODE].tolist() == ["accept_raised"]
    assert "RuntimeError: cannot compare" in result.errored[REASON].iloc[0]
    assert ("slowest and how many", rows["query"][0], GOOD) in seen  # accept sees the old row
    assert (result.stats["repaired"], result.stats["repair_refused"], result.stats["repair_failed"]) == (1, 1, 0)


def test_accept_is_asked_only_about_values_that_pass_the_checker():
    asked = []
    llm, model = scripted(_repairs)  # the first reply fails the checker, the second passes
    rows = REJECTED.head(1)
    result = Repair(llm, field="query", check=check, max_attempts=3,
                    accept=lambda row, value: asked.append(value) or False).run(rows)
    assert asked == [GOOD] and len(model.history) == 2
    assert result.rejected[REASON_CODE].tolist() == ["repair_refused"]
    assert result.rejected[REASON].tolist() == ["accept refused the repaired query"]


def test_accept_must_be_a_function():
    with pytest.raises(Exception, match="accept must be a function"):
        Repair(scripted()[0], field="query", accept="says_no_less")


def test_an_unusable_reply_is_one_more_attempt_and_a_raising_checker_errors_its_row():
    """A reply that does not parse is fed back like a failed check (no separate corrective
    retry); a checker that raises errors its row, and the other rows go on."""
    rows = pd.DataFrame({"nlq": ["fixed on the second try", "checker breaks"],
                         "query": [BAD, "{not json"], "critique": ["bad"] * 2})
    schema = {"type": "object", "required": ["q"], "properties": {"q": {"type": "string"}}}
    replies = iter(["no json at all", '{"q": "%s"}' % GOOD.replace('"', "'")])

    def reply(request):
        if "checker breaks" in request.messages[0]["content"]:
            return '{"q": "{not json"}'
        return next(replies)

    def loads(row, reply):
        return reply["q"].replace("'", '"')

    llm, model = scripted(reply)
    result = Repair(llm, field="query", check=check, schema=schema, parse=loads,
                    max_attempts=2).run(rows)
    assert_accounted(rows, result)
    assert result.kept["query"].tolist() == [GOOD]
    assert result.kept["_repair_attempts"].tolist() == [2]
    followup = [r for r in model.history if "fixed" in r.messages[0]["content"]][1].messages
    assert followup[1] == {"role": "assistant", "content": "no json at all"}
    assert followup[2]["content"].startswith("The query still fails these checks:\n- unusable "
                                             "reply: no JSON object or list found")
    assert result.errored["_reason_code"].tolist() == ["check_raised"]
    assert "JSONDecodeError" in result.errored["_reason"].iloc[0]
    assert result.stats["replies"] == {"requests": 2, "parsed": 2, "parse_failed": 0,
                                       "truncated": 0, "request_failed": 0, "refused": 0}
