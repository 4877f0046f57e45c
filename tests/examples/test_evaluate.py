"""The evaluation command against a real chat-completions server on loopback."""
import csv
import json
import re

import pytest

from curate.testing.server import Fault, ScriptedServer, last_user_message
from examples.honeycomb import evaluate

ROWS = evaluate.load_rows(evaluate.EVAL_PATH, limit=6)
BROKEN = json.dumps({"calculations": [{"op": "P99"}], "breakdowns": ["not_a_column"]})


def nlq_of(body) -> str:
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return re.search(r'NLQ: "(.*)"', user).group(1)


def reply_for(body):
    """Gold answers, except that the first two rows first get a broken query and are fixed
    once the failures are fed back."""
    row = next(r for r in ROWS if r["nlq"] == nlq_of(body))
    healing = len(body["messages"]) > 2
    if row in ROWS[:2] and not healing:
        return BROKEN
    if healing:
        assert "problems" in last_user_message(body)
    return json.dumps(row["query"])


def run(server, out, *extra):
    return evaluate.main(["--backend", "endpoint", "--model", "scripted", "--base-url", server.base_url,
                          "--limit", "6", "--no-cache", "--out", str(out), *extra])


def read_lines(path):
    return [json.loads(line) for line in open(path)]


def test_evaluate_against_loopback_server_with_and_without_healing(tmp_path, capsys):
    with ScriptedServer(reply_for) as server:
        assert run(server, tmp_path) == 0
        assert server.received == 6 + 2
    report = json.loads((tmp_path / "evaluation.json").read_text())
    first, healed = report["single_attempt"], report["self_healing_3"]
    assert (first["valid"], first["exact_match"]) == (4, 4)
    assert first["failures_per_rule"]["calc_column_missing"] == 2
    # each broken answer gets 5 of 9 parts: rows 1 and 2 miss calculations and breakdowns,
    # row 1 its filter and order, row 2 its 24-hour time range and hourly granularity
    assert first["part_f1"] == round((4 + 2 * 5 / 9) / 6, 4) == 0.8519
    assert first["parts"]["calculations"] == {"precision": 0.6667, "recall": 0.6667, "f1": 0.6667}
    assert first["parts"]["havings"]["f1"] == 1.0
    assert (healed["valid"], healed["exact_match"], healed["mean_attempts"]) == (6, 6, round(8 / 6, 3))
    assert healed["part_f1"] == 1.0
    predictions = read_lines(tmp_path / "predictions.jsonl")
    assert [p["attempts"] for p in predictions] == [2, 2, 1, 1, 1, 1]
    assert not predictions[0]["first_valid"] and predictions[0]["final_valid"]
    assert predictions[0]["first_part_f1"] == 0.5556 and predictions[0]["final_part_f1"] == 1.0
    assert predictions[1]["first_parts"]["time_range"] == 0.0 and predictions[0]["first_parts"]["limit"] == 1.0
    table = capsys.readouterr().out
    assert "part F1" in table and "0.852" in table


def test_an_interrupted_evaluation_resumes_where_it_stopped(tmp_path, monkeypatch, capsys):
    with ScriptedServer(reply_for) as server:
        assert run(server, tmp_path / "clean") == 0
    real = evaluate.client_generator

    def stop_on_second_round(llm, max_tokens):
        generate_many, calls = real(llm, max_tokens), []

        def interrupted(conversations):
            calls.append(len(conversations))
            if len(calls) == 2:
                raise KeyboardInterrupt
            return generate_many(conversations)
        return interrupted

    out = tmp_path / "resumed"
    monkeypatch.setattr(evaluate, "client_generator", stop_on_second_round)
    with ScriptedServer(reply_for) as server:  # groups of 3: rows 1-2 fail round 1, row 3 is done
        assert run(server, out, "--batch-size", "3") == 130
        assert server.received == 3
    assert "interrupted: 1 of 6 rows are saved" in capsys.readouterr().err
    saved = read_lines(out / "predictions.jsonl")
    assert [p["nlq"] for p in saved] == [ROWS[2]["nlq"]]
    with open(out / "predictions.jsonl", "a") as fh:
        fh.write('{"key": "cut short by a ki')  # a kill in the middle of a line
    monkeypatch.setattr(evaluate, "client_generator", real)
    with ScriptedServer(reply_for) as server:
        assert run(server, out, "--batch-size", "3") == 0
        asked = [nlq_of(body) for body in server.bodies]
    assert sorted(asked) == sorted([r["nlq"] for r in ROWS[:2]] * 2 + [r["nlq"] for r in ROWS[3:]])
    assert "resuming: 1 of 6 rows" in capsys.readouterr().err
    for name in ("evaluation.json", "predictions.jsonl"):
        assert (out / name).read_text() == (tmp_path / "clean" / name).read_text()
    with ScriptedServer(reply_for) as server:
        assert run(server, out) == 0 and server.received == 0
        assert run(server, out, "--attempts", "2") == 0 and server.received == 6 + 2
    assert "note: 6 lines of" in capsys.readouterr().err  # made with --attempts 3: replaced
    assert json.loads((out / "evaluation.json").read_text())["self_healing_2"]["valid"] == 6


