"""The review app without a browser: the command line, the guard, the labels file, the table."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from curate.review.alignment import read_review
from curate.review import __main__ as cli
from curate.review import create_app
from curate.review.labels import LabelStore, Walk, judged_stages
from curate.review.table import Query, RunTable
from review_sample import SCRIPT_NLQ
from review_served import fetch, form_token, served

ROOT = Path(__file__).resolve().parents[2]


# -- the command line ---------------------------------------------------------------------------
def _one_line_error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    return err


def test_bad_run_folders_are_one_line_errors(tmp_path, capsys, judged_run):
    assert "no such folder" in _one_line_error(capsys, [str(tmp_path / "nope")])
    (tmp_path / "file.txt").write_text("x")
    assert "not a folder" in _one_line_error(capsys, [str(tmp_path / "file.txt")])
    (tmp_path / "empty").mkdir()
    assert "manifest.json is missing" in _one_line_error(capsys, [str(tmp_path / "empty")])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    assert "not a readable manifest" in _one_line_error(capsys, [str(tmp_path / "broken")])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "manifest.json").write_text("{}")
    assert "not a run manifest" in _one_line_error(capsys, [str(tmp_path / "other")])
    (tmp_path / "partial").mkdir()
    manifest = json.loads((judged_run / "manifest.json").read_text())
    (tmp_path / "partial" / "manifest.json").write_text(json.dumps(manifest))
    assert "checkpoint of this stage is missing" in _one_line_error(
        capsys, [str(tmp_path / "partial")])


def test_a_damaged_checkpoint_is_a_one_line_error(judged_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(judged_run, copy)
    (copy / "checkpoints" / "03_rouge_dedup" / "rejected.parquet").write_bytes(b"not parquet")
    assert "cannot read this run folder" in _one_line_error(capsys, [str(copy)])


def test_the_command_prints_its_address_and_serves(judged_run):
    process = subprocess.Popen([sys.executable, "-m", "curate.review", str(judged_run),
                                "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        address = re.search(r"http://127\.0\.0\.1:\d+/", first)
        assert address, first + process.stderr.read()
        status, _, body = fetch(address.group(0))
        assert status == 200 and "rows match" in body
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_another_host_gets_a_printed_token(judged_run, monkeypatch, capsys):
    import uvicorn

    apps, sockets = [], []
    monkeypatch.setattr(cli, "listen", lambda host, port: sockets.append(
        cli.socket.create_server(("127.0.0.1", 0))) or sockets[-1])
    monkeypatch.setattr(uvicorn.Server, "run",
                        lambda self, sockets=None: apps.append(self.config.app))
    assert cli.main([str(judged_run), "--host", "0.0.0.0", "--port", "0"]) == 0
    sockets[0].close()
    monkeypatch.undo()
    out = capsys.readouterr().out
    token = re.search(r"http://0\.0\.0\.0:\d+/\?token=([\w-]{20,})", out)
    assert token and "needs this token" in out
    with served(apps[0]) as url:
        assert fetch(url + "/")[0] == 403
        assert fetch(url + "/?token=" + token.group(1))[0] == 200


def test_serving_leaves_the_processes_logging_handlers_alone(judged_run):
    """uvicorn's default log config closes every installed handler (a notebook's, absl's):
    the app's server must not."""
    import logging

    class Recording(logging.Handler):
        closed = False

        def emit(self, record):
            pass

        def close(self):
            self.closed = True
            super().close()

    handler = Recording()
    logging.getLogger("a_notebook").addHandler(handler)
    try:
        cli.make_server(create_app(judged_run))
        assert not handler.closed
    finally:
        logging.getLogger("a_notebook").removeHandler(handler)


# -- the guard -----------------------------------------------------------------------------------
def test_off_loopback_every_request_needs_the_token(judged_run):
    with served(create_app(judged_run, token="s3cret-token", loopback=False)) as url:
        assert fetch(url + "/")[0] == 403
        assert fetch(url + "/label")[0] == 403
        assert fetch(url + "/?token=wrong")[0] == 403
        status, headers, _ = fetch(url + "/?token=s3cret-token")
        assert status == 200
        cookie = headers["set-cookie"].split(";")[0]
        assert "HttpOnly" in headers["set-cookie"] and cookie.endswith("=s3cret-token")
        assert fetch(url + "/row/nope", headers={"Cookie": cookie})[0] == 404
        assert fetch(url + "/", headers={"X-Review-Token": "s3cret-token"})[0] == 200
        assert fetch(url + "/few-shot", form={"form_token": "x"})[0] == 403


def test_loopback_refuses_other_host_names_and_cross_site_forms(judged_run):
    with served(create_app(judged_run)) as url:
        assert fetch(url + "/", headers={"Host": "attacker.example"})[0] == 403
        status, headers, page = fetch(url + "/label/" + _first_judged(judged_run))
        assert status == 200 and "nonce-" in headers["content-security-policy"]
        form = {"form_token": form_token(page), "expert_outcome": "good"}
        target = url + "/label/" + _first_judged(judged_run)
        assert fetch(target, form={**form, "form_token": "forged"})[0] == 403
        assert fetch(target, form=form, headers={"Origin": "http://attacker.example"})[0] == 403
        assert not (judged_run / "review" / "labels.csv").exists()


