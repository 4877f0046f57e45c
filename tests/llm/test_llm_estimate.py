"""--estimate: each LLM stage's requests, tokens and cost, worked out with nothing sent, and
close to what a completed run then spends."""
from __future__ import annotations

import itertools
import json
import re
import textwrap

import pandas as pd
import pytest

from curate.pipeline.estimate import estimate_pipeline
from curate.pipeline.__main__ import main
from curate.pipeline.spec import load_spec
from curate.stages.llm.judge import Judge
from curate.stages.llm.repair import Repair
from curate.testing import last_user_message
from curate.testing.batches import BatchServer

from conftest import make_llm

# A GPT-2-style pre-tokenization: each piece is at least one BPE token (common English words
# are exactly one), so its count is a lower bound of a real tokenizer's, fast and offline.
PIECES = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")
TOLERANCE = 0.25  # estimated prompt tokens within 25% of a real BPE tokenizer's, per stage
ABOVE_PIECES = 1.5  # and between 1x and 1.5x the pre-tokenization's lower bound

SPEC = textwrap.dedent('''
    import os
    from curate import LLM, Augment, Judge, Pipeline, Vote
    from curate.llm.batch import BatchOptions

    llm = LLM("gpt-4o-mini", base_url=os.environ["ESTIMATE_URL"], api_key="x", max_tokens=48,
              structured="off", batch=BatchOptions(poll_every=0.01, max_poll_every=0.05))
    rows = [{"nlq": f"how many checkout requests failed with a timeout in the last {i} hours "
                    f"on the payments service of region {i % 4}?",
             "query": f"COUNT WHERE status = 504 AND hours <= {i}"} for i in range(1, 13)]

    def reword(row):
        return ("Reword this question about telemetry without changing its meaning, and "
                "reply with a JSON object with the field nlq: " + row["nlq"])

    pipeline = Pipeline(source=rows, name="estimate-test", stages=[
        Augment(llm, prompt=reword, n=2),
        Judge(llm, fields=["nlq", "query"]),
        Vote(llm, prompt=lambda row: f"Answer briefly, then say The answer is N: {row['nlq']}",
             n=3),
    ])
''')


def billed_like_openai(count):
    """A server's usage function: prompt tokens as OpenAI counts a chat request (each
    message's tokens, 4 per message and 3 for the reply's priming), and the reply's."""
    def usage(body: dict, reply: str) -> tuple[int, int]:
        messages = body["messages"]
        return sum(count(m["content"]) for m in messages) + 4 * len(messages) + 3, count(reply)
    return usage


def pieces(text: str) -> int:
    return len(PIECES.findall(text))


@pytest.fixture(scope="module")
def bpe_count():
    """Token counts from a real BPE tokenizer available offline: the embedded SmolLM2's
    (not OpenAI's, but the same kind: byte-level BPE trained mostly on English and code)."""
    pytest.importorskip("gguf")
    from transformers import AutoTokenizer

    from curate.llm.backends import SMOLLM2_FILE, smollm2_path
    from curate.llm.backends.embedded import local_load
    try:
        folder = smollm2_path()
    except Exception as error:
        pytest.skip(str(error))
    with local_load():
        tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2_FILE,
                                                  local_files_only=True)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


REWORDED = itertools.count(1)


def reply(body: dict) -> str:
    text = last_user_message(body)
    if text.startswith("Reword"):  # the words rotated: the same length, a new question
        words = text.split("field nlq: ", 1)[1].split()
        turn = 1 + next(REWORDED) % (len(words) - 1)
        return json.dumps({"nlq": " ".join(words[turn:] + words[:turn])})
    if text.startswith("Answer"):
        return "Four checkouts failed. The answer is 4"
    return json.dumps({"critique": "the query counts the failed checkouts", "outcome": "good"})


def serve_spec(tmp_path, monkeypatch, count):
    server = BatchServer(reply, usage=billed_like_openai(count)).start()
    monkeypatch.setenv("ESTIMATE_URL", server.base_url)
    path = tmp_path / "spec.py"
    path.write_text(SPEC)
    return path, server


@pytest.fixture
def spec(tmp_path, monkeypatch):
    path, server = serve_spec(tmp_path, monkeypatch, pieces)
    yield path, server
    server.stop()


def estimate_then_run(path, server, out):
    pipeline = load_spec(path)
    estimate = {s.stage: s for s in estimate_pipeline(pipeline).stages}
    assert server.http_requests == 0
    run = pipeline.run(out, progress=False)
    return pipeline, estimate, {s["stage"]: s for s in run.manifest["stages"]}


