"""Batch mode: every LLM stage's requests go through the Files and Batches APIs, and the
results come back through the same checks, cache and accounting as online replies."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from curate.errors import CurateError
from curate.llm import LLM, Request
from curate.llm.accounting import batch_price_of, cost_of
from curate.llm.batch import BatchesPending, BatchOptions, cancel_batches
from curate.llm.batch.state import state_path_for
from curate.llm.types import REQUEST_FAILED, TRUNCATED
from curate.progress import run_progress
from curate.stages.llm.augment import Augment
from curate.stages.llm.judge import Judge
from curate.stages.llm.repair import Repair
from curate.stages.llm.vote import Vote
from curate.testing import Fault, Reply, last_user_message
from curate.testing.batches import BatchServer

from conftest import SECRET, assert_accounted, make_llm

FAST = BatchOptions(poll_every=0.01, max_poll_every=0.05)


def number_in(body) -> int:
    return int(re.search(r"question (\d+)", last_user_message(body)).group(1))


def verdict(body) -> str:
    n = number_in(body)
    return json.dumps({"critique": f"checked question {n}", "outcome": "bad" if n % 3 == 0 else "good"})


def questions(n: int) -> pd.DataFrame:
    return pd.DataFrame({"nlq": [f"question {i}" for i in range(n)],
                         "query": [f"SELECT {i}" for i in range(n)]})


def online_requests(server) -> int:
    """Chat requests the server answered outside a batch."""
    return server.received - server.lines_processed


def input_lines(server, number: int = 1) -> list[dict]:
    file_id = server.batches[f"batch_{number}"]["input_file_id"]
    return [json.loads(line) for line in server.files[file_id]["content"].splitlines()]


def test_judge_in_batch_mode_uses_one_batch_and_a_rerun_costs_nothing(tmp_path):
    with BatchServer(verdict) as server:
        llm = make_llm(server, tmp_path, model="gpt-4o-mini", batch=FAST)
        df = questions(12)
        result = Judge(llm, fields=["nlq", "query"]).run(df)
        assert server.api_calls["upload"] == 1 and server.api_calls["create"] == 1
        assert server.lines_processed == 12 and online_requests(server) == 0
        assert len(result.kept) == 8 and len(result.rejected) == 4
        assert_accounted(df, result)
        lines = input_lines(server)
        assert {(line["method"], line["url"]) for line in lines} == {("POST", "/v1/chat/completions")}
        requests = [llm.resolve(Request(line["body"]["messages"], temperature=0.0,
                                        schema=Judge(llm, fields=["nlq"]).schema))
                    for line in lines]
        assert [line["custom_id"] for line in lines] == [llm.key(r) for r in requests]
        stats = result.stats
        assert stats["llm"]["batched"] == 12 and stats["llm"]["requests"] == 12
        [batch] = stats["batches"]
        assert batch["batch_id"] == "batch_1" and batch["status"] == "completed"
        assert batch["requests"] == 12 and batch["completed"] == 12
        online = cost_of("gpt-4o-mini", stats["llm"]["prompt_tokens"],
                         stats["llm"]["completion_tokens"])
        assert stats["llm"]["cost_usd"] == pytest.approx(online / 2, abs=1e-6) and online > 1e-5
        assert json.loads(state_path_for(tmp_path / "llm.sqlite").read_text())["batches"] == {}

        calls = sum(server.api_calls.values())
        again = Judge(llm, fields=["nlq", "query"]).run(df)
        assert sum(server.api_calls.values()) == calls and server.lines_processed == 12
        assert again.stats["llm"]["cached"] == 12 and "batches" not in again.stats
        assert again.kept["outcome"].tolist() == result.kept["outcome"].tolist()


def test_every_llm_stage_honours_batch_mode(tmp_path):
    def reply(body):
        text = last_user_message(body)
        if "Problems:" in text:
            return "SELECT fixed"
        if "Reword" in text:
            return json.dumps({"nlq": "reworded " + text[-12:]})
        if "answer" in text:
            return "The answer is 4"
        return verdict(body)

    with BatchServer(reply) as server:
        llm = make_llm(server, tmp_path, batch=FAST)
        df = questions(6)
        stages = [Augment(llm, prompt=lambda row: f"Reword {row['nlq']}", n=2),
                  Judge(llm, fields=["nlq", "query"]),
                  Repair(llm, field="query", feedback=lambda row: "wrong table"),
                  Vote(llm, prompt=lambda row: f"What is the answer to {row['nlq']}?", n=3)]
        expected = [12, 6, 6, 18]
        for stage, lines in zip(stages, expected):
            before = server.lines_processed
            result = stage.run(df)
            assert server.lines_processed - before == lines, stage.name
            assert result.stats["llm"]["batched"] == lines, stage.name
            assert result.stats["batches"][0]["status"] == "completed", stage.name
            assert_accounted(df, result)
        assert online_requests(server) == 0


def test_structured_output_fields_are_sent_in_each_line(tmp_path):
    with BatchServer(verdict, dialect="openai") as server:
        llm = make_llm(server, tmp_path, batch=FAST)
        result = Judge(llm, fields=["nlq", "query"]).run(questions(3))
        body = input_lines(server)[0]["body"]
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["strict"] is True
        assert server.constrained == 3 and len(result.kept) + len(result.rejected) == 3


def test_truncated_and_withheld_lines_are_failures_not_data(tmp_path):
    def reply(body):
        n = number_in(body)
        if n == 1:
            return Reply('{"critique": "cut', finish_reason="length")
        if n == 2:
            return Reply("", finish_reason="content_filter")
        return verdict(body)

    with BatchServer(reply) as server:
        llm = make_llm(server, tmp_path, batch=FAST)
        df = questions(4)
        result = Judge(llm, fields=["nlq", "query"]).run(df)
        codes = dict(zip(result.errored["nlq"], result.errored["_reason_code"]))
        assert codes == {"question 1": TRUNCATED, "question 2": "llm_refused"}
        assert result.stats["llm"]["truncated"] == 1
        assert server.lines_processed == 4  # neither is sent again: the same request fails again
        assert_accounted(df, result)


def test_the_corrective_retry_round_is_another_batch(tmp_path):
    def reply(body):
        if "could not be used" in last_user_message(body):
            return json.dumps({"critique": "fine now", "outcome": "good"})
        return "not json at all" if number_in(body) % 2 else verdict(body)

    with BatchServer(reply) as server:
        llm = make_llm(server, tmp_path, batch=FAST)
        result = Judge(llm, fields=["nlq", "query"]).run(questions(6))
        assert server.api_calls["create"] == 2 and server.lines_processed == 9
        assert [b["requests"] for b in result.stats["batches"]] == [6, 3]
        assert result.stats["replies"]["parsed"] == 6 and len(result.errored) == 0


def test_large_calls_split_within_the_request_and_byte_limits(tmp_path):
    with BatchServer(verdict) as server:
        llm = make_llm(server, tmp_path, batch=BatchOptions(poll_every=0.01, max_poll_every=0.05,
                                                             max_requests=3))
        result = Judge(llm, fields=["nlq", "query"]).run(questions(7))
        assert server.api_calls["create"] == 3
        assert sorted(len(input_lines(server, n)) for n in (1, 2, 3)) == [1, 3, 3]
        assert server.lines_processed == 7 and len(result.errored) == 0
        size = max(len(server.files[b["input_file_id"]]["content"]) for b in server.batches.values())

    with BatchServer(verdict) as server:
        small = BatchOptions(poll_every=0.01, max_poll_every=0.05, max_bytes=size // 3 + 1)
        llm = make_llm(server, tmp_path / "bytes", batch=small)
        df = questions(4)
        df.loc[3, "nlq"] = "question 3 " + "x" * size  # larger than a whole input file
        result = Judge(llm, fields=["nlq", "query"]).run(df)
        assert all(f["bytes"] <= small.max_bytes for f in server.files.values()
                   if f["purpose"] == "batch")
        assert server.api_calls["create"] >= 2 and server.lines_processed == 3
        [reason] = result.errored["_reason"].tolist()
        assert "larger than a batch input file" in reason


def test_failed_lines_are_resubmitted_alone_and_bounded(tmp_path):
    seen: dict[int, int] = {}

    def fault(body, index):
        n = number_in(body)
        seen[n] = seen.get(n, 0) + 1
        if n == 1 and seen[n] == 1:
            return Fault.status(503, message="overloaded")  # once: the next batch answers it
        if n == 2:
            return Fault.status(500, message="always broken")
        if n == 3:
            return Fault.status(400, message="bad request body")  # not worth another batch
        return None

    with BatchServer(verdict, fault=fault) as server:
        llm = make_llm(server, tmp_path, batch=FAST)
        df = questions(6)
        result = Judge(llm, fields=["nlq", "query"]).run(df)
        assert [b["requests"] for b in result.stats["batches"]] == [6, 2, 1]
        assert seen == {0: 1, 1: 2, 2: 3, 3: 1, 4: 1, 5: 1}
        reasons = dict(zip(result.errored["nlq"], result.errored["_reason"]))
        assert set(reasons) == {"question 2", "question 3"}
        assert reasons["question 2"].startswith("HTTP 500: always broken")
        assert "gave up after 3 batches" in reasons["question 2"]
        assert reasons["question 3"].startswith("HTTP 400: bad request body")
        assert set(result.errored["_reason_code"]) == {REQUEST_FAILED}
        assert max(server.paid.values()) == 1 and len(server.paid) == 4
        assert_accounted(df, result)


def test_an_expired_batch_resubmits_only_the_requests_it_did_not_answer(tmp_path):
    with BatchServer(verdict, expire=lambda number: 4 if number == 1 else None) as server:
        llm = make_llm(server, tmp_path, batch=FAST)
        df = questions(10)
        result = Judge(llm, fields=["nlq", "query"]).run(df)
        assert server.status_of("batch_1") == "expired"
        assert len(input_lines(server, 2)) == 6
        assert {line["custom_id"] for line in input_lines(server, 2)}.isdisjoint(
            line["custom_id"] for line in input_lines(server, 1)[:4])
        assert server.lines_processed == 10 and set(server.paid.values()) == {1}
        assert len(result.kept) + len(result.rejected) == 10
        assert [b["status"] for b in result.stats["batches"]] == ["expired", "completed"]


def test_a_batch_that_keeps_expiring_errors_its_rows_with_the_reason(tmp_path):
    with BatchServer(verdict, expire=lambda number: 0) as server:
        llm = make_llm(server, tmp_path, batch=BatchOptions(poll_every=0.01,
                                                             max_poll_every=0.05, max_rounds=2))
        df = questions(3)
        result = Judge(llm, fields=["nlq", "query"], max_errored=1.0).run(df)
        assert server.api_calls["create"] == 2 and server.lines_processed == 0
        reasons = set(result.errored["_reason"])
        assert len(result.errored) == 3 and len(reasons) == 1
        assert reasons.pop().startswith("batch_expired: This request could not be executed")


def test_429_on_create_is_retried_after_retry_after(tmp_path):
    with BatchServer(verdict) as server:
        server.inject_api("create", Fault.status(429, retry_after=0.05))
        llm = make_llm(server, tmp_path, batch=FAST)
        result = Judge(llm, fields=["nlq", "query"]).run(questions(3))
        assert server.api_calls["create"] == 2 and len(server.batches) == 1
        assert len(result.errored) == 0 and result.stats["llm"]["retried"] == 1


def test_slow_batch_shows_its_state_counts_and_elapsed_time(tmp_path, capsys):
    with BatchServer(verdict, in_progress_seconds=0.3, line_seconds=0.01) as server:
        llm = make_llm(server, tmp_path, batch=FAST)
        with run_progress(plain=True):
            result = Judge(llm, fields=["nlq", "query"]).run(questions(5))
        polls = server.api_calls["retrieve"]
    err = capsys.readouterr().err
    assert "batch batch_1: in_progress, 0/5 completed, 0 failed" in err
    assert re.search(r"batch batch_1: completed, 5/5 completed, 0 failed, \d+ s since submitted", err)
    assert polls >= 3 and result.stats["batches"][0]["seconds"] >= 0.3


def test_the_key_never_reaches_the_state_file_stats_or_reasons(tmp_path):
    with BatchServer(verdict, in_progress_seconds=0.2) as server:
        server.inject_api("create", *[Fault.status(500, message="echo {authorization}")] * 3)
        llm = make_llm(server, tmp_path, batch=FAST)  # max_tries=3: create fails for good
        result = Judge(llm, fields=["nlq", "query"], max_errored=1.0).run(questions(2))
        state = state_path_for(tmp_path / "llm.sqlite").read_text()
        assert SECRET not in state and "uploaded" in state
        reason = result.errored["_reason"].iloc[0]
        assert SECRET not in reason and "***" in reason and "rerun to resume" in reason
        assert SECRET not in json.dumps(result.stats, default=str)

        result = Judge(llm, fields=["nlq", "query"], max_errored=1.0).run(questions(2))  # resumes: no new upload
        assert server.api_calls["upload"] == 1 and len(server.batches) == 1
        assert len(result.errored) == 0
        assert json.loads(state_path_for(tmp_path / "llm.sqlite").read_text())["batches"] == {}


def test_max_wait_stops_in_one_line_and_a_rerun_collects_the_same_batch(tmp_path):
    with BatchServer(verdict, in_progress_seconds=0.3) as server:
        eager = BatchOptions(poll_every=0.01, max_poll_every=0.05, max_wait=0)
        llm = make_llm(server, tmp_path, batch=eager)
        with pytest.raises(BatchesPending) as stopped:
            Judge(llm, fields=["nlq", "query"]).run(questions(4))
        message = str(stopped.value)
        assert message.startswith("4 request(s) are still in batch(es) batch_1 (in_progress)")
        assert "max_wait=0s ran out" in message and "running again collects them" in message
        assert "\n" not in message
        llm = make_llm(server, tmp_path, batch=FAST)
        second = Judge(llm, fields=["nlq", "query"], max_errored=1.0).run(questions(4))
        assert len(server.batches) == 1 and server.api_calls["upload"] == 1
        assert len(second.errored) == 0 and second.stats["batches"][0]["resumed"] is True


def test_a_provider_that_cannot_be_polled_stops_the_call_and_a_rerun_resumes(tmp_path):
    with BatchServer(verdict, in_progress_seconds=0.1) as server:
        server.inject_api("retrieve", *[Fault.status(503, message="down")] * 3)
        llm = make_llm(server, tmp_path, batch=FAST)
        with pytest.raises(BatchesPending, match="check batch batch_1: HTTP 503: down"):
            Judge(llm, fields=["nlq", "query"]).run(questions(3))
        result = Judge(llm, fields=["nlq", "query"]).run(questions(3))
        assert len(server.batches) == 1 and len(result.errored) == 0


def test_cancel_batches_cancels_what_is_in_flight(tmp_path):
    with BatchServer(verdict, in_progress_seconds=5) as server:
        llm = make_llm(server, tmp_path, batch=BatchOptions(poll_every=0.01, max_wait=0))
        with pytest.raises(BatchesPending):
            Judge(llm, fields=["nlq", "query"]).run(questions(3))
        assert cancel_batches(llm) == ["batch_1"]
        assert server.status_of("batch_1") in ("cancelling", "cancelled")
        llm = make_llm(server, tmp_path, batch=BatchOptions(poll_every=0.01, max_rounds=1))
        result = Judge(llm, fields=["nlq", "query"], max_errored=1.0).run(questions(3))
        assert server.status_of("batch_1") == "cancelled" and len(server.batches) == 1
        assert result.errored["_reason"].str.startswith("batch_cancelled").all()


def test_an_endpoint_without_a_batch_api_errors_rows_in_one_line(tmp_path):
    from curate.testing import ScriptedServer

    with ScriptedServer(verdict) as server:
        llm = make_llm(server, tmp_path, batch=FAST)
        result = Judge(llm, fields=["nlq", "query"], max_errored=1.0).run(questions(2))
        reason = result.errored["_reason"].iloc[0]
        assert reason.startswith("upload the batch input file: HTTP 404") and "\n" not in reason
        assert server.received == 0


def test_batch_prices_discount_the_online_price_unless_set():
    online = batch_price_of("gpt-4o-mini")
    assert online == pytest.approx((0.075, 0.30))
    assert batch_price_of("gpt-4o-mini", discount=0.6) == pytest.approx((0.09, 0.36))
    assert batch_price_of("gpt-4o-mini", batch_table={"gpt-4o": (1.0, 2.0)}) == (1.0, 2.0)
    assert batch_price_of("my-model", table={"my-model": (1.0, 4.0)}) == (0.5, 2.0)
    assert batch_price_of("unlisted") is None


def test_batch_mode_needs_the_cache_and_an_endpoint(tmp_path):
    with pytest.raises(CurateError, match="needs the response cache"):
        LLM("m", base_url="http://127.0.0.1:9/v1", cache=False, batch=True)
    with pytest.raises(CurateError, match="batch must be"):
        LLM("m", base_url="http://127.0.0.1:9/v1", batch="yes")
