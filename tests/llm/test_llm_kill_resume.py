"""A run killed with SIGKILL mid-stage resumes without repeating a completed request."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from curate.llm import ResponseCache
from curate.testing import ScriptedServer, last_user_message

# a process killed and run again: make test runs it, make test-fast does not
pytestmark = pytest.mark.slow

ROWS = 40
REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, sys
    import pandas as pd
    from curate.llm import LLM
    from curate.stages.llm.judge import Judge

    base_url, cache, out = sys.argv[1:4]
    llm = LLM("scripted", base_url=base_url, api_key="x", cache=cache, concurrency=4,
              timeout=5)
    df = pd.DataFrame({"nlq": [f"question {i}" for i in range(%d)],
                       "query": [f"SELECT {i}" for i in range(%d)]})
    result = Judge(llm, fields=["nlq", "query"]).run(df)
    keep = ["_id", "nlq", "critique", "outcome"]
    payload = {"kept": result.kept[keep].to_dict("records"),
               "rejected": result.rejected[keep + ["_reason"]].to_dict("records")}
    with open(out, "w") as f:
        json.dump(payload, f, sort_keys=True)
""" % (ROWS, ROWS))


def _verdict(body):
    number = int(re.search(r"question (\d+)", last_user_message(body)).group(1))
    outcome = "bad" if number % 3 == 0 else "good"
    return json.dumps({"critique": f"checked question {number}", "outcome": outcome})


def _run(server, cache, out, env):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, server.base_url, str(cache), str(out)],
                            env=env)


def _questions_in(cache_path) -> set[int]:
    cache = ResponseCache(cache_path)
    keys = list(cache.keys())
    texts = [cache.get_many(keys)[k]["text"] for k in keys]
    cache.close()
    return {int(re.search(r"question (\d+)", t).group(1)) for t in texts}


def test_sigkill_mid_stage_then_rerun(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with ScriptedServer(_verdict, latency=0.05) as server:
        killed = _run(server, tmp_path / "c.sqlite", tmp_path / "killed.json", env)
        deadline = time.monotonic() + 60
        while server.answered < 8 and time.monotonic() < deadline:
            time.sleep(0.005)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        assert killed.returncode == -signal.SIGKILL
        done = _questions_in(tmp_path / "c.sqlite")
        assert 0 < len(done) < ROWS  # killed mid-stage, with completed requests stored

        server.reset_counts()
        resumed = _run(server, tmp_path / "c.sqlite", tmp_path / "resumed.json", env)
        assert resumed.wait(timeout=60) == 0
        sent_again = {int(re.search(r"question (\d+)", last_user_message(b)).group(1))
                      for b in server.bodies}
        assert sent_again.isdisjoint(done)  # no completed request was repeated
        assert len(server.bodies) == ROWS - len(done)

        server.reset_counts()
        clean = _run(server, tmp_path / "fresh.sqlite", tmp_path / "clean.json", env)
        assert clean.wait(timeout=60) == 0 and server.received == ROWS
    resumed_out = json.loads((tmp_path / "resumed.json").read_text())
    assert resumed_out == json.loads((tmp_path / "clean.json").read_text())
    assert len(resumed_out["kept"]) + len(resumed_out["rejected"]) == ROWS
    assert not (tmp_path / "killed.json").exists()
