import json

import pandas as pd
import pytest

from curate import ChatExport, StageError
from curate.formats.chat import ALPACA_INPUT, convert, from_messages, to_messages
from curate.formats.validation import schema, validate_rows, validation_errors

MESSAGES = [{"role": "system", "content": "You write queries."},
            {"role": "user", "content": "NLQ: \"slow\""},
            {"role": "assistant", "content": "{\"limit\": 1}"}]


@pytest.mark.parametrize("fmt", ["sharegpt", "messages", "alpaca"])
def test_conversions_round_trip_through_every_format(fmt):
    row = from_messages(MESSAGES, fmt)
    assert validation_errors(row, fmt) == []
    assert to_messages(row) == MESSAGES
    for other in ("sharegpt", "messages", "alpaca"):
        assert to_messages(convert(row, other)) == MESSAGES


def test_sharegpt_shape():
    row = from_messages(MESSAGES, "sharegpt")
    assert [t["from"] for t in row["conversations"]] == ["system", "human", "gpt"]


def test_alpaca_refuses_multi_turn():
    with pytest.raises(ValueError, match="exactly one user turn"):
        from_messages(MESSAGES + MESSAGES[1:], "alpaca")


def test_schema_catches_bad_rows():
    assert validation_errors({"conversations": [{"from": "bot", "value": "x"}]}, "sharegpt")
    assert validation_errors({"messages": [{"role": "user", "content": 3}] * 2}, "messages")
    assert "$schema" in schema("alpaca")


def test_exporter_templates_over_row_fields(tmp_path):
    df = pd.DataFrame([{"nlq": "slow checkouts", "columns": ["duration_ms", "name"],
                        "query": {"calculations": [{"op": "P99", "column": "duration_ms"}]}}])
    export = ChatExport(system="Write a Honeycomb query.",
                            human='NLQ: "{nlq}"\n\nColumns: {columns}', gpt="query",
                            formats=("sharegpt", "messages"))
    paths = export.write(df, tmp_path)
    row = json.loads(open(paths["sharegpt"]).readline())
    human, gpt = row["conversations"][1]["value"], row["conversations"][2]["value"]
    assert human == "NLQ: \"slow checkouts\"\n\nColumns: ['duration_ms', 'name']"
    assert json.loads(gpt) == {"calculations": [{"op": "P99", "column": "duration_ms"}]}
    msg = json.loads(open(paths["messages"]).readline())
    assert msg["messages"][2]["role"] == "assistant"


def test_exporter_names_a_missing_template_field():
    export = ChatExport(human="{question}", gpt="answer")
    with pytest.raises(StageError) as err:
        export.build(pd.DataFrame({"q": ["x"], "answer": ["y"]}))
    assert err.value.field == "question"


def test_validate_rows_names_the_bad_row():
    good = from_messages(MESSAGES, "sharegpt")
    bad = {"conversations": [{"from": "human", "value": "hi"}]}
    with pytest.raises(StageError, match="row 1 is not valid sharegpt: conversations"):
        validate_rows([good, bad], "sharegpt")


def test_alpaca_input_is_one_user_turn_and_splits_back_exactly():
    row = {"instruction": "Write the query.", "input": "Columns: a, b", "output": "{}",
           "system": "Be brief."}
    messages = to_messages(row)
    assert messages[1] == {"role": "user", "content": "Write the query." + ALPACA_INPUT + "Columns: a, b"}
    assert from_messages(messages, "alpaca") == row
    assert convert(convert(row, "sharegpt"), "alpaca") == row


def test_every_reader_accepts_the_same_speaker_names():
    row = {"conversations": [{"from": "user", "value": "q"}, {"from": "model", "value": "a"}]}
    assert [m["role"] for m in to_messages(row)] == ["user", "assistant"]
    with pytest.raises(ValueError, match="unknown role 'narrator'"):
        to_messages({"messages": [{"role": "narrator", "content": "x"}]})
    with pytest.raises(ValueError, match="got keys \\['text'\\]"):
        to_messages({"text": "x"})