def test_rows_without_a_reply_are_scored_but_not_saved(tmp_path, capsys):
    def refuse_row_4(body):
        return Fault.status(400, message="context too long") if nlq_of(body) == ROWS[3]["nlq"] else reply_for(body)

    with ScriptedServer(refuse_row_4) as server:
        assert run(server, tmp_path) == 0
        assert server.received == 6 + 2 + 2  # row 4 is asked 3 times
    assert "1 rows got no reply" in capsys.readouterr().err
    marked = [p.get("no_reply", False) for p in read_lines(tmp_path / "predictions.jsonl")]
    assert marked == [False] * 3 + [True] + [False] * 2
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["self_healing_3"]["failures_per_rule"] == {"query_not_json": 1}
    with ScriptedServer(reply_for) as server:
        assert run(server, tmp_path) == 0
        assert [nlq_of(body) for body in server.bodies] == [ROWS[3]["nlq"]]
    assert json.loads((tmp_path / "evaluation.json").read_text())["self_healing_3"]["valid"] == 6


@pytest.mark.parametrize("argv, message", [
    (["--backend", "adapter"], "error: --backend adapter needs --adapter DIR"),
    (["--backend", "endpoint", "--model", "m"], "error: --backend endpoint needs --base-url URL"),
    (["--data", "{missing}"], "no such file"),
    (["--data", "{bad}"], "row 2: the gold query is not a query object"),
])
def test_bad_input_is_a_one_line_error(tmp_path, monkeypatch, capsys, argv, message):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({**ROWS[1], "query": "COUNT by route"}) + "\n")
    argv = [a.format(missing=tmp_path / "none.jsonl", bad=bad) for a in argv]
    assert evaluate.main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_counts_below_their_minimum_are_usage_errors(capsys):
    for flag, value in (("--attempts", "0"), ("--limit", "-1"), ("--batch-size", "x")):
        with pytest.raises(SystemExit) as exit_info:
            evaluate.parse_args([flag, value])
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--attempts must be at least 1, got 0" in err and "--limit must be at least 0, got -1" in err


def test_same_query_ignores_key_and_list_order():
    gold = {"calculations": [{"op": "COUNT"}, {"op": "P99", "column": "duration_ms"}], "breakdowns": ["a", "b"]}
    text = '{"breakdowns": ["b", "a"], "calculations": [{"column": "duration_ms", "op": "P99"}, {"op": "COUNT"}]}'
    assert evaluate.same_query(text, gold)
    assert not evaluate.same_query('{"calculations": [{"op": "COUNT"}]}', gold)
    assert not evaluate.same_query("not json", gold)


def test_rows_keep_their_key_when_read_from_csv(tmp_path):
    path = tmp_path / "eval.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["nlq", "columns", "query"])
        writer.writerows([r["nlq"], json.dumps(r["columns"]), json.dumps(r["query"])] for r in ROWS[:2])
    rows = evaluate.load_rows(path)
    assert [evaluate.row_key(r) for r in rows] == [evaluate.row_key(r) for r in ROWS[:2]]
    assert evaluate.row_key(ROWS[0]) != evaluate.row_key({**ROWS[0], "query": ROWS[1]["query"]})
