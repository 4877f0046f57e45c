"""What every LLM stage shares through LLMStage: one prompt signature, one failure policy
(on_failure), row errors for raising user functions, outputs that never overwrite, health."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import assert_accounted, make_llm

from curate import Augment, Judge, Pipeline, Repair, ReportOptions, Vote
from curate.errors import StageError
from curate.testing import Fault

ROWS = pd.DataFrame({"q": ["alpha", "boom", "gamma", "delta"]})


def raising_prompt(row, examples=(), feedback=""):
    if row["q"] == "boom":
        raise ValueError("no prompt for boom")
    return f"row: {row['q']}"


def stages(llm):
    return {
        "augment": Augment(llm, raising_prompt, lambda row, reply: {"q": reply["q"]},
                           schema={"type": "object", "properties": {"q": {"type": "string"}},
                                   "required": ["q"]}),
        "judge": Judge(llm, fields=["q"], prompt=raising_prompt),
        "repair": Repair(llm, raising_prompt, field="q"),
        "vote": Vote(llm, raising_prompt, n=2, tie="first"),
    }


def reply(body):
    text = body["messages"][-1]["content"]
    if "gamma" in text:
        return Fault.status(400, message="bad request")
    return json.dumps({"q": "new " + text, "critique": "fine", "outcome": "good"}) + \
        " The answer is 7."


@pytest.mark.parametrize("name", ["augment", "judge", "repair", "vote"])
def test_a_raising_prompt_errors_its_row_and_the_others_go_on(server, tmp_path, name):
    server.reply = reply
    stage = stages(make_llm(server, tmp_path, max_tries=1))[name]
    result = stage.run(ROWS)
    assert_accounted(ROWS, result)
    errored = result.errored.set_index("q")
    assert errored.loc["boom", "_reason_code"] == "prompt_raised"
    assert "ValueError: no prompt for boom" in errored.loc["boom", "_reason"]
    assert errored.loc["boom", "_source"] == "<DataFrame>:2"
    assert not any("boom" in json.dumps(b) for b in server.bodies)


@pytest.mark.parametrize("name", ["judge", "repair", "vote"])
@pytest.mark.parametrize("policy", ["error", "keep", "reject"])
def test_on_failure_is_one_vocabulary(server, tmp_path, name, policy):
    """The row whose request failed ('gamma') is errored, kept as it was, or rejected."""
    server.reply = reply
    llm = make_llm(server, tmp_path, max_tries=1)
    stage = type(stages(llm)[name])
    kwargs = {"judge": dict(fields=["q"]), "repair": dict(field="q"),
              "vote": dict(n=2, tie="first")}[name]
    prompt = None if name == "judge" else (lambda row: f"row: {row['q']}")
    built = stage(llm, prompt, on_failure=policy, **kwargs) if prompt else \
        stage(llm, on_failure=policy, **kwargs)
    result = built.run(ROWS.drop(index=1))
    where = {"error": result.errored, "keep": result.kept, "reject": result.rejected}[policy]
    assert "gamma" in set(where["q"])
    if policy != "keep":
        assert where.set_index("q").loc["gamma", "_reason_code"] == "llm_request_failed"
    assert result.stats["replies"]["request_failed"] >= 1


def test_a_prompt_asking_for_what_the_stage_does_not_offer_fails_when_built(server, tmp_path):
    llm = make_llm(server, tmp_path)
    with pytest.raises(StageError, match=r"asks for 'feedback', which this stage does not "
                                         r"provide \(it provides: examples\); write it as "
                                         r"prompt\(row, examples\)"):
        Augment(llm, lambda row, feedback: "x")
    with pytest.raises(StageError, match="on_failure must be one of error, keep, reject"):
        Judge(llm, fields=["q"], on_failure="drop")


def test_outputs_are_renamed_and_never_overwrite_an_input_column(server, tmp_path):
    server.reply = lambda body: '{"critique": "ok", "outcome": "good"}'
    llm = make_llm(server, tmp_path)
    judged = Judge(llm, fields=["q"], outputs={"critique": "why"}).run(ROWS)
    assert judged.kept["why"].tolist() == ["ok"] * 4 and "critique" not in judged.kept
    with pytest.raises(StageError, match="the input already has a column 'outcome'"):
        Judge(llm, fields=["q"]).run(ROWS.assign(outcome="mine"))


def test_a_stage_that_produced_nothing_says_so(server, tmp_path):
    server.reply = lambda body: "no json here"
    result = Augment(make_llm(server, tmp_path), lambda row: "vary " + row["q"]).run(ROWS)
    assert result.stats["produced"] == 0
    assert result.stats["warnings"] == ["produced no new rows from 4 requests "
                                        "(llm_parse_failed: 4)"]
    assert result.stats["replies"] == {"requests": 4, "parsed": 0, "parse_failed": 4,
                                       "truncated": 0, "request_failed": 0, "refused": 0}


def test_the_report_shows_the_cost_card_of_an_llm_run(server, tmp_path):
    from curate.llm import set_price

    set_price("priced-model", 1000.0, 2000.0)
    server.reply = lambda body: '{"critique": "looks right", "outcome": "good"}'
    llm = make_llm(server, tmp_path, model="priced-model")
    pipe = Pipeline(source=ROWS, stages=[Judge(llm, fields=["q"])],
                    report=ReportOptions(text_field="q"))
    run = pipe.run(tmp_path / "run", progress=False)
    html = (tmp_path / "run/report.html").read_text()
    cost = run.manifest["llm_computed"]["cost_usd"]
    assert cost > 0 and f'id="llm-cost">${cost:.4f}' in html
    assert "looks right" in html  # the critiques section reads the Judge's declared columns


def test_the_funnel_and_report_flag_an_llm_stage_that_produced_nothing(server, tmp_path, capsys):
    from rich.console import Console

    from curate.pipeline.summary import print_funnel

    server.reply = lambda body: "not json"
    pipe = Pipeline(source=ROWS, stages=[Augment(make_llm(server, tmp_path),
                                                 lambda row: "vary " + row["q"], name="aug")])
    run = pipe.run(tmp_path / "run", progress=False)
    console = Console(record=True, width=160)
    print_funnel(run.manifest, tmp_path / "run", console=console)
    text = console.export_text()
    assert "LLM stages" in text and "produced nothing" in text
    line = next(l for l in text.splitlines() if l.strip().startswith("│ aug") and "nothing" in l)
    assert [c.strip() for c in line.split("│")[2:8]] == ["4", "0", "4", "0", "0", "0"]
    html = (tmp_path / "run/report.html").read_text()
    assert 'class="llm-row flagged"' in html and "failing replies" in html and "not json" in html


def test_the_funnel_and_report_flag_an_llm_stage_whose_requests_mostly_failed(server, tmp_path):
    from rich.console import Console

    from curate.pipeline.summary import print_funnel

    def reply(body):
        n = int(body["messages"][-1]["content"].split("number ")[1].split()[0].strip('"'))
        return Fault.status(500, message="overloaded") if n < 8 else \
            '{"critique": "fine", "outcome": "good"}'

    server.reply = reply
    rows = pd.DataFrame({"q": [f"number {i}" for i in range(11)]})
    pipe = Pipeline(source=rows, stages=[Judge(make_llm(server, tmp_path), fields=["q"],
                                               on_failure="keep", name="judge")])
    run = pipe.run(tmp_path / "run", progress=False)
    [stage] = run.manifest["stages"]
    assert stage["replies"]["request_failed"] == 8 and stage["produced"] == 3
    assert stage["warnings"][0].startswith("8 of 11 requests gave no usable reply "
                                           "(llm_request_failed: 8)")
    console = Console(record=True, width=200)
    print_funnel(run.manifest, tmp_path / "run", console=console)
    line = next(l for l in console.export_text().splitlines() if l.strip().startswith("│ judge")
                and "failed" in l)
    assert line.split("│")[-2].strip() == "8 of 11 failed"
    html = (tmp_path / "run/report.html").read_text()
    assert 'class="llm-row flagged"' in html and "8 of 11 requests gave no usable reply" in html


def test_when_chooses_the_rows_any_llm_stage_works_on(server, tmp_path):
    server.reply = lambda body: '{"critique": "ok", "outcome": "bad"}'
    judge = Judge(make_llm(server, tmp_path), fields=["q"], when=lambda row: row["q"] < "c")
    result = judge.run(ROWS)
    assert server.received == 2 and result.stats["not_selected"] == 2
    assert sorted(result.rejected["q"]) == ["alpha", "boom"]
    assert sorted(result.kept["q"]) == ["delta", "gamma"] and result.kept["outcome"].isna().all()