@pytest.mark.parametrize("fmt", ["sharegpt", "messages", "alpaca"])
def test_written_lines_are_exactly_the_json_of_the_built_rows(tmp_path, fmt):
    """`write` renders column-wise; its lines must be json.dumps of `build`'s rows, byte for
    byte, whatever the templates and values."""
    import numpy as np

    df = pd.DataFrame({
        "nlq": ["slow \"checkouts\"", "é ü 中文 \u2028 tab\tnew\nline", "", "a {brace}",
                "x" + "\n\n### Input:\n" + "given"],
        "columns": [["a", "b"], [], ["q\"uote"], ["z"], ["y"]],
        "n": pd.array([1, None, 3, 4, 5], dtype="Int64"),
        "score": [0.5, np.nan, 2.0, 1e-9, 3.0],
        "query": [{"limit": 1}, {"calculations": [{"op": "COUNT"}]}, {}, {"x": "é"}, {"y": None}],
        "label": ["a", None, "c", "d", "e"],
    })
    cases = [
        dict(system="Write a query.", human='NLQ: "{nlq}"\n\nColumns: {columns} n={n} s={score}',
             gpt="query"),
        dict(human="{nlq}", gpt="label"),
        dict(human="Q: {nlq} ({label})", gpt="nlq", system="{label}"),
        dict(human="{{literal}} {nlq} {query[limit]}", gpt="{label}!", system="{n:>3}"),
        dict(human=lambda r: f"{r['nlq']}/{r['n']}", gpt=lambda r: str(r["score"])),
        dict(system="", human="", gpt="n"),
    ]
    for case in cases:
        try:
            ChatExport(**case).build(df.iloc[:1], fmt)
        except (KeyError, TypeError, ValueError):
            continue  # a template that cannot render row 0 errs on both paths alike
        export = ChatExport(formats=(fmt,), **case)
        if "{query[limit]}" in str(case.get("human")):
            frame = df[df["query"].map(lambda q: "limit" in q)]
        else:
            frame = df
        expected = [json.dumps(row, ensure_ascii=False) for row in export.build(frame, fmt)]
        assert export.line_array(frame, fmt, end="").to_pylist() == expected
        exportable = export.split(frame)[0]  # write refuses rows with an empty turn
        written = [json.dumps(row, ensure_ascii=False) for row in export.build(exportable, fmt)]
        path = export.write(exportable, tmp_path / fmt)[fmt]
        assert open(path, encoding="utf-8").read() == "".join(line + "\n" for line in written)


def test_rows_that_would_make_an_empty_or_incomplete_turn_are_errored_never_written(tmp_path):
    df = pd.DataFrame({"_id": ["ok", "no_q", "blank_a", "spaces", "no_a"],
                       "_source": [f"rows.jsonl:{i}" for i in range(1, 6)],
                       "q": ["question", None, "question", "  \n", "question"],
                       "a": ["answer", "answer", "", "answer", None]})
    export = ChatExport(human="{q}", gpt="a")
    kept, errored = export.split(df)
    assert kept["_id"].tolist() == ["ok"]
    assert errored["_id"].tolist() == ["no_q", "blank_a", "spaces", "no_a"]
    assert errored["_stage"].unique().tolist() == ["export"]
    assert errored["_reason_code"].tolist() == ["missing_field", "empty_turn", "empty_turn",
                                                "missing_field"]
    assert errored["_reason"].tolist()[:2] == [
        "field 'q' is missing (empty or null): the conversation would lack it",
        "the assistant turn would be empty"]
    assert errored["_field"].tolist() == ["q", "a", "q", "a"]
    with pytest.raises(StageError, match=r"^stage 'export': 4 of 5 rows would make an empty or "
                                         r"incomplete conversation \(field 'q' is missing"):
        export.write(df, tmp_path)
    assert not list(tmp_path.iterdir())
    literal = ChatExport(human="Question: {q}", gpt=lambda row: row["a"] or "")
    assert literal.split(df.assign(q=""))[1]["_id"].tolist() == ["blank_a", "no_a"]
