"""Batch mode survives a kill: recorded batches are polled again, never paid for twice."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from curate.llm.batch import BatchesPending, BatchOptions
from curate.llm.batch.run import BatchRun
from curate.llm.batch.state import BatchState, state_path_for
from curate.stages.llm.judge import Judge
from curate.testing import Fault
from curate.testing.batches import BatchServer

from conftest import SECRET, assert_accounted, make_llm
from test_llm_batch import FAST, questions, verdict

REPO = Path(__file__).resolve().parents[2]
ROWS = 30


class Killed(BaseException):
    """What a kill looks like from inside the client: nothing after it runs."""


def entries(tmp_path) -> list[dict]:
    return list(BatchState(state_path_for(tmp_path / "llm.sqlite")).entries().values())


def judge(llm, df):
    return Judge(llm, fields=["nlq", "query"]).run(df)


def test_killed_between_upload_and_create_resumes_without_uploading_again(tmp_path,
                                                                          monkeypatch):
    def killed(self, job):
        raise Killed()

    with BatchServer(verdict) as server:
        llm = make_llm(server, tmp_path, batch=FAST)
        df = questions(8)
        monkeypatch.setattr(BatchRun, "_create", killed)
        with pytest.raises(Killed):
            judge(llm, df)
        [entry] = entries(tmp_path)
        assert entry["input_file_id"] == "file-1" and entry["batch_id"] is None
        assert entry["status"] == "uploaded" and entry["requests"] == 8
        keys = BatchState(state_path_for(tmp_path / "llm.sqlite")).keys_of(entry["id"])
        assert len(set(keys)) == 8 and all(len(k) == 64 for k in keys)
        assert server.api_calls["upload"] == 1 and server.api_calls["create"] == 0
        monkeypatch.undo()

        result = judge(llm, df)
        assert server.api_calls["upload"] == 1 and len(server.batches) == 1
        assert server.batches["batch_1"]["input_file_id"] == "file-1"
        assert server.lines_processed == 8 and set(server.paid.values()) == {1}
        assert_accounted(df, result)
        assert entries(tmp_path) == []


def test_a_batch_created_just_before_a_kill_is_found_not_created_twice(tmp_path, monkeypatch):
    real_update = BatchState.update

    def killed_on_batch_id(self, local_id, **changes):
        if changes.get("batch_id"):
            raise Killed()  # the provider made the batch; its id never reached the record
        real_update(self, local_id, **changes)

    with BatchServer(verdict, in_progress_seconds=0.1) as server:
        llm = make_llm(server, tmp_path, batch=FAST)
        df = questions(5)
        monkeypatch.setattr(BatchState, "update", killed_on_batch_id)
        with pytest.raises(Killed):
            judge(llm, df)
        monkeypatch.undo()
        assert len(server.batches) == 1 and entries(tmp_path)[0]["batch_id"] is None

        result = judge(llm, df)
        assert server.api_calls["create"] == 1 and server.api_calls["list"] == 1
        assert server.lines_processed == 5 and set(server.paid.values()) == {1}
        assert len(result.kept) + len(result.rejected) == 5


def test_killed_after_collecting_sends_nothing_again_and_forgets_the_batch(tmp_path,
                                                                          monkeypatch):
    def killed(self, local_id):
        raise Killed()

    with BatchServer(verdict) as server:
        llm = make_llm(server, tmp_path, batch=FAST)
        monkeypatch.setattr(BatchState, "remove", killed)
        with pytest.raises(Killed):
            judge(llm, questions(4))
        monkeypatch.undo()
        assert entries(tmp_path)[0]["status"] == "completed"
        calls = sum(server.api_calls.values())
        result = judge(llm, questions(4))
        assert sum(server.api_calls.values()) == calls and result.stats["llm"]["cached"] == 4
        judge(llm, questions(5))  # the next batch call forgets the collected batch
        assert [e["batch_id"] for e in entries(tmp_path)] == []
        assert server.lines_processed == 5 and set(server.paid.values()) == {1}


def test_a_batch_the_provider_no_longer_knows_is_submitted_again(tmp_path):
    with BatchServer(verdict, in_progress_seconds=0.2) as server:
        eager = BatchOptions(poll_every=0.01, max_wait=0)
        with pytest.raises(BatchesPending):
            judge(make_llm(server, tmp_path, batch=eager), questions(3))
        state = BatchState(state_path_for(tmp_path / "llm.sqlite"))
        [entry] = entries(tmp_path)
        state.update(entry["id"], batch_id="batch_gone")
        result = judge(make_llm(server, tmp_path, batch=FAST), questions(3))
        assert len(server.batches) == 2 and len(result.errored) == 0
        assert [b["round"] for b in result.stats["batches"]] == [2]
        assert entries(tmp_path) == []


SCRIPT = textwrap.dedent("""
    import json, sys
    import pandas as pd
    from curate.llm import LLM
    from curate.llm.batch import BatchOptions
    from curate.stages.llm.judge import Judge

    base_url, cache, out = sys.argv[1:4]
    llm = LLM("scripted", base_url=base_url, api_key="x", cache=cache, timeout=5,
              batch=BatchOptions(poll_every=0.02, max_poll_every=0.05))
    df = pd.DataFrame({"nlq": [f"question {i}" for i in range(%d)],
                       "query": [f"SELECT {i}" for i in range(%d)]})
    result = Judge(llm, fields=["nlq", "query"]).run(df)
    payload = {"kept": sorted(result.kept["nlq"]), "rejected": sorted(result.rejected["nlq"]),
               "batches": result.stats.get("batches", [])}
    with open(out, "w") as f:
        json.dump(payload, f)
