"""Augment: perturbation and bootstrap, failures counted, nothing lost (the stage's logic on
the scripted model; request failures end to end through a loopback server)."""
from __future__ import annotations

import json
import re

import pandas as pd
from conftest import assert_accounted, make_llm, messages_of, scripted

from curate.stages.llm.augment import Augment
from curate.core.table import ID, PARENT, REASON_CODE, assign_ids
from curate.testing import Fault, Reply, last_user_message

SEEDS = pd.DataFrame({
    "nlq": ["slowest requests", "errors by service", "p99 latency per route"],
    "columns": [["duration_ms", "trace_id"], ["service", "error"], ["route", "duration_ms"]],
    "query": [{"calculations": [{"op": "MAX", "column": "duration_ms"}]},
              {"calculations": [{"op": "COUNT"}], "breakdowns": ["service"]},
              {"calculations": [{"op": "P99", "column": "duration_ms"}], "breakdowns": ["route"]}],
})


def perturb_prompt(row):
    return (f"Rewrite this example twice: once reworded, once substituting one column in both "
            f"the column list and the query.\nEXAMPLE {json.dumps(row, sort_keys=True)}")


def _perturb(request):
    row = json.loads(last_user_message(request).split("EXAMPLE ", 1)[1])
    old = row["columns"][-1]
    swapped = json.loads(json.dumps(row["query"]).replace(old, f"{old}_v2"))
    return json.dumps([{"nlq": f"show me the {row['nlq']}"},
                       {"columns": [*row["columns"][:-1], f"{old}_v2"], "query": swapped}])


def test_perturbation_rewords_and_substitutes_columns():
    result = Augment(scripted(_perturb)[0], perturb_prompt).run(SEEDS)
    seeds = assign_ids(SEEDS)
    assert_accounted(SEEDS, result)
    new = result.kept[result.kept[PARENT].notna()]
    assert len(result.kept) == 3 + 6 and len(new) == 6
    assert set(new[PARENT]) == set(seeds[ID]) and not set(new[ID]) & set(seeds[ID])
    first = seeds.iloc[0]
    mine = new[new[PARENT] == first[ID]]
    reworded = mine[mine["nlq"] != first["nlq"]].iloc[0]
    assert reworded["nlq"] == "show me the slowest requests"
    assert reworded["query"] == first["query"] and reworded["columns"] == first["columns"]
    swapped = mine[mine["nlq"] == first["nlq"]].iloc[0]
    assert swapped["columns"] == ["duration_ms", "trace_id_v2"]
    assert swapped["query"] == first["query"]  # the substituted column was not in the query
    third = new[new[PARENT] == seeds.iloc[2][ID]]
    assert {"route", "duration_ms_v2"} == set(third.iloc[1]["columns"])
    assert third.iloc[1]["query"]["calculations"][0]["column"] == "duration_ms_v2"
    assert result.stats["produced"] == 6 and result.stats["llm"]["requests"] == 3


INSTRUCTIONS = pd.DataFrame({
    "instruction": [f"seed task {i}" for i in range(6)],
    "output": [f"answer {i}" for i in range(6)],
})


def test_bootstrap_new_instructions_from_sampled_seeds():
    seen = []

    def prompt(row, examples):
        seen.append((row["instruction"], [e["instruction"] for e in examples]))
        tasks = [row, *examples]
        listed = "\n".join(f"Task {i + 1}: {t['instruction']}" for i, t in enumerate(tasks))
        return f"Come up with a new task.\n{listed}\nTask {len(tasks) + 1}:"

    def reply(request):
        first = re.search(r"Task 1: seed task (\d)", last_user_message(request)).group(1)
        return json.dumps({"instruction": f"new task inspired by {first}"})

    llm, _ = scripted(reply)
    stage = Augment(llm, prompt, k=3, inherit=False, seed=1, name="generate")
    result = stage.run(INSTRUCTIONS)
    assert_accounted(INSTRUCTIONS, result)
    assert all(len(ex) == 3 and row not in ex for row, ex in seen)
    first_examples = dict(seen)
    seen.clear()
    Augment(llm, prompt, k=3, inherit=False, seed=1).run(INSTRUCTIONS)
    assert dict(seen) == first_examples  # seeded: the same few-shot rows every run
    new = result.kept[result.kept[PARENT].notna()]
    assert sorted(new["instruction"]) == [f"new task inspired by {i}" for i in range(6)]
    assert new["output"].isna().all()  # bootstrap rows inherit nothing
    assert result.stats["stage"] == "generate"


