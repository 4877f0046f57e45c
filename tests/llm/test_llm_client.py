"""The client against a real HTTP server on loopback: retries, limits, faults, accounting."""
from __future__ import annotations

import asyncio
import time

import pytest
from conftest import SECRET, make_llm

from curate.errors import CurateError
from curate.llm import LLM, REQUEST_FAILED, TRUNCATED, Completion, Failure, Request, Usage
from curate.llm.limits import RateLimiter
from curate.llm.wire import retry_after
from curate.testing import Fault, Reply, ScriptedServer


def test_replies_come_back_in_order_with_token_counts(server, tmp_path):
    server.reply = lambda body: Reply(f"re: {body['messages'][-1]['content']}",
                                      prompt_tokens=7, completion_tokens=3)
    usage = Usage()
    results = make_llm(server, tmp_path).complete_many(
        [Request(f"q{i}") for i in range(10)], usage=usage)
    assert [r.text for r in results] == [f"re: q{i}" for i in range(10)]
    assert all(isinstance(r, Completion) and r.finish_reason == "stop" for r in results)
    assert usage.requests == 10 and usage.cached == 0 and usage.failed == 0
    assert (usage.prompt_tokens, usage.completion_tokens) == (70, 30)


def test_sampling_parameters_reach_the_endpoint(server, tmp_path):
    llm = make_llm(server, tmp_path, temperature=0.2, max_tokens=50, seed=7)
    llm.complete_many([Request("a", sample=0), Request("a", sample=2, temperature=0.9,
                                                        stop=["\n\n"])])
    first, second = sorted(server.bodies, key=lambda b: b["seed"])
    assert (first["temperature"], first["max_tokens"], first["seed"]) == (0.2, 50, 7)
    assert (second["temperature"], second["seed"], second["stop"]) == (0.9, 9, ["\n\n"])
    assert first["model"] == "scripted"


def test_retries_are_bounded_and_reported(server, tmp_path):
    server.reply = lambda body: Fault.status(500)
    usage = Usage()
    result = make_llm(server, tmp_path, max_tries=4).complete_many([Request("x")], usage=usage)[0]
    assert isinstance(result, Failure) and result.code == REQUEST_FAILED
    assert "HTTP 500" in result.reason and "4 tries" in result.reason
    assert server.received == 4 and result.attempts == 4
    assert (usage.requests, usage.retried, usage.failed) == (4, 3, 1)


def test_client_errors_are_not_retried(server, tmp_path):
    server.reply = lambda body: Fault.status(400, message="unknown parameter 'foo'")
    result = make_llm(server, tmp_path).complete("x")
    assert isinstance(result, Failure) and server.received == 1
    assert "HTTP 400: unknown parameter 'foo'" in result.reason


def test_retry_after_is_honoured(server, tmp_path):
    server.inject(Fault.status(429, retry_after=0.3))
    usage = Usage()
    result = make_llm(server, tmp_path, backoff=0.001).complete_many([Request("x")], usage=usage)[0]
    assert result.ok and result.attempts == 2 and usage.retried == 1
    assert server.arrivals[1] - server.arrivals[0] >= 0.3


def test_retry_after_longer_than_allowed_fails_the_request(server, tmp_path):
    server.reply = lambda body: Fault.status(429, retry_after=3600)
    result = make_llm(server, tmp_path, max_retry_after=5).complete("x")
    assert isinstance(result, Failure) and server.received == 1
    assert "wait 3600s" in result.reason


@pytest.mark.parametrize("fault", [Fault.status(503), Fault.slow(1.5), Fault.drop(),
                                   Fault.malformed()], ids=["503", "timeout", "drop", "malformed"])
def test_transient_faults_are_retried(server, tmp_path, fault):
    server.inject(fault)
    start = time.monotonic()
    result = make_llm(server, tmp_path, timeout=0.3).complete("hello")
    assert isinstance(result, Completion) and result.text == "hello"
    assert result.attempts == 2 and server.received == 2
    assert time.monotonic() - start < 1.2  # a slow reply is abandoned at the timeout


def test_length_finish_is_a_failure_not_data(server, tmp_path):
    server.reply = lambda body: Reply('{"critique": "the query lacks', finish_reason="length")
    usage = Usage()
    result = make_llm(server, tmp_path).complete_many([Request("x")], usage=usage)[0]
    assert isinstance(result, Failure) and result.code == TRUNCATED
    assert result.text.startswith('{"critique"') and usage.truncated == 1


def test_concurrency_is_bounded(tmp_path):
    with ScriptedServer(latency=0.1) as srv:
        start = time.monotonic()
        make_llm(srv, tmp_path, concurrency=4).complete_many([Request(f"{i}") for i in range(12)])
        elapsed = time.monotonic() - start
    assert 1 < srv.max_in_flight <= 4
    assert elapsed >= 0.3  # 12 requests, 4 at a time, 0.1 s each