""" % (ROWS, ROWS))


def _start(server, tmp_path, out: str):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, server.base_url,
                             str(tmp_path / "llm.sqlite"), str(tmp_path / out)], env=env)


def _wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.slow  # three processes, one killed while polling: end to end
def test_sigkill_while_polling_then_rerun_polls_the_same_batch(tmp_path):
    with BatchServer(verdict, in_progress_seconds=2.0) as server:
        killed = _start(server, tmp_path, "killed.json")
        _wait_for(lambda: server.api_calls["retrieve"] >= 2)
        assert entries(tmp_path)[0]["batch_id"] == "batch_1"
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(timeout=30) == -signal.SIGKILL
        assert server.status_of("batch_1") == "in_progress" and server.lines_processed == 0

        resumed = _start(server, tmp_path, "resumed.json")
        assert resumed.wait(timeout=60) == 0
        assert server.api_calls["upload"] == 1 and len(server.batches) == 1
        assert server.lines_processed == ROWS and set(server.paid.values()) == {1}
        assert entries(tmp_path) == []
        out = json.loads((tmp_path / "resumed.json").read_text())
        assert len(out["kept"]) + len(out["rejected"]) == ROWS
        assert len(out["rejected"]) == ROWS // 3
        assert [(b["batch_id"], b["resumed"]) for b in out["batches"]] == [("batch_1", True)]

        calls = sum(server.api_calls.values())
        again = _start(server, tmp_path, "again.json")
        assert again.wait(timeout=60) == 0 and sum(server.api_calls.values()) == calls
    assert not (tmp_path / "killed.json").exists()


# -- a kill while the batch is being created --------------------------------------------------
def _kill_while_creating(server, tmp_path) -> dict:
    """Run the script until its ``POST /batches`` has reached the provider, which is slow to
    make the batch, and SIGKILL it there: the batch's id never comes back."""
    server.inject_api("create", Fault.slow(1.5))
    killed = _start(server, tmp_path, "killed.json")
    _wait_for(lambda: server.api_calls["create"] >= 1)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=30) == -signal.SIGKILL
    [entry] = entries(tmp_path)
    assert entry["batch_id"] is None and len(server.batches) == 0  # not made yet
    assert entry["status"] == "creating"  # the intent was recorded before the call
    return entry


