"""The outcome benchmark end to end at --quick size, run as a user runs it (a subprocess): every
condition built from labelled faults, trained at the same budget on two seeds, scored on every
held-out row with intervals, paired, and printed beside the degenerate answers."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from curate.testing import ScriptedServer, last_user_message
from examples.honeycomb.faults import CHECKER_DETECTABLE, WRONG_BUT_VALID

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "examples/honeycomb/data/eval.jsonl"


def judge_and_repair(body):
    """A judge that calls every question about errors bad, and a repair that answers COUNT alone
    (which says less than the query it would replace, so the spec's ``accept`` refuses it)."""
    text = last_user_message(body)
    if "corrected query" in text:
        return json.dumps({"query": {"calculations": [{"op": "COUNT"}]}})
    return json.dumps({"critique": "checked", "outcome": "bad" if "error" in text.lower() else "good"})


@pytest.mark.slow
def test_outcome_quick_trains_every_condition_at_one_budget_and_scores_held_out_rows(tmp_path):
    out = tmp_path / "outcome"
    with ScriptedServer(judge_and_repair, dialect="openai") as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "local",
               "CURATE_LLM_MODEL": "scripted"}
        proc = subprocess.run([sys.executable, "bench/outcome.py", "--quick", "--suspects", "--llm",
                               "--threads", "1", "--out", str(out)],
                              cwd=ROOT, capture_output=True, text=True, timeout=1200, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert server.answered > 0  # the llm condition asked the endpoint
    result = json.loads((out / "outcome.json").read_text())
    settings, conditions = result["settings"], result["conditions"]
    assert list(conditions) == ["clean", "noisy", "curated", "suspects", "llm"]
    held_out = [json.loads(line) for line in EVAL.read_text().splitlines() if line.strip()]
    assert len(held_out) == 209  # the default scores every one; --quick the first few
    for name, figures in conditions.items():
        assert len(figures["loss_per_seed"]) == settings["train_seeds"] == 2
        assert all(tokens > 0 for tokens in figures["tokens"])
        low, value, high = (figures["loss"][k] for k in ("low", "value", "high"))
        assert 0 < low <= value <= high
        assert figures["generation"]["rows"] == result["eval_rows"] == settings["eval_rows"] > 0
        for metric in ("validity", "atom_f1", "exact_match"):
            shown = figures["generation"]["intervals"][metric]
            assert 0 <= shown["low"] <= shown["value"] <= shown["high"] <= 1
        for seed in range(2):  # the same number of rows for every condition and seed
            rows = (out / "data" / name / f"train-seed{seed}.jsonl").read_text().splitlines()
            assert len(rows) == settings["rows"]
    assert not [r for r in held_out if f'NLQ: \\"{r["nlq"]}\\"' in "".join(rows)]
    composed = result["composition"]
    assert set(composed["clean"]) == {"unique", "repeats", "clean"}
    assert all(composed["noisy"][kind] > 0 for kind in CHECKER_DETECTABLE + WRONG_BUT_VALID)
    assert not [kind for kind in CHECKER_DETECTABLE if kind in composed["curated"]]  # the checker's
    assert composed["suspects"]["unique"] < composed["curated"]["unique"]
    assert composed["llm"]["unique"] < composed["curated"]["unique"]  # refused repairs went
    assert [p["pair"] for p in result["pairs"]] == ["curated - noisy", "suspects - curated", "clean - curated",
                                                    "llm - curated"]
    assert all(0 <= p["mcnemar_validity"]["p_value"] <= 1 for p in result["pairs"])
    assert result["baselines"]["{} (the empty query)"]["validity"]["value"] == 0
    assert 0 <= result["suspects"]["auc"] <= 1
    for line in ("load average", "precision", "suspect filter", "nearest seed's query", "paired differences"):
        assert line in proc.stdout
