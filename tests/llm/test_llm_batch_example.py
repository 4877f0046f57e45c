"""The batch example spec runs end to end against the loopback Batch API."""
from __future__ import annotations

import json
import re
from pathlib import Path

from curate.pipeline.__main__ import main
from curate.testing.batches import BatchServer

SPEC = Path(__file__).resolve().parents[2] / "examples" / "batch" / "spec.py"


def bad_verdict(body):
    return json.dumps({"critique": "the time window is not the one asked for", "outcome": "bad"})


def test_the_example_estimates_then_runs_in_batches_and_resumes_for_free(tmp_path, monkeypatch,
                                                                          capsys):
    with BatchServer(bad_verdict, dialect="openai") as server:
        for name, value in {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-x",
                            "BATCH_SEEDS": "4", "BATCH_POLL_EVERY": "0.01"}.items():
            monkeypatch.setenv(name, value)
        assert main([str(SPEC), "--estimate"]) == 0
        assert server.http_requests == 0 and "judge" in capsys.readouterr().out

        assert main([str(SPEC), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
        manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
        stages = {s["stage"]: s for s in manifest["stages"]}
        assert [b["status"] for b in stages["judge"]["batches"]] == ["completed"]
        assert len(stages["repair"]["batches"]) >= 1
        assert server.received == server.lines_processed > 0  # nothing was sent online
        assert manifest["llm"]["batched"] == server.lines_processed
        record = json.loads((tmp_path / "run" / "cache" / "batches.json").read_text())
        assert record["batches"] == {}
        rows = manifest["rows"]
        assert rows["kept"] + rows["rejected"] + rows["errored"] >= 4

        calls = sum(server.api_calls.values())
        (tmp_path / "run" / "checkpoints").rename(tmp_path / "old-checkpoints")
        assert main([str(SPEC), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
        assert sum(server.api_calls.values()) == calls  # recomputed from the cache alone


def test_a_run_that_stops_waiting_says_so_in_one_line_and_the_rerun_collects(
        tmp_path, monkeypatch, capsys):
    with BatchServer(bad_verdict, dialect="openai", in_progress_seconds=0.3) as server:
        for name, value in {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-x",
                            "BATCH_SEEDS": "3", "BATCH_POLL_EVERY": "0.01",
                            "BATCH_MAX_WAIT": "0"}.items():
            monkeypatch.setenv(name, value)
        out = tmp_path / "run"
        assert main([str(SPEC), "--out", str(out), "--no-progress"]) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert re.match(r"error: 3 request\(s\) are still in batch\(es\) batch_1 "
                        r"\((validating|in_progress)\): max_wait=0s ran out", line)
        assert "running again collects them" in line and "sk-x" not in line
        assert not (out / "manifest.json").exists()

        monkeypatch.delenv("BATCH_MAX_WAIT")
        assert main([str(SPEC), "--out", str(out), "--no-progress"]) == 0
        judge = json.loads((out / "manifest.json").read_text())["stages"][1]
        assert judge["stage"] == "judge" and judge["batches"][0]["batch_id"] == "batch_1"
        assert judge["batches"][0]["resumed"] is True
        assert server.paid and max(server.paid.values()) == 1


def test_with_no_endpoint_the_example_estimates_but_will_not_run(tmp_path, capsys):
    """The spec names gpt-4o-mini: with no key or URL it is estimated (nothing is sent),
    and a run stops in one line saying what to set, instead of running another model."""
    assert main([str(SPEC), "--estimate"]) == 0
    assert "gpt-4o-mini" in capsys.readouterr().out
    assert main([str(SPEC), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "'gpt-4o-mini'" in line
    assert "OPENAI_API_KEY" in line and "OPENAI_BASE_URL" in line
