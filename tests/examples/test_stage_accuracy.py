"""The stage-accuracy table (examples/honeycomb/stage_accuracy.py, printed by bench/stage_accuracy.py):
the spec's own stages, real runs, counts that match the labels."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from examples.honeycomb.column_swap import column_swaps
from examples.honeycomb.faults import CHECKER_DETECTABLE, WRONG_BUT_VALID
from examples.honeycomb.stage_accuracy import (CLEAN, LABEL, SEEDS, faulted_table, format_accuracy,
                                               recall_at, removed_ids, spec_stages, stage_accuracy)

ROOT = Path(__file__).resolve().parents[2]


def swaps() -> int:
    """How many rows the faults go into: the seeds' column swaps, 2 each at most."""
    return len(column_swaps([json.loads(line) for line in SEEDS.read_text().splitlines() if line.strip()], n=2))


def test_the_stages_are_the_spec_s_own_deterministic_ones_in_its_order():
    from curate import Judge, LLMStage
    from curate.pipeline.spec import load_spec

    spec = [s.name for s in load_spec(ROOT / "examples/honeycomb/spec.py").stages]
    names = [s.name for s in spec_stages()]
    assert names == ["is_a_rewording", "embedded_rewordings", "assertions", "complexity_filter", "rouge_dedup", "embedding_dedup",
                     "decontaminate", "key_pair_dedup"]
    assert [n for n in spec if n in names] == names  # the spec's order; the repeated assertions left out
    assert "assertions_after_repair" in spec
    assert not [s for s in spec_stages() if isinstance(s, LLMStage)]
    assert [type(s) for s in spec_stages(judge=True)][-1] is Judge


def test_the_checker_removes_every_checker_detectable_fault_and_nothing_else():
    table = faulted_table(seed=1)
    stages = [s for s in spec_stages() if s.name in ("assertions", "complexity_filter", "key_pair_dedup")]
    records = {r["stage"]: r for r in stage_accuracy(table, stages)}
    assert list(records) == ["assertions", "complexity_filter", "key_pair_dedup", "all, in spec order"]
    checker = records["assertions"]["by_kind"]
    counts = table[LABEL].fillna(CLEAN).value_counts()
    for kind, part in checker.items():
        assert part["n"] == counts[kind]
        expected = part["n"] if kind in CHECKER_DETECTABLE else 0
        assert part["removed"] == expected, kind
    assert records["assertions"]["precision"]["share"] == 1.0
    assert checker[CLEAN]["share"] == 0 and checker[CLEAN]["high"] < 0.02  # Wilson: 0 of ~370
    assert all(records["all, in spec order"]["by_kind"][k]["removed"] == 0 for k in WRONG_BUT_VALID)
    text = format_accuracy(list(records.values()), table)
    assert "assertions" in text and "100% [" in text and f"precision {1 - counts[CLEAN] / len(table):.0%}" in text


@pytest.mark.slow
def test_the_command_line_prints_the_table_and_writes_the_records(tmp_path):
    out = tmp_path / "accuracy.json"
    proc = subprocess.run([sys.executable, "bench/stage_accuracy.py", "--rates", "dropped_filter=0.1",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = json.loads(out.read_text())
    assert [r["stage"] for r in records][-1] == "all, in spec order"
    assert records[-1]["by_kind"]["dropped_filter"]["n"] == round(0.1 * swaps())
    assert "load average" in proc.stdout and "embedding_dedup" in proc.stdout
    bad = subprocess.run([sys.executable, "bench/stage_accuracy.py", "--rates", "typo=0.1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "unknown fault kind(s) typo" in bad.stderr and "Traceback" not in bad.stderr


def test_recall_at_a_clean_share_sets_the_threshold_on_the_clean_rows_only():
    import pandas as pd

    labels = pd.Series([None] * 10 + ["dropped_filter"] * 4 + ["changed_breakdown"] * 2)
    scores = pd.Series([float(i) for i in range(10)] + [20.0, 30.0, 8.5, 0.5] + [9.5, 1.0])
    r = recall_at(scores, labels, clean_share=0.1)
    assert r["threshold"] == 8.0  # one clean row of ten (the 9.0) may lie above
    assert r["clean"][0] == 0.1 and r["dropped_filter"][0] == 0.75 and r["changed_breakdown"][0] == 0.5
    assert r["all faults"][0] == 4 / 6 and r["all faults"][1] < 4 / 6 < r["all faults"][2]
    assert 0.5 < r["auc"] < 1
    none = recall_at(scores, labels, clean_share=0.0)
    assert none["threshold"] == 9.0 and none["clean"][0] == 0 and none["dropped_filter"][0] == 0.5


def test_the_judge_counts_the_rows_it_calls_bad_against_a_loopback_endpoint(tmp_path, monkeypatch):
    from curate.testing import ScriptedServer, last_user_message

    def reply(body):  # a judge that calls every query with a time range bad
        return json.dumps({"critique": "checked", "outcome": "bad" if "time_range" in last_user_message(body)
                           else "good"})

    with ScriptedServer(reply) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "local")
        monkeypatch.setenv("CURATE_LLM_MODEL", "scripted")
        monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path))
        judge = spec_stages(judge=True)[-1]
        table = faulted_table({"changed_time_window": 0.1}, seed=2)
        result = judge.run(table)
        records = stage_accuracy(table, [judge], chain=False)
    judged = next(c for c, role in judge.added_columns().items() if role == "verdict")
    bad = set(result.kept.loc[result.kept[judged] == "bad", "_id"])
    assert bad and removed_ids(judge, result) == bad  # an advisory judge: it keeps rows, and marks them
    gone = table[table["_id"].isin(bad)]
    assert all("time_range" in json.dumps(q) for q in gone["query"])
    by_kind = records[0]["by_kind"]
    faulted = round(0.1 * swaps())  # every one of them has a time range now
    assert records[0]["removed"] == len(bad) and by_kind["changed_time_window"]["removed"] == faulted
    assert by_kind[CLEAN]["removed"] == len(bad) - faulted
