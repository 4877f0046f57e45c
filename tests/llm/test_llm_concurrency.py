"""Self-tuning concurrency (AIMD within the client's ceiling) against loopback servers of
fixed capacity: one that queues what it cannot run, one that refuses it with 429."""
from __future__ import annotations

import logging

import pytest

from conftest import make_llm

from curate.llm import Request, Usage
from curate.llm.limits import Concurrency
from curate.testing import ScriptedServer


def _run(llm, n: int, tag: str = "q") -> Usage:
    usage = Usage()
    results = llm.complete_many([Request(f"{tag}{i}") for i in range(n)], usage=usage)
    assert all(r.ok for r in results), [r for r in results if not r.ok][:1]
    return usage


@pytest.mark.slow  # seconds of loopback traffic at a real pace
def test_a_server_with_room_gets_the_whole_ceiling(tmp_path):
    with ScriptedServer(lambda b: "ok", latency=0.5) as server:
        llm = make_llm(server, tmp_path, concurrency=16, timeout=10, cache=False)
        usage = _run(llm, 120)
    assert llm.endpoint.concurrency.limit == 16 and server.max_in_flight == 16
    assert usage.retried == 0


@pytest.mark.slow  # seconds of loopback traffic at a real pace
def test_a_queueing_server_of_fixed_capacity_is_kept_full_without_timeouts(tmp_path, caplog):
    """Four slots, 0.1 s a request, a ceiling of 128 and a 2 s timeout: all 128 at once would
    queue 3.2 s deep and time out; the client settles between the slots and about twice them
    (the slots stay busy, latency stays near twice a lone request's; additive increase may
    take the sawtooth a step or two past before the next cut) and says so once. The timeout
    leaves room for a slow-start window at 16 or 32 on a loaded machine."""
    with caplog.at_level(logging.WARNING, logger="curate.llm"), \
            ScriptedServer(lambda b: "ok", latency=0.1, slots=4) as server:
        llm = make_llm(server, tmp_path, concurrency=128, timeout=2.0, cache=False)
        usage = _run(llm, 160)
        settled = llm.endpoint.concurrency.allowed()
        server.reset_counts()
        again = _run(llm, 40, "r")
    # no timeout storm: a stall of the loaded machine may cost a retry, a queue would cost
    # dozens (all 128 at once time out from the 80th on)
    assert usage.retried + again.retried <= 2, (usage, again)
    assert 4 <= settled <= 10, settled
    assert 4 <= server.max_in_flight <= 10, server.max_in_flight
    notes = [r.message for r in caplog.records if "seems to run about" in r.message]
    assert len(notes) == 1 and "--parallel N" in notes[0] and "OLLAMA_NUM_PARALLEL" in notes[0]


@pytest.mark.slow  # seconds of loopback traffic at a real pace
def test_a_single_slot_server_is_said_once_and_sent_a_few_at_a_time(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="curate.llm"), \
            ScriptedServer(lambda b: "ok", latency=0.3, slots=1) as server:
        llm = make_llm(server, tmp_path, concurrency=8, timeout=20, cache=False)
        _run(llm, 30)
        server.reset_counts()
        _run(llm, 6, "r")
    notes = [r.message for r in caplog.records if "seems to run about" in r.message]
    assert len(notes) == 1
    assert llm.endpoint.concurrency.allowed() <= 4 and server.max_in_flight <= 4


@pytest.mark.slow  # seconds of loopback traffic at a real pace
def test_a_parallel_server_is_not_flagged(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="curate.llm"), \
            ScriptedServer(lambda b: "ok", latency=0.6) as server:
        llm = make_llm(server, tmp_path, concurrency=8, timeout=10, cache=False)
        _run(llm, 24)
    assert llm.endpoint.concurrency.queued is None and llm.endpoint.concurrency.limit == 8
    assert not [r for r in caplog.records if "seems to run about" in r.message]


def _refusing_run(tmp_path, **options) -> tuple:
    with ScriptedServer(lambda b: "ok", latency=0.1, slots=6, busy_status=429) as server:
        llm = make_llm(server, tmp_path, concurrency=32, timeout=5, max_tries=8,
                       cache=False, **options)
        results = llm.complete_many([Request(f"q{i}") for i in range(200)])
    return llm, server, sum(not r.ok for r in results)


@pytest.mark.slow  # seconds of loopback traffic at a real pace
def test_429s_beyond_the_capacity_lower_the_limit(tmp_path):
    """A server that refuses with 429 whatever finds its 6 slots taken: every request ends
    answered, the limit comes down near the capacity, and few requests are refused, where a
    fixed 32 in flight has most of every wave refused and gives some requests up."""
    llm, server, failed = _refusing_run(tmp_path)
    assert failed == 0 and server.answered == 200
    assert llm.endpoint.concurrency.allowed() <= 12
    assert server.refused < 0.25 * 200, server.refused
    fixed, fixed_server, _ = _refusing_run(tmp_path, adaptive=False)
    assert fixed.endpoint.concurrency.limit == 32
    assert fixed_server.refused > 2 * server.refused, (fixed_server.refused, server.refused)


def test_the_limit_stays_between_one_and_the_ceiling():
    tuner = Concurrency(8)
    for _ in range(20):
        tuner.overloaded(tuner.cuts)
    assert tuner.allowed() == 1
    for _ in range(200):  # replies at a steady latency: the limit climbs back, to the ceiling
        tuner.replied(tuner.cuts, 0.2, tuner.allowed())
    assert tuner.limit == 8
    stale = tuner.cuts
    tuner.overloaded(stale)
    tuner.overloaded(stale)  # a second refusal of a request sent before the cut: no second cut
    assert tuner.limit == 4
