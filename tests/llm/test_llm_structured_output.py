"""Structured output in each endpoint's dialect, the fallback when a server refuses it, and
the client's behaviour with local servers (limits, queueing, invalid requests)."""
from __future__ import annotations

import json
import logging
import threading
import time

import pandas as pd
import pytest
from conftest import make_llm

from curate import Augment, Judge
from curate.llm import Request
from curate.llm.dialects import drop_added_nulls, strict_schema
from curate.testing import Fault, ScriptedServer

VERDICT = {"type": "object", "required": ["critique", "outcome"],
           "properties": {"critique": {"type": "string", "minLength": 1},
                          "outcome": {"enum": ["good", "bad"]}}}
AUGMENT = {"type": "object", "required": ["nlq", "query"], "additionalProperties": False,
           "properties": {"nlq": {"type": "string", "minLength": 1},
                          "query": {"type": "object"},
                          "swap": {"oneOf": [{"type": "null"},
                                             {"type": "array", "items": {"type": "string"},
                                              "minItems": 2, "maxItems": 2}]}}}
ROWS = pd.DataFrame({"nlq": ["slow requests", "errors by service", "p99 latency"]})


def prose(body):
    return "Well, I think this looks mostly fine to me."


@pytest.mark.parametrize("dialect", ["openai", "vllm", "llamacpp", "ollama"])
@pytest.mark.parametrize("setting", ["explicit", "auto"])
def test_each_dialect_sends_the_schema_in_its_form(tmp_path, dialect, setting):
    with ScriptedServer(prose, dialect=dialect) as server:
        llm = make_llm(server, tmp_path, structured=dialect if setting == "explicit" else "auto")
        result = Judge(llm, fields=["nlq"], schema=VERDICT).run(ROWS)
    assert len(result.kept) + len(result.rejected) == 3 and len(result.errored) == 0
    assert result.stats["replies"]["parsed"] == 3 and server.constrained == 3
    posts = [b for b in server.bodies if "messages" in b]
    body = posts[0]
    if dialect == "ollama":
        assert body["format"] == VERDICT and "response_format" not in body
    elif dialect == "llamacpp":
        assert body["response_format"] == {"type": "json_object", "schema": VERDICT}
    else:
        spec = body["response_format"]["json_schema"]
        assert body["response_format"]["type"] == "json_schema" and spec["name"]
        assert spec["schema"] == (strict_schema(VERDICT)[0] if dialect == "openai" else VERDICT)
        assert spec.get("strict", False) is (dialect == "openai")


def test_strict_mode_adaptation_is_accepted_and_its_nulls_are_dropped(tmp_path):
    strict, ok = strict_schema(AUGMENT)
    assert not ok  # "query" is a free-form object: strict mode cannot express it
    closed = {**AUGMENT, "properties": {**AUGMENT["properties"], "query": {
        "type": "object", "properties": {"limit": {"type": "integer"}}}}}
    strict, ok = strict_schema(closed)
    assert ok and strict["required"] == ["nlq", "query", "swap"]
    assert strict["properties"]["swap"] == {"anyOf": [{"type": "null"}, {
        "type": "array", "items": {"type": "string"}}]}
    assert strict["properties"]["query"]["properties"]["limit"]["type"] == ["integer", "null"]
    assert drop_added_nulls({"nlq": "a", "query": {"limit": None}, "swap": None}, closed) == \
        {"nlq": "a", "query": {}, "swap": None}  # swap may be null in the original schema

    def reply(body):
        return json.dumps({"nlq": "new", "query": {"limit": None}, "swap": None})

    with ScriptedServer(reply, dialect="openai") as server:
        stage = Augment(make_llm(server, tmp_path, structured="openai"), lambda row: row["nlq"],
                        schema=closed)
        result = stage.run(ROWS.head(1))
    assert result.stats["replies"]["parsed"] == 1
    assert result.kept["query"].iloc[1] == {}


