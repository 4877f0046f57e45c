"""Reading rows, the held-out split, and the sequence-length rule."""
from __future__ import annotations

import json

import pytest
from train_testkit import repeat_rows, word_tokenizer, write_jsonl

from train.config import load_config
from train.templates import render
from train.data import IGNORE_INDEX, build_examples, load_conversations, read_rows, to_messages
from train.errors import DataError


@pytest.fixture(scope="module")
def tok():
    return word_tokenizer()


def cfg(**overrides):
    return load_config(None, {"data": "unused.jsonl", **overrides})


def learned_text(tok, example):
    return tok.decode([t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE_INDEX])


# ---------------------------------------------------------------- reading

def test_sharegpt_messages_and_alpaca_rows_become_the_same_messages():
    sharegpt = {"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"},
                                  {"from": "gpt", "value": "A"}]}
    messages = {"messages": [{"role": "system", "content": "S"},
                             {"role": "user", "content": [{"type": "text", "text": "Q"}]},
                             {"role": "assistant", "content": "A"}]}
    expected = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                {"role": "assistant", "content": "A"}]
    assert to_messages(sharegpt) == expected
    assert to_messages(messages) == expected
    alpaca = to_messages({"instruction": "Add.", "input": "2 3", "output": "5"})
    assert alpaca == [{"role": "user", "content": "Add.\n\n### Input:\n2 3"}, {"role": "assistant", "content": "5"}]
    assert to_messages({"instruction": "Hi.", "input": "", "output": "Hello"})[0]["content"] == "Hi."


@pytest.mark.parametrize("template", ["chatml", "alpaca"])
def test_a_conversation_exported_in_any_format_trains_on_the_same_text(template):
    """curate writes, the trainer reads, by one set of rules: the exported sharegpt, messages
    and alpaca rows of one conversation render the same training text, and alpaca's input
    field survives the round trip."""
    from curate.formats.chat import convert, from_messages

    conversation = [{"role": "system", "content": "Write a query."},
                    {"role": "user", "content": "Add.\n\n### Input:\n2 3"},
                    {"role": "assistant", "content": "5"}]
    rows = {fmt: from_messages(conversation, fmt) for fmt in ("sharegpt", "messages", "alpaca")}
    assert rows["alpaca"]["instruction"] == "Add." and rows["alpaca"]["input"] == "2 3"
    tokenizer = type("Tokenizer", (), {"eos_token": "</s>"})()
    texts = {fmt: render(to_messages(row), tokenizer, template) for fmt, row in rows.items()}
    assert len(set(texts.values())) == 1, texts
    assert "### Input:\n2 3" in texts["alpaca"]
    for fmt, row in rows.items():
        assert convert(convert(row, "alpaca"), fmt) == row


def test_a_bad_json_line_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(repeat_rows(1)[0]) + "\n\n" + '{"conversations": [\n')
    with pytest.raises(DataError, match=r"rows\.jsonl:3: not valid JSON"):
        read_rows(path)


def test_json_nested_too_deeply_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(repeat_rows(1)[0]) + "\n" + '{"a": ' + "[" * 30_000 + "]" * 30_000 + "}\n")
    with pytest.raises(DataError, match=r"rows\.jsonl:2: JSON nested too deeply to read"):
        read_rows(path)


def test_unknown_roles_and_missing_answers_are_reported_with_their_line(tmp_path):
    bad_role = {"conversations": [{"from": "narrator", "value": "x"}, {"from": "gpt", "value": "y"}]}
    with pytest.raises(DataError, match=r"f\.jsonl:7: unknown role 'narrator'"):
        to_messages(bad_role, where=("f.jsonl", 7))
    with pytest.raises(DataError, match="no assistant"):
        to_messages({"conversations": [{"from": "human", "value": "x"}]})
    with pytest.raises(DataError, match=r"expected key\(s\) conversations.*got keys \['text'\]"):
        to_messages({"text": "x"})