def test_parse_and_request_failures_keep_the_original_and_are_counted_end_to_end(server, tmp_path):
    def reply(body):
        text = body["messages"][0]["content"]  # the prompt, also on the corrective retry
        if "errors by service" in text:
            return "Sorry, I can't do that."
        if "p99" in text:
            return Fault.status(500)
        return json.dumps({"nlq": "a reworded question"})

    server.reply = reply
    result = Augment(make_llm(server, tmp_path, max_tries=2), perturb_prompt).run(SEEDS)
    assert_accounted(SEEDS, result)
    assert len(result.kept) == 4 and len(result.errored) == 0
    stats = result.stats
    assert stats["replies"]["parse_failed"] == 1 and stats["replies"]["request_failed"] == 1
    assert stats["replies"]["parsed"] == 1 and stats["replies"]["requests"] == 3
    sample = {s["code"]: s for s in stats["failure_sample"]}
    assert sample["llm_parse_failed"]["reply"] == "Sorry, I can't do that."
    assert "HTTP 500" in sample["llm_request_failed"]["reason"]
    assert stats["llm"]["failed"] == 1 and stats["llm"]["retried"] == 1


def test_replacing_originals_errors_rows_that_got_nothing():
    """keep="new": a row whose reply failed is errored (on_failure's default there)."""
    def reply(request):
        text = request.messages[0]["content"]  # the prompt, also on the corrective retry
        if "errors by service" in text:
            return "[]"
        if "p99" in text:
            return "not json at all"
        return json.dumps({"nlq": "a reworded question"})

    result = Augment(scripted(reply)[0], perturb_prompt, keep="new").run(SEEDS)
    assert_accounted(SEEDS, result)
    seeds = assign_ids(SEEDS)
    assert result.kept[PARENT].tolist() == [seeds.iloc[0][ID]]
    assert result.rejected[REASON_CODE].tolist() == ["augment_no_rows"]
    assert result.errored[REASON_CODE].tolist() == ["llm_parse_failed"]
    assert result.stats["replaced"] == 1


def test_n_samples_and_a_schema():
    llm, model = scripted(lambda request: json.dumps({"nlq": f"variant {request.seed}"}),
                          seed=10)
    schema = {"type": "object", "required": ["nlq"], "properties": {"nlq": {"type": "string"}}}
    stage = Augment(llm, lambda row: f"vary {row['nlq']}",
                    lambda row, value: {**value, "source": row["nlq"]}, schema=schema, n=3,
                    temperature=0.9)
    result = stage.run(SEEDS.head(1))
    new = result.kept[result.kept[PARENT].notna()]
    assert sorted(new["nlq"]) == ["variant 10", "variant 11", "variant 12"]
    assert set(new["source"]) == {"slowest requests"}
    assert {r.temperature for r in model.history} == {0.9}


def test_on_failure_routes_a_row_none_of_whose_samples_gave_a_reply():
    """The documented policy holds with keep="all" too: "error" errors the row that got no
    usable reply (every sample cut off), whatever the other rows made."""
    def reply(request):
        cut = "errors by service" in request.messages[0]["content"]
        return Reply('{"nlq": "cut', finish_reason="length") if cut else '{"nlq": "new"}'

    llm, _ = scripted(reply)
    result = Augment(llm, perturb_prompt, n=2, on_failure="error").run(SEEDS)
    assert_accounted(SEEDS, result)
    assert result.errored["nlq"].tolist() == ["errors by service"]
    assert result.errored[REASON_CODE].tolist() == ["llm_truncated"]
    assert result.kept["nlq"].tolist() == ["slowest requests", "new", "new",
                                           "p99 latency per route", "new", "new"]
    assert result.stats["replies"]["truncated"] == 2 and result.stats["produced"] == 4