def test_estimate_sends_nothing_and_prints_every_llm_stage(spec, capsys):
    path, server = spec
    assert main([str(path), "--estimate"]) == 0
    out = capsys.readouterr().out
    assert server.http_requests == 0 and server.received == 0
    assert "nothing was sent" in out and "characters/4" in out
    stages = {line.split()[0]: line.split() for line in out.splitlines()
              if line.split() and line.split()[0] in ("augment", "judge", "vote")}
    assert [stages[s][2:4] for s in ("augment", "judge", "vote")] == \
        [["12", "24"], ["36", "36"], ["36", "108"]]


def test_the_estimate_bounds_what_the_run_then_spends(spec, tmp_path):
    path, server = spec
    pipeline, estimate, stages = estimate_then_run(path, server, tmp_path / "run")
    for name, guess in estimate.items():
        actual = stages[name]["llm"]
        assert guess.requests == actual["requests"] == actual["batched"], name
        assert actual["prompt_tokens"] <= guess.prompt_tokens <= \
            ABOVE_PIECES * actual["prompt_tokens"], (name, guess.prompt_tokens, actual)
        assert actual["completion_tokens"] <= guess.completion_tokens, name
        assert actual["cost_usd"] <= guess.batch_usd < guess.online_usd, name
    assert [b["status"] for s in stages.values() for b in s["batches"]] == ["completed"] * 3

    again = {s.stage: s for s in estimate_pipeline(pipeline, out=tmp_path / "run").stages}
    assert all(s.cached == s.requests and s.online_usd == 0 for s in again.values())


@pytest.mark.slow
def test_estimated_prompt_tokens_are_within_tolerance_of_a_real_tokenizer(
        bpe_count, tmp_path, monkeypatch):
    path, server = serve_spec(tmp_path, monkeypatch, bpe_count)
    try:
        _, estimate, stages = estimate_then_run(path, server, tmp_path / "run")
    finally:
        server.stop()
    for name, guess in estimate.items():
        actual = stages[name]["llm"]["prompt_tokens"]
        assert abs(guess.prompt_tokens - actual) <= TOLERANCE * actual, (name, guess, actual)


def test_planned_requests_are_the_requests_a_run_sends(tmp_path):
    with BatchServer(reply) as server:
        llm = make_llm(server, tmp_path)
        df = pd.DataFrame({"nlq": [f"question {i}" for i in range(5)], "query": ["q"] * 5})
        stage = Judge(llm, fields=["nlq", "query"])
        before = stage.fingerprint()
        planned = stage.planned_requests(df)
        assert server.http_requests == 0 and stage.fingerprint() == before
        stage.run(df)
        assert sorted(json.dumps(r.messages) for r in planned) == \
            sorted(json.dumps(b["messages"]) for b in server.bodies)


def test_a_when_that_reads_an_earlier_llm_column_chooses_every_row(tmp_path):
    with BatchServer(reply) as server:
        llm = make_llm(server, tmp_path)
        df = pd.DataFrame({"nlq": [f"q {i}" for i in range(6)], "query": ["x"] * 6,
                           "n": range(6)})
        after_judge = Repair(llm, field="query", when=lambda row: row["outcome"] == "bad")
        assert len(after_judge.planned_requests(df, unknown_columns={"outcome"})) == 6
        on_source = Repair(llm, field="query", when=lambda row: row["n"] % 2 == 0)
        assert len(on_source.planned_requests(df, unknown_columns={"outcome"})) == 3
        assert server.http_requests == 0


def test_stages_without_an_llm_run_on_the_planned_rows(tmp_path):
    from curate import Filter, Pipeline, Sample

    with BatchServer(reply) as server:
        llm = make_llm(server, tmp_path)
        rows = [{"nlq": f"question {i}", "query": "q"} for i in range(40)]
        sample = Sample(n=20, seed=1)
        ending_in_1 = sum(r["nlq"].endswith("1") for r in sample.run(pd.DataFrame(rows)).kept
                          .to_dict("records"))
        pipeline = Pipeline(source=rows, stages=[
            sample, Filter(lambda row: row["nlq"].endswith("1")),
            Judge(llm, fields=["nlq", "query"])])
        [judged] = estimate_pipeline(pipeline).stages
        assert 0 < ending_in_1 < 20 and server.http_requests == 0
        assert (judged.rows, judged.requests) == (ending_in_1, ending_in_1)