def test_requests_per_minute_limit_paces_requests(server, tmp_path):
    start = time.monotonic()
    make_llm(server, tmp_path, rpm=1200).complete_many([Request(f"{i}") for i in range(30)])
    # one second's burst (20), then 20 per second: the last 10 need half a second
    assert time.monotonic() - start >= 0.45


def test_tokens_per_minute_limit_waits_for_budget():
    async def run():
        limiter = RateLimiter(tpm=6000)  # 100 tokens per second, burst of 100
        start = time.monotonic()
        for _ in range(3):
            await limiter.acquire(50)
        return time.monotonic() - start

    assert 0.45 <= asyncio.run(run()) < 1.5


def test_retry_after_header_forms():
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "250"}) == 0.25
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({}) is None


def test_works_inside_a_running_event_loop(server, tmp_path):
    llm = make_llm(server, tmp_path)

    async def notebook_cell():
        return llm.complete_many([Request("from a notebook")])

    assert asyncio.run(notebook_cell())[0].text == "from a notebook"


def test_identical_requests_are_sent_once(server, tmp_path):
    results = make_llm(server, tmp_path).complete_many([Request("same")] * 5)
    assert [r.text for r in results] == ["same"] * 5 and server.received == 1


def test_cost_comes_from_the_price_table(server, tmp_path):
    server.reply = lambda body: Reply("ok", prompt_tokens=1000, completion_tokens=500)
    usage = Usage()
    llm = make_llm(server, tmp_path, prices={"scripted": (1.0, 2.0)})
    llm.complete_many([Request("a"), Request("b")], usage=usage)
    assert usage.cost_usd == pytest.approx(2 * (1000 * 1.0 + 500 * 2.0) / 1e6)
    assert llm.usage.cost_usd == pytest.approx(usage.cost_usd)
    assert "$0.0040" in usage.summary()


def test_endpoint_from_the_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("CURATE_LLM_MODEL", "env-model")
    llm = LLM(cache=False)
    assert llm.backend is None and llm.complete("hi").text == "hi"
    assert server.bodies[0]["model"] == "env-model"


def test_an_endpoint_without_a_model_is_a_clear_error(server):
    with pytest.raises(CurateError, match="no model named"):
        LLM(base_url=server.base_url)


def test_no_endpoint_means_the_embedded_model():
    llm = LLM(cache=False)
    assert llm.backend is not None and llm.base_url is None
    assert llm.model == "SmolLM2-135M-Instruct.Q4_1"


def test_models_endpoint_and_a_picklable_client(server, tmp_path):
    import pickle

    import openai

    listed = openai.OpenAI(base_url=server.base_url, api_key="x").models.list()
    assert [m.id for m in listed.data] == ["scripted"]
    llm = make_llm(server, tmp_path, rpm=600)
    llm.complete("warm the limiter and the usage counters")
    copy = pickle.loads(pickle.dumps(llm))  # a stage can be shipped to a worker process
    assert copy.complete("again").text == "again" and copy.usage.requests == 2


@pytest.mark.slow  # seconds of loopback traffic at a real pace
def test_tpm_holds_for_text_of_one_character_a_token(tmp_path):
    """CJK text is about one token a character, not four: the estimate is corrected from the
    prompt tokens the endpoint reports, so the tokens it counts stay within the limit.
    tpm=60,000 is 1,000 tokens a second with a bucket of 1,000; 24 requests of 200
    characters and a 10-token reply budget count 211 tokens each at the server."""
    sent = []  # (arrival, tokens the server counts for the request)

    def count(body, reply):
        prompt = sum(len(m["content"]) for m in body["messages"])
        sent.append((time.monotonic(), prompt + body["max_tokens"]))
        return prompt, len(reply)

    text = "数据集的质量决定了模型的上限" * 15  # 210 characters
    with ScriptedServer(lambda b: "好", usage=count) as server:
        llm = make_llm(server, tmp_path, tpm=60_000, cache=False)
        results = llm.complete_many([Request(f"{i:02d}{text[:198]}", max_tokens=10)
                                     for i in range(24)])
    assert all(r.ok for r in results) and results[0].prompt_tokens == 200
    total = sum(tokens for _, tokens in sent)
    seconds = max(t for t, _ in sent) - min(t for t, _ in sent)
    # a token bucket lets through its 1,000-token bucket plus 1,000 tokens a second
    assert total <= 1000 + 1000 * seconds * 1.05 + 211, (total, seconds)


def test_a_named_model_without_an_endpoint_is_refused_in_one_line(monkeypatch):
    with pytest.raises(CurateError) as error:
        LLM("gpt-4o-mini")
    message = str(error.value)
    assert "'gpt-4o-mini'" in message and "\n" not in message
    assert "OPENAI_BASE_URL" in message and "OPENAI_API_KEY" in message
    monkeypatch.setenv("CURATE_LLM_MODEL", "my-model")
    with pytest.raises(CurateError, match="CURATE_LLM_MODEL names the model 'my-model'"):
        LLM()
    monkeypatch.delenv("CURATE_LLM_MODEL")
    assert LLM(cache=False).backend is not None  # unnamed: the embedded demo model
