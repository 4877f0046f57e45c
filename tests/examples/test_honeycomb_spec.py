"""What the Honeycomb spec lets its LLM stages do to a row: with the embedded model the judge
only annotates and repair takes only what the checker fails; a repair that says less than
the query it replaces is refused, against a real chat-completions server on loopback."""
import json
from pathlib import Path

import pandas as pd
import pytest

from assertions.honeycomb import check
from curate import LLM, Repair
from curate.core.table import REASON, REASON_CODE
from curate.pipeline.spec import load_spec
from curate.testing import ScriptedServer

ROOT = Path(__file__).resolve().parents[2]

COLUMNS = ["duration_ms", "http.route", "service.name", "http.status_code"]
VALID = {"calculations": [{"op": "P99", "column": "duration_ms"}], "breakdowns": ["http.route"],
         "filters": [{"column": "service.name", "op": "=", "value": "cart"}]}


def stage(name, endpoint=None, monkeypatch=None):
    """A stage of the spec as loaded with no endpoint (the embedded model), or with one."""
    if endpoint:
        monkeypatch.setenv("OPENAI_BASE_URL", endpoint)
        monkeypatch.setenv("OPENAI_API_KEY", "local")
        monkeypatch.setenv("CURATE_LLM_MODEL", "a-real-model")
    return next(s for s in load_spec(ROOT / "examples/honeycomb/spec.py").stages if s.name == name)


@pytest.fixture(autouse=True)
def no_endpoint(monkeypatch):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "CURATE_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)


def test_with_the_embedded_model_the_judge_only_annotates_and_repair_takes_checker_failures():
    judge, repair = stage("judge"), stage("repair")
    assert judge.keep == "all" and judge.on_failure == "keep"
    judged_bad = {"nlq": "p99 latency of cart by route", "columns": COLUMNS, "query": VALID, "outcome": "bad"}
    assert not repair.when(judged_bad)  # a verdict of the 135M judge is no evidence
    assert repair.when({**judged_bad, "query": {"calculations": [{"op": "P99"}]}})  # the checker fails it


def test_with_a_real_endpoint_the_judge_is_strict_and_may_send_rows_to_repair(monkeypatch):
    endpoint = "http://127.0.0.1:9/v1"  # never asked: building the spec sends nothing
    judge, repair = stage("judge", endpoint, monkeypatch), stage("repair", endpoint, monkeypatch)
    assert judge.on_failure == "error"
    row = {"nlq": "p99 latency of cart by route", "columns": COLUMNS, "query": VALID}
    assert repair.when({**row, "outcome": "bad"}) and not repair.when({**row, "outcome": "good"})
    rewording = {"nlq": "cart p99 latency per route", "seed_nlq": "p99 latency of cart by route"}
    assert stage("embedded_rewordings", endpoint, monkeypatch).predicate(rewording) is True


def test_rewordings_of_the_embedded_model_are_dropped_with_a_reason_and_seeds_pass():
    keep = stage("embedded_rewordings").predicate
    rewording = {"nlq": "cart p99 latency per route", "seed_nlq": "p99 latency of cart by route"}
    verdict = keep(rewording)
    assert verdict[:2] == (False, "embedded_rewording") and "configure an endpoint" in verdict[2]
    assert keep({"nlq": "p99 latency of cart by route", "seed_nlq": None}) is True


ROWS = pd.DataFrame({
    "nlq": ["slowest cart requests by route", "p99 per route for one service", "max latency",
            "p99 latency of cart by route"],
    "columns": [COLUMNS] * 4,
    "query": [
        {"calculations": [{"op": "MAX"}], "breakdowns": ["http.route"],
         "filters": [{"column": "service.name", "op": "=", "value": "cart"}]},
        {"calculations": [{"op": "P99"}], "breakdowns": ["http.route"]},
        {"calculations": [{"op": "MAX"}]},
        VALID,
    ],
    "critique": ["MAX needs a column.", "P99 needs a column.", "MAX needs a column.", "Looks wrong to me."],
    "outcome": ["bad"] * 4,
})
REPLIES = {
    "slowest cart requests by route": {"limit": 1000},
    "p99 per route for one service": {"calculations": [{"op": "P99", "column": "duration_ms"}],
                                      "breakdowns": ["http.route"],
                                      "filters": [{"column": "service.name", "op": "=", "value": "your_value"}]},
    "max latency": {"calculations": [{"op": "MAX", "column": "duration_ms"}]},
}