def test_a_rerun_before_the_provider_made_the_batch_finds_it_and_creates_none(tmp_path):
    with BatchServer(verdict) as server:
        entry = _kill_while_creating(server, tmp_path)
        result = judge(make_llm(server, tmp_path, batch=FAST), questions(ROWS))
        assert server.api_calls["create"] == 1 and list(server.batches) == ["batch_1"]
        assert server.batches["batch_1"]["metadata"] == {"curate_batch": entry["id"]}
        assert [(b["batch_id"], b["resumed"]) for b in result.stats["batches"]] == \
            [("batch_1", True)]
        assert server.lines_processed == ROWS and set(server.paid.values()) == {1}
        assert len(result.kept) + len(result.rejected) == ROWS and entries(tmp_path) == []


def test_a_rerun_that_cannot_list_the_batches_refuses_to_create_again(tmp_path):
    with BatchServer(verdict) as server:
        _kill_while_creating(server, tmp_path)
        server.inject_api("list", *[Fault.status(500)] * 3)
        with pytest.raises(BatchesPending) as pending:
            judge(make_llm(server, tmp_path, batch=FAST), questions(ROWS))
        message = str(pending.value)
        assert "\n" not in message and "list batches: HTTP 500" in message, message
        assert "nothing was created again" in message and "run again" in message, message
        assert server.api_calls["create"] == 1 and server.api_calls["list"] == 3
        assert SECRET not in message

        result = judge(make_llm(server, tmp_path, batch=FAST), questions(ROWS))  # it answers
        assert server.api_calls["create"] == 1 and len(server.batches) == 1
        assert server.lines_processed == ROWS and set(server.paid.values()) == {1}
        assert len(result.kept) + len(result.rejected) == ROWS


def test_the_batch_list_is_read_page_by_page(tmp_path):
    import openai

    with BatchServer(verdict) as server:
        _kill_while_creating(server, tmp_path)
        _wait_for(lambda: "batch_1" in server.batches)
        other = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        line = {"custom_id": "other", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "scripted", "messages": [{"role": "user",
                                                            "content": "question 1"}]}}
        file = other.files.create(file=("other.jsonl", json.dumps(line).encode()),
                                  purpose="batch")
        for _ in range(130):  # another tool's batches, newer than this run's
            other.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                                 completion_window="24h")
        calls = server.api_calls["list"]
        result = judge(make_llm(server, tmp_path, batch=FAST), questions(ROWS))
        assert server.api_calls["create"] == 131 and server.api_calls["list"] - calls == 2
        assert server.batches["batch_1"]["status"] == "completed"
        assert [b["batch_id"] for b in result.stats["batches"]] == ["batch_1"]
        assert sum(server.paid.values()) == ROWS + 130 and len(result.kept) > 0


def test_processes_and_threads_sharing_a_record_keep_each_others_entries(tmp_path):
    """Each change of the record is a locked read-modify-write: writers that share a cache
    folder lose none of each other's entries."""
    path = tmp_path / "batches.json"
    script = textwrap.dedent("""
        import sys, threading
        from curate.llm.batch.state import BatchState

        def add(name):
            state = BatchState(sys.argv[1])
            for i in range(10):
                entry = state.add({"endpoint": "e", "model": "m"}, [f"{name}-{i}"])
                state.update(entry["id"], status="uploaded")

        threads = [threading.Thread(target=add, args=(f"{sys.argv[2]}.{t}",)) for t in range(2)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [subprocess.Popen([sys.executable, "-c", script, str(path), str(n)], env=env)
               for n in range(3)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    state = BatchState(path)
    recorded = state.of("e", "m")
    assert len(recorded) == 3 * 2 * 10
    assert {e["status"] for e in recorded} == {"uploaded"}
    assert sorted(k for e in recorded for k in e["keys"]) == sorted(
        f"{n}.{t}-{i}" for n in range(3) for t in range(2) for i in range(10))
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # none half-written
