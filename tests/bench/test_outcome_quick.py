"""The outcome benchmark end to end at --quick size: three sets through the runner, the
same fine-tune on each, every model scored on held-out rows it never trained on."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_outcome_quick_builds_trains_and_scores_every_condition(tmp_path):
    out = tmp_path / "outcome"
    proc = subprocess.run([sys.executable, "bench/outcome.py", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "outcome.json").read_text())
    rows = {r["condition"]: r for r in result["rows"]}
    assert list(rows) == ["base", "seeds", "uncurated", "curated"]
    for condition in ("seeds", "uncurated", "curated"):
        assert rows[condition]["rows"] == result["settings"]["rows"]
        assert rows[condition]["train_tokens"] > 0
        assert 0 <= rows[condition]["atom_f1"] <= 1
        folder = out / "data" / condition
        assert (folder / "manifest.json").exists() and (folder / "report.html").exists()
        train = (folder / "export" / "train.jsonl").read_text().splitlines()
        assert len(train) == result["settings"]["rows"]
    assert rows["uncurated"]["made"] > rows["curated"]["made"] > 0  # curation removed rows
    held_out = [json.loads(line)["nlq"] for line in
                (ROOT / "examples/honeycomb/data/eval.jsonl").read_text().splitlines()]
    trained = "".join((out / "data" / c / "export" / "train.jsonl").read_text()
                      for c in ("seeds", "uncurated", "curated"))
    assert not [q for q in held_out if f'NLQ: \\"{q}\\"' in trained]
    assert "condition" in proc.stdout and "top failing rule" in proc.stdout