def test_the_spec_refuses_a_repair_that_says_less_or_fills_in_a_placeholder(tmp_path):
    spec_repair = stage("repair")

    def reply(body):
        text = body["messages"][-1]["content"]
        return json.dumps({"query": next(q for nlq, q in REPLIES.items() if nlq in text)})

    with ScriptedServer(reply) as server:
        llm = LLM("scripted", base_url=server.base_url, api_key="local", cache=tmp_path / "llm.sqlite",
                  max_tries=1)
        repair = Repair(llm, prompt=spec_repair.prompt.fn, field="query", check=check,
                        schema=spec_repair.schema, parse=spec_repair.parse, when=spec_repair.when,
                        accept=spec_repair.accept, max_attempts=2)
        result = repair.run(ROWS)
        asked = server.received
    assert asked == 3  # the valid row judged bad is not sent
    kept = result.kept.set_index("nlq")["query"].to_dict()
    assert kept == {"p99 latency of cart by route": VALID,
                    "max latency": {"calculations": [{"op": "MAX", "column": "duration_ms"}]}}
    refused = result.rejected.set_index("nlq")
    assert refused.loc["slowest cart requests by route", REASON_CODE] == "repair_says_less"
    assert refused.loc["slowest cart requests by route", REASON].startswith(
        "the repaired query sets 2 parts where the original set 3; it drops ('breakdown', 'http.route')")
    assert refused.loc["p99 per route for one service", REASON_CODE] == "repair_placeholder"
    assert "'your_value'" in refused.loc["p99 per route for one service", REASON]


@pytest.mark.parametrize("new, verdict", [
    ({**VALID, "breakdowns": ["http.route", "http.status_code"]}, True),
    ({**VALID, "filters": [{"column": "service.name", "op": "=", "value": "cart"}], "limit": 10}, True),
    ({"filter_combination": "AND", "calculations": [{"op": "COUNT"}]}, "repair_says_less"),
    ({**VALID, "filters": [{"column": "service.name", "op": "=", "value": "<service>"}]}, "repair_placeholder"),
    ({**VALID, "filters": [{"column": "service.name", "op": "in", "value": ["cart", "example"]}]},
     "repair_placeholder"),
])
def test_says_no_less_compares_atoms_and_looks_for_placeholders(new, verdict):
    accept = stage("repair").accept
    row = {"nlq": "p99 latency of cart by route", "query": VALID}
    found = accept(row, new)
    assert found is True if verdict is True else found[:2] == (False, verdict)
    # a value the question or the original holds is no placeholder
    assert accept({"nlq": "requests from example.com", "query": {"calculations": [{"op": "COUNT"}]}},
                  {"filters": [{"column": "http.host", "op": "=", "value": "example.com"}]}) is True


def test_rows_made_by_the_spec_that_repeat_a_held_out_question_are_dropped_naming_it():
    stages = [s.name for s in load_spec(ROOT / "examples/honeycomb/spec.py").stages]
    assert stages.index("column_swap") < stages.index("decontaminate") < stages.index("judge")
    held = [json.loads(line) for line in
            (ROOT / "examples/honeycomb/data/eval.jsonl").read_text().splitlines()][:2]
    seeds = [json.loads(line) for line in
             (ROOT / "examples/honeycomb/data/seeds.jsonl").read_text().splitlines()][:20]
    rows = pd.DataFrame(seeds + [{**seeds[0], "nlq": held[0]["nlq"].upper()},
                                 {**seeds[1], "nlq": "so, " + held[1]["nlq"] + " please"}])
    res = stage("decontaminate").run(rows)
    assert res.stats["rejected"] == 2 and len(res.kept) == 20
    assert res.rejected[REASON_CODE].tolist() == ["contaminated_exact", "contaminated_ngram"]
    assert res.rejected["_reference_match"].str.endswith(("eval.jsonl:1", "eval.jsonl:2")).all()