def test_the_source_loads_inside_the_run_folders_cache_scope(tmp_path):
    # a source that calls an LLM with the default cache reads the run folder's cache
    from curate import Pipeline
    from curate.llm.cache import default_cache_path

    seen = []

    def source():
        seen.append(default_cache_path())
        return [{"nlq": "a question", "query": "q"}]

    estimate_pipeline(Pipeline(source=source, stages=[]), out=tmp_path / "run")
    assert seen == [tmp_path / "run" / "cache" / "llm.sqlite"]


WHEN_SPEC = textwrap.dedent('''
    import os
    from curate import LLM, Augment, Derive, Filter, Judge, Pipeline, Repair, Vote

    llm = LLM("scripted", base_url=os.environ["ESTIMATE_URL"], api_key="x", max_tokens=64)
    TEAMS = ["api", "web", "batch", "mobile"]
    rows = [{"nlq": f"how many {TEAMS[i % 4]} requests failed in hour {i}?",
             "query": f"COUNT WHERE team = {TEAMS[i % 4]} AND hour = {i}",
             "team": TEAMS[i % 4], "n": i} for i in range(48)]

    def per_minute(row):
        return [{"nlq": row["nlq"] + " per minute", "grain": "minute"}] if row["n"] % 2 else []

    pipeline = Pipeline(source=rows, name="when-test", stages=[
        Filter(lambda row: row["n"] % 6 != 5, name="drop_some"),
        Augment(llm, lambda row: "Reword: " + row["nlq"], when=lambda row: row["team"] != "mobile"),
        Derive(per_minute, name="per_minute"),
        Judge(llm, fields=["nlq", "query"], when=lambda row: row.get("grain") != "minute"),
        Repair(llm, field="query", check=lambda query: [] if "LIMIT" in query else ["no LIMIT"],
               when=lambda row: row["team"] in ("batch", "web"), max_attempts=2),
        Vote(llm, lambda row: "Answer: " + row["nlq"], n=3, when=lambda row: row["n"] < 24),
    ])
''')


def when_reply(body: dict) -> str:
    """Rewordings, verdicts (a few bad ones), repairs that pass on the second try, answers."""
    text = last_user_message(body)
    if text.startswith("Reword: "):
        return json.dumps({"nlq": "in other words: " + text[len("Reword: "):]})
    if text.startswith("Answer: "):
        return "The answer is 3"
    if "critique" in body["messages"][0]["content"]:
        bad = "hour 7?" in text or "hour 30?" in text
        return json.dumps({"critique": "checked", "outcome": "bad" if bad else "good"})
    return "COUNT LIMIT 10" if "still fails" in text else "COUNT"


def test_the_estimate_is_within_a_quarter_of_what_a_run_with_when_filters_sends(
        tmp_path, monkeypatch):
    """Filters, derived rows and `when` choices shape each LLM stage's rows as in the run:
    per stage, the requests estimated are within 25% of those the run sends first."""
    from curate.testing import ScriptedServer

    with ScriptedServer(when_reply) as server:
        monkeypatch.setenv("ESTIMATE_URL", server.base_url)
        path = tmp_path / "spec.py"
        path.write_text(WHEN_SPEC)
        pipeline = load_spec(path)
        estimate = {s.stage: s.requests for s in estimate_pipeline(pipeline).stages}
        assert server.received == 0
        run = pipeline.run(tmp_path / "run", progress=False)
    sent = {s["stage"]: s["replies"]["requests"] for s in run.manifest["stages"]
            if "replies" in s}
    assert set(estimate) == set(sent) == {"augment", "judge", "repair", "vote"}
    for name, requests in sent.items():
        assert requests > 0 and abs(estimate[name] - requests) <= 0.25 * requests, \
            (name, estimate[name], requests)
    print("\nrequests per stage, estimated vs sent:", {n: (estimate[n], sent[n]) for n in sent})
    assert estimate["augment"] == sent["augment"] == 32  # 40 rows left, 32 not mobile


def test_prices_can_be_set_for_the_estimate_and_bad_ones_are_one_line(spec, capsys):
    path, _ = spec
    assert main([str(path), "--estimate", "--price", "gpt-4o-mini=150,600"]) == 0
    total = next(line for line in capsys.readouterr().out.splitlines()
                 if line.startswith("total")).split()
    assert float(total[5]) > 1.0 and float(total[6]) == pytest.approx(float(total[5]) / 2,
                                                                     abs=1e-4)
    from curate.llm.accounting import price_of

    assert price_of("gpt-4o-mini") == (0.15, 0.60)  # --price held for that run, not the process
    with pytest.raises(SystemExit):
        main([str(path), "--estimate", "--price", "gpt-4o-mini=cheap"])
    err = capsys.readouterr().err
    assert "expected MODEL=IN,OUT" in err and "Traceback" not in err