@pytest.mark.parametrize("refusal", ["wrong dialect", "llama-cpp-python 500"])
def test_a_refused_structured_request_falls_back_once_and_says_so_once(tmp_path, caplog, refusal):
    def reply(body):
        return '{"critique": "fine", "outcome": "good"}'

    server = ScriptedServer(reply, dialect="llamacpp") if refusal == "wrong dialect" else \
        ScriptedServer(reply, dialect="llamacpp", refuse_structured=500)
    with caplog.at_level(logging.WARNING, logger="curate.llm"), server:
        llm = make_llm(server, tmp_path, structured="openai" if refusal == "wrong dialect"
                       else "llamacpp", max_tries=5)
        result = Judge(llm, fields=["nlq"], schema=VERDICT).run(ROWS)
        again = Judge(llm, fields=["nlq"], schema=VERDICT, name="again",
                      temperature=0.1).run(ROWS)
    warnings = [r for r in caplog.records if "refused a structured-output request" in r.message]
    assert len(warnings) == 1
    assert len(result.kept) == 3 and len(again.kept) == 3
    structured = [b for b in server.bodies if "response_format" in b]
    assert 1 <= len(structured) <= 3  # the requests already in flight when the first was refused
    assert not any("response_format" in b for b in server.bodies[-3:])  # plain from then on
    assert len(server.bodies) == len(structured) + 3 + 3


def test_structured_off_sends_no_schema(tmp_path):
    with ScriptedServer(lambda b: '{"critique": "x", "outcome": "bad"}', dialect="vllm") as server:
        Judge(make_llm(server, tmp_path, structured="off"), fields=["nlq"]).run(ROWS)
    assert not any("response_format" in b or "format" in b for b in server.bodies)


def test_a_5xx_saying_the_request_is_invalid_is_retried_once_only(tmp_path):
    fault = Fault.status(500, message="Invalid request: 'messages' must be a list")
    with ScriptedServer(lambda b: fault) as server:
        result = make_llm(server, tmp_path, max_tries=5).complete("hello")
        assert server.received == 2
    assert result.code == "llm_request_failed" and "gave up after 2 tries" in result.reason
    with ScriptedServer(lambda b: Fault.status(503)) as busy:
        make_llm(busy, tmp_path, max_tries=4, cache=False).complete("hello")
        assert busy.received == 4  # an ordinary 5xx keeps its retries


def test_the_timeout_counts_from_sending_not_from_queueing_in_the_client(tmp_path):
    with ScriptedServer(lambda b: "ok", latency=0.3) as server:
        llm = make_llm(server, tmp_path, concurrency=1, timeout=0.6, max_tries=1, cache=False)
        results = llm.complete_many([Request(f"q{i}") for i in range(4)])
    assert all(r.ok for r in results)  # the last one waited ~0.9 s in the client's queue


def _timed_requests(llm, n, max_tokens):
    start = time.perf_counter()
    results = llm.complete_many([Request(f"x{i}", max_tokens=max_tokens) for i in range(n)])
    assert all(r.ok for r in results)
    return time.perf_counter() - start


@pytest.mark.slow  # seconds of loopback traffic at a real pace
def test_tpm_holds_for_requests_larger_than_the_bucket(tmp_path):
    """tpm=60,000 is 1,000 tokens a second with a bucket of 1,000. A request estimated at
    1,508 tokens (its 1,500-token reply budget, 8 for its one message) is larger than the
    bucket: each is charged in full, so after the first the requests go out one every
    1.508 s, and the tokens sent between the first and the last stay at the limit (the old
    limiter charged each only the bucket's 1,000 and ran 50% over)."""
    with ScriptedServer(lambda b: "ok") as server:
        llm = make_llm(server, tmp_path, tpm=60_000, cache=False)
        seconds = _timed_requests(llm, 5, max_tokens=1500)
    rate = 4 * 1508 / seconds  # tokens a second after the first request
    assert 1000 * 0.9 <= rate <= 1000 * 1.05, rate


@pytest.mark.slow  # seconds of loopback traffic at a real pace
def test_limits_hold_for_one_client_shared_across_threads(tmp_path):
    with ScriptedServer(lambda b: "ok") as server:
        llm = make_llm(server, tmp_path, rpm=240, cache=False)  # 4 a second, a bucket of 4
        start = time.perf_counter()
        threads = [threading.Thread(target=lambda k=k: llm.complete_many(
            [Request(f"t{k}-{i}") for i in range(4)])) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - start
    assert server.received == 12
    assert 0.95 * (12 - 4) / 4 <= seconds <= (12 - 4) / 4 + 1.5