def test_a_datasets_folder_and_a_folder_of_jsonl_files_are_read(tmp_path):
    from datasets import Dataset

    rows = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": str(i)}]}
            for i in range(3)]
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    assert [r for r, _, _ in read_rows(tmp_path / "ds")] == rows
    (tmp_path / "many").mkdir()
    write_jsonl(tmp_path / "many" / "a.jsonl", rows[:2])
    write_jsonl(tmp_path / "many" / "b.jsonl", rows[2:])
    assert [(r, line) for r, _, line in read_rows(tmp_path / "many")] == [(rows[0], 1), (rows[1], 2), (rows[2], 1)]
    with pytest.raises(DataError, match="no such file"):
        read_rows(tmp_path / "missing.jsonl")


def test_the_held_out_split_is_seeded_or_read_from_a_file(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", repeat_rows(20))
    first = load_conversations(cfg(data=data, val_fraction=0.1, seed=1))
    again = load_conversations(cfg(data=data, val_fraction=0.1, seed=1))
    other = load_conversations(cfg(data=data, val_fraction=0.1, seed=2))
    assert (len(first[0]), len(first[1])) == (18, 2)
    assert first == again and first[1] != other[1]
    val = write_jsonl(tmp_path / "v.jsonl", repeat_rows(3))
    train, held = load_conversations(cfg(data=data, val_data=val))
    assert (len(train), len(held)) == (20, 3)


# ---------------------------------------------------------------- length

def long_row(prompt_words: int, answer: str = "plum fig"):
    return {"messages": [{"role": "system", "content": "You answer with the word ."},
                         {"role": "user", "content": "Say " + " ".join(["apple"] * prompt_words)},
                         {"role": "assistant", "content": answer}]}


def test_overlong_rows_are_dropped_and_counted(tok):
    rows = [{"messages": to_messages(r), "row": r} for r in (long_row(2), long_row(40))]
    examples, stats = build_examples(rows, tok, cfg(max_seq_len=30, overlong="drop"))
    assert len(examples) == 1 and stats.over_max_seq_len == 1 and stats.dropped == {"over_max_seq_len": 1}
    assert "1 of 2 rows kept; 1 exceed max_seq_len 30 (overlong: drop): 0 prompt-truncated, 1 dropped" \
        == stats.summary(cfg(max_seq_len=30))


def test_truncate_prompt_cuts_the_prompt_end_and_never_the_answer(tok):
    rows = [{"messages": to_messages(long_row(40)), "row": {}}]
    examples, stats = build_examples(rows, tok, cfg(max_seq_len=30, overlong="truncate_prompt"))
    (example,) = examples
    assert len(example["input_ids"]) == 30 and stats.prompt_truncated == 1 and not stats.dropped
    assert learned_text(tok, example) == "plum fig <|im_end|>"
    text = tok.decode(example["input_ids"])
    assert text.startswith("<|im_start|> system You answer with the word . <|im_end|> <|im_start|> user Say apple")
    assert text.endswith("apple <|im_end|> <|im_start|> assistant plum fig <|im_end|>")


def test_truncate_prompt_drops_the_oldest_exchange_before_cutting_text(tok):
    messages = [{"role": "system", "content": "ok"},
                {"role": "user", "content": "Say apple"}, {"role": "assistant", "content": " ".join(["pear"] * 20)},
                {"role": "user", "content": "Say kiwi"}, {"role": "assistant", "content": "kiwi"}]
    examples, stats = build_examples([{"messages": messages, "row": {}}], tok,
                                     cfg(max_seq_len=20, overlong="truncate_prompt"))
    (example,) = examples
    assert tok.decode(example["input_ids"]) == ("<|im_start|> system ok <|im_end|> <|im_start|> user Say kiwi "
                                                "<|im_end|> <|im_start|> assistant kiwi <|im_end|>")
    assert learned_text(tok, example) == "kiwi <|im_end|>"


def test_an_answer_longer_than_max_seq_len_is_dropped_even_when_truncating(tok):
    rows = [{"messages": to_messages(long_row(2, answer=" ".join(["fig"] * 40))), "row": {}}]
    examples, stats = build_examples(rows, tok, cfg(max_seq_len=30, overlong="truncate_prompt"))
    assert examples == [] and stats.dropped == {"answer_over_max_seq_len": 1}
