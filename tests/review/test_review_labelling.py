"""Saving labels: only judged rows, any row id, a read-only run folder said at once, and a
labels file that no spreadsheet runs as formulas yet reads back as the expert wrote it."""
from __future__ import annotations

import contextlib
import csv
import os
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest

from curate.review.alignment import export_for_review, read_review
from curate.review import __main__ as cli
from curate.review import create_app
from curate.review.app import Review
from curate.review.labels import LabelStore, Walk, judged_stages
from curate.review.table import RunTable
from review_sample import ODD_IDS, build
from review_served import fetch, form_token, served

NOBODY = 65534
CRITIQUES = ["-1 is wrong", "=HYPERLINK(\"http://evil.example\",\"x\")", "+1 more", "@SUM(A1)",
             "\tindented", "\rreturn", "'=already quoted", "''", "'", "'plain", "plain"]


def _label_url(url: str, row_id: str) -> str:
    return f"{url}/label/{quote(row_id, safe='')}?judge=judge"


def test_a_row_the_judge_never_judged_cannot_be_labelled(judged_run):
    table = RunTable(judged_run)
    judged = set(Walk(table, judged_stages(table)[0]).ids)
    unjudged = next(i for i in table.rows["_id"] if i not in judged)
    with served(create_app(judged_run)) as url:
        token = form_token(fetch(_label_url(url, next(iter(judged))))[2])
        status, _, body = fetch(_label_url(url, unjudged),
                                form={"form_token": token, "expert_outcome": "bad"})
    assert status == 404 and body.count("\n") == 1
    assert body == f"not found: row {unjudged!r} is not one of the rows stage 'judge' " \
                   "judged (the rows to label)\n"
    assert not (judged_run / "review" / "labels.csv").exists()


def test_rows_whose_ids_hold_slashes_and_formulas_are_labelled(odd_ids_run):
    with served(create_app(odd_ids_run)) as url:
        for row_id in ODD_IDS:
            status, _, page = fetch(_label_url(url, row_id))
            assert status == 200, row_id
            assert re.search(r'id="label-id">([^<]*)<', page).group(1) == \
                row_id.replace("&", "&amp;").replace("'", "&#39;")
            form = {"form_token": form_token(page), "expert_outcome": "bad",
                    "expert_critique": f"-1 is wrong for {row_id}"}
            status, headers, _ = fetch(_label_url(url, row_id), form=form)
            assert status == 303 and headers["location"].startswith("/label/")
    saved = read_review(odd_ids_run / "review" / "labels.csv").set_index("_id")
    assert sorted(saved.index) == sorted(ODD_IDS)
    assert {i: saved.loc[i, "expert_critique"] for i in ODD_IDS} == \
        {i: f"-1 is wrong for {i}" for i in ODD_IDS}


def _cells(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_labels_csv_neutralises_formulas_and_reads_back_the_original(odd_ids_run, tmp_path):
    table = RunTable(odd_ids_run)
    judge = judged_stages(table)[0]
    records = [table.record(table.position(i)) for i in Walk(table, judge).ids[:len(CRITIQUES)]]
    records = [{**r, "nlq": c} for r, c in zip(records, CRITIQUES)]
    store = LabelStore(tmp_path)
    for record, critique in zip(records, CRITIQUES):
        store.save(judge, record, "bad", critique, critique)
    store.save(judge, records[0], "good", CRITIQUES[0])  # rewrites every row once more
    for row in _cells(store.path)[1:]:
        assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for cell in row), row
    saved = read_review(store.path).set_index("_id")
    for record, critique in zip(records, CRITIQUES):  # the expert's text is stripped
        assert saved.loc[record["_id"], "expert_critique"] == critique.strip()
        assert saved.loc[record["_id"], "nlq"] == critique
        assert store.labels_for(judge)[record["_id"]]["nlq"] == critique
    assert saved.loc[records[1]["_id"], "expert_answer"] == CRITIQUES[1]
    assert set(saved.index) == {r["_id"] for r in records}  # ids such as "-1", "+x" too


def test_a_review_sheet_neutralises_formulas_too(tmp_path):
    import pandas as pd

    judged = pd.DataFrame({"_id": ["-1", "=a", "b"], "nlq": CRITIQUES[:3],
                           "critique": CRITIQUES[3:6], "outcome": ["good", "bad", "good"]})
    path = export_for_review(judged, tmp_path / "review.csv", fields=["nlq"])
    for row in _cells(path)[1:]:
        assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for cell in row), row
    back = read_review(path)
    assert back["_id"].tolist() == ["-1", "=a", "b"]
    assert back["nlq"].tolist() == CRITIQUES[:3]
    assert back["judge_critique"].tolist() == CRITIQUES[3:6]


@contextlib.contextmanager
def cannot_write(folder: Path):
    """``folder`` as a user who may not write in it sees it: its write bits cleared and, for
    root (whom they do not stop), the process's effective user set to nobody meanwhile."""
    folder.chmod(0o555)
    as_root = os.geteuid() == 0
    if as_root:
        os.seteuid(NOBODY)
    try:
        yield
    finally:
        if as_root:
            os.seteuid(0)
        folder.chmod(0o755)


@pytest.fixture
def open_run_folder():
    """A judged run in a folder every user may read (nobody reads it in cannot_write)."""
    folder = Path(tempfile.mkdtemp(prefix="curate-review-"))
    folder.chmod(0o755)
    try:
        yield build(folder)
    finally:
        shutil.rmtree(folder)


def test_a_read_only_run_folder_is_said_at_start_and_on_the_first_label(
        open_run_folder, monkeypatch, capsys):
    import uvicorn

    run = open_run_folder
    row_id = Walk(RunTable(run), judged_stages(RunTable(run))[0]).ids[0]
    with served(create_app(run)) as url:
        token = form_token(fetch(_label_url(url, row_id))[2])
        monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: sockets[0].close())
        monkeypatch.setattr(Review, "warm", lambda self, first_request: None)
        with cannot_write(run):
            assert cli.main([str(run), "--port", "0"]) == 0
            status, _, page = fetch(_label_url(url, row_id))
            saved = fetch(_label_url(url, row_id), form={"form_token": token,
                                                         "expert_outcome": "bad"})
    out = capsys.readouterr().out
    assert f"labels cannot be saved: {run} is not writable" in out
    assert status == 200 and f"labels cannot be saved: {run} is not writable" in page
    assert saved[0] == 500 and 'id="problem"' in saved[2]
    problem = re.search(r'id="problem">([^<]*)<', saved[2]).group(1)
    assert problem.startswith(f"nothing was saved: cannot write {run}/review/labels.csv: ")
    assert not (run / "review").exists()
