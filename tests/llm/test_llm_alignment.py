"""Judge-expert alignment: the review sheet round trip and the agreement figures."""
from __future__ import annotations

import csv

import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from curate.review.alignment import (EXPERT_CRITIQUE, EXPERT_OUTCOME, alignment_report, cohen_kappa,
                              export_for_review, read_review)
from curate.errors import InputError
from curate.core.table import assign_ids

JUDGE = ["good", "good", "bad", "bad", "good", "bad", "good", "good", "bad", "good"]
EXPERT = ["good", "bad", "bad", "bad", "good", "good", "good", "good", "bad", "good"]


def test_kappa_on_a_hand_computed_case():
    # observed 8/10; chance 0.6*0.6 + 0.4*0.4 = 0.52; kappa = 0.28 / 0.48
    assert cohen_kappa(JUDGE, EXPERT) == pytest.approx(0.28 / 0.48)
    assert cohen_kappa(JUDGE, EXPERT) == pytest.approx(cohen_kappa_score(JUDGE, EXPERT))
    assert cohen_kappa(["good", "bad"], ["good", "bad"]) == 1.0


def _judged() -> pd.DataFrame:
    return assign_ids(pd.DataFrame({
        "nlq": [f"question {i}" for i in range(10)],
        "query": [{"calculations": [{"op": "COUNT"}], "i": i} for i in range(10)],
        "critique": [f"judge says {o}" for o in JUDGE], "outcome": JUDGE,
        "prompt": ["not exported"] * 10}))


def _fill(path, outcomes, critiques=None):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row, outcome in zip(rows, outcomes):
        row[EXPERT_OUTCOME] = outcome
        row[EXPERT_CRITIQUE] = (critiques or {}).get(outcome, "")
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_export_fill_read_and_report(tmp_path):
    path = export_for_review(_judged(), tmp_path / "review.csv", fields=["nlq", "query"])
    header = path.read_text().splitlines()[0]
    assert header == "_id,nlq,query,judge_critique,judge_outcome,expert_critique,expert_outcome"
    _fill(path, [o.upper() if i == 0 else o for i, o in enumerate(EXPERT)],
          {"bad": "the expert disagrees, with reasons"})
    report = alignment_report(read_review(path))
    assert report.n == 10 and report.agreement == 0.8
    assert report.kappa == pytest.approx(0.28 / 0.48)
    assert report.confusion.loc["good", "good"] == 5 and report.confusion.loc["good", "bad"] == 1
    assert report.confusion.loc["bad", "good"] == 1 and report.confusion.loc["bad", "bad"] == 3
    assert report.disagreements["nlq"].tolist() == ["question 1", "question 5"]
    assert report.disagreements.loc[0, EXPERT_CRITIQUE] == "the expert disagrees, with reasons"
    assert "Cohen's kappa   0.583" in str(report)


def test_rows_not_reviewed_yet_are_skipped(tmp_path):
    path = export_for_review(_judged(), tmp_path / "review.csv", fields=["nlq"])
    _fill(path, EXPERT[:4] + [""] * 6)
    report = alignment_report(path)
    assert report.n == 4 and report.unreviewed == 6 and report.agreement == 0.75


def test_a_bad_value_names_the_file_and_line(tmp_path):
    path = export_for_review(_judged(), tmp_path / "review.csv", fields=["nlq"])
    _fill(path, ["good", "good", "meh"])
    with pytest.raises(InputError) as info:
        read_review(path)
    assert str(info.value).startswith(f"{path}:4: expert_outcome must be one of good, bad")
    assert "'meh'" in str(info.value)
