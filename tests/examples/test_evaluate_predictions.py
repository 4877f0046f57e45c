"""Scoring answers made anywhere else: `python -m examples.honeycomb.evaluate --predictions FILE`."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from examples.honeycomb import evaluate

ROOT = Path(__file__).resolve().parents[2]
ROWS = evaluate.load_rows(evaluate.EVAL_PATH, limit=6)


def cli(*argv):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "examples.honeycomb.evaluate", *map(str, argv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)


def write_answers(path, answers):
    path.write_text("".join(json.dumps({"query": answer}) + "\n" for answer in answers))
    return path


def test_answers_from_a_file_are_scored_beside_the_baselines(tmp_path):
    answers = [row["query"] for row in ROWS]
    answers[0] = {}                            # says nothing: invalid, no atom
    answers[1] = "COUNT by route"              # not a query
    answers[2] = repr(ROWS[2]["query"])        # a Python-repr text of the gold: the same query
    proc = cli("--predictions", write_answers(tmp_path / "answers.jsonl", answers), "--limit", 6)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    headline = json.loads(lines[-1])
    assert list(headline) == ["validity", "atom_f1", "exact_match"]
    for figure in headline.values():
        assert figure["value"] == round(4 / 6, 4) and figure["low"] <= figure["value"] <= figure["high"]
    table = "\n".join(lines[:-1])
    for label in ("answers (answers.jsonl)", "{} (the empty query)", "COUNT + time window by regex",
                  "nearest seed's query", "query_empty 1"):
        assert label in table
    assert not (tmp_path / "runs").exists() and proc.stderr == ""


@pytest.mark.parametrize("lines, message", [
    (['{"query": {}}'] * 5, "answers.jsonl: 5 answers for 6 held-out rows"),
    (['{"query": {}}', '{"query": {}}', "{'query': {}}"], "answers.jsonl line 3: not JSON"),
])
def test_bad_answer_files_are_one_line_errors_naming_the_file(tmp_path, lines, message):
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(lines) + "\n")
    proc = cli("--predictions", path, "--limit", 6)
    assert proc.returncode == 2 and proc.stdout == ""
    assert message in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_a_line_without_a_query_and_a_missing_file(tmp_path, capsys):
    path = tmp_path / "answers.jsonl"
    path.write_text('{"query": {}}\n\n{"answer": {}}\n')
    assert evaluate.main(["--predictions", str(path), "--limit", "2"]) == 2
    assert evaluate.main(["--predictions", str(tmp_path / "none.jsonl"), "--limit", "2"]) == 2
    first, second = capsys.readouterr().err.splitlines()
    assert first == (f'error: {path} line 3: expected an object with a "query" key (the answer, as an object '
                     f'or text), got {{"answer": {{}}}}')
    assert second.startswith(f"error: --predictions {tmp_path / 'none.jsonl'}: No such file")


def test_rows_of_one_group_widen_the_intervals(tmp_path, capsys):
    """Rows that share a ``group`` (a parent and its column swaps) are resampled together."""
    data = tmp_path / "eval.jsonl"
    answers = write_answers(tmp_path / "answers.jsonl", [{}, {}, {}] + [row["query"] for row in ROWS[3:]])

    def validity(rows):
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
        assert evaluate.main(["--predictions", str(answers), "--data", str(data)]) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])["validity"]

    alone = validity(ROWS)
    grouped = validity([{**row, "group": "a" if i < 3 else "b"} for i, row in enumerate(ROWS)])
    assert alone["value"] == grouped["value"] == 0.5
    assert (grouped["low"], grouped["high"]) == (0.0, 1.0)  # two groups: all wrong or all right
    assert alone["high"] - alone["low"] < 1.0