def _first_judged(run: Path) -> str:
    table = RunTable(run)
    return Walk(table, judged_stages(table)[0]).ids[0]


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def test_the_app_writes_only_its_two_files_and_their_lock(tmp_path):
    from review_sample import build

    run = build(tmp_path)
    before = _snapshot(tmp_path)
    with served(create_app(run)) as url:
        row_id = _first_judged(run)
        _, _, page = fetch(url + "/label/" + row_id)
        for path in ("/", "/?q=cpu&sort=_complexity", f"/row/{row_id}", "/report"):
            assert fetch(url + path)[0] == 200
        status, headers, _ = fetch(url + f"/label/{row_id}?judge=judge", form={
            "form_token": form_token(page), "expert_outcome": "bad", "expert_critique": "no"})
        assert status == 303 and headers["location"].startswith("/label/")
        assert fetch(url + "/few-shot?judge=judge", form={"form_token": form_token(page)})[0] == 303
    after = _snapshot(tmp_path)
    changed = {k for k in after if before.get(k) != after[k]}
    assert changed == {"run/review/labels.csv", "run/review/critique_examples.jsonl",
                       "run/review/.labels.csv.lock"}


# -- the labels file -------------------------------------------------------------------------------
def test_a_damaged_labels_file_is_shown_not_a_traceback(tmp_path):
    from review_sample import build

    run = build(tmp_path)
    (run / "review").mkdir()
    (run / "review" / "labels.csv").write_text(
        "_id,judge_outcome,expert_outcome,judge_stage,judge_fingerprint,labelled_at\n"
        "abc,good,meh,judge,x,2026-01-01\n")
    with served(create_app(run)) as url:
        status, _, page = fetch(url + "/label/" + _first_judged(run))
    assert status == 500 and 'id="problem"' in page
    assert "labels.csv:2: expert_outcome must be one of good, bad" in page



def test_labels_from_two_tabs_or_two_apps_are_all_kept(judged_run, tmp_path):
    table = RunTable(judged_run)
    judge = judged_stages(table)[0]
    ids = Walk(table, judge).ids[:4]
    records = [table.record(table.position(i)) for i in ids]
    one, two = LabelStore(tmp_path), LabelStore(tmp_path)
    one.save(judge, records[0], "good")
    two.save(judge, records[1], "bad", "wrong breakdown", '{"calculations": []}')
    one.save(judge, records[2], "good")
    two.save(judge, records[0], "bad")  # a second opinion replaces the first
    saved = read_review(one.path).set_index("_id")
    assert saved["expert_outcome"].to_dict() == {ids[0]: "bad", ids[1]: "bad", ids[2]: "good"}
    assert saved.loc[ids[1], "expert_answer"] == '{"calculations": []}'
    assert saved.loc[ids[1], "judge_outcome"] == records[1]["outcome"]
    assert json.loads(saved.loc[ids[1], "query"]) == records[1]["query"]
    assert set(saved["judge_fingerprint"]) == {judge.fingerprint}
    with pytest.raises(ValueError):
        one.save(judge, records[3], "meh")


def test_the_walk_is_a_seeded_sample_of_the_judged_rows(judged_run):
    table = RunTable(judged_run)
    judge = judged_stages(table)[0]
    judged = set(table.rows.loc[table.rows["outcome"].notna(), "_id"])
    every = Walk(table, judge)
    assert set(every.ids) == judged and len(judged) == 25
    assert Walk(table, judge, sample=5).ids == every.ids[:5]
    assert Walk(table, judge, seed=1).ids != every.ids
    assert every.next_unlabelled(set(every.ids[:3])) == every.ids[3]
    assert every.next_unlabelled(set(), after=every.ids[-1]) == every.ids[0]
    assert every.neighbour(every.ids[0], -1) is None
    assert every.neighbour(every.ids[0], 1) == every.ids[1]


# -- the table ---------------------------------------------------------------------------------
def test_filters_search_sort_and_paging(judged_run):
    table = RunTable(judged_run)
    assert {s for s, _ in table.choices()["status"]} == {"kept", "rejected", "errored", "replaced"}
    page = table.page(Query(sort="_rouge_l"))
    scores = [r["measure"] for r in page.rows if r["measure"] is not None]
    assert scores == sorted(scores, reverse=True) and len(scores) > 3
    assert page.rows[0]["reason"] == "near_duplicate_rouge"
    low = [r["measure"] for r in table.page(Query(sort="_complexity", order="asc")).rows]
    measured = [m for m in low if m is not None]
    assert measured == sorted(measured)
    assert low[len(measured):] == [None] * (len(low) - len(measured))
    found = table.page(Query(q='"<script>" SERVICE'))
    assert {r["fields"][0][1] for r in found.rows} == {SCRIPT_NLQ}
    assert table.page(Query(q="no such words anywhere")).total == 0
    errored = table.page(Query(status="errored", stage="length"))
    assert errored.total == 1 and errored.rows[0]["reason"] == "predicate_raised"
    made = table.page(Query(stage="day_variants"))
    assert made.total == 2 and {r["origin"] for r in made.rows} == {"day_variants"}
    repair = table.page(Query(stage="repair"))
    assert {r["status"] for r in repair.rows} == {"kept", "replaced"}
    assert dict(table.choices()["stage"])["repair"] == repair.total
    two = table.page(Query(page=2), size=20)
    assert two.page == 2 and len(two.rows) == 20 and two.pages == -(-len(table.rows) // 20)
    assert table.page(Query(sort="nlq")).notes == ["cannot sort by 'nlq': not a numeric column"]
