"""The trainer warns when its training file repeats its held-out file."""
from __future__ import annotations

from train_testkit import write_jsonl

from train.loop import train
from train.overlap import overlap_warning


def row(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question},
                         {"role": "assistant", "content": answer}]}


TRAIN = [row("count of errors per service over the last day", "a"),
         row("p99 latency by route for the checkout service", "b"),
         row("which hosts ran out of disk space this week", "c"),
         row("slowest database queries grouped by table name", "d")]
HELD = [row("Count of errors per service over the last day?", "x"),     # exact, training line 1
        row("what were the slowest database queries grouped by table", "y"),  # 6-gram, line 4
        row("how many pods restarted in the payments namespace", "z")]


def test_a_training_file_that_repeats_its_held_out_file_is_named_row_by_row(tmp_path, tiny_cfg):
    held = write_jsonl(tmp_path / "val.jsonl", HELD)
    cfg = tiny_cfg(TRAIN, val_data=held)
    warning = overlap_warning(cfg)
    assert warning.startswith("2 of 4 training rows repeat held-out rows (exact 1, ngram 1): ")
    assert f"{cfg.data}:1 ~ {held}:1; {cfg.data}:4 ~ {held}:2;" in warning
    clean = write_jsonl(tmp_path / "clean.jsonl", HELD[2:])
    assert overlap_warning(tiny_cfg(TRAIN, val_data=clean)) is None
    assert overlap_warning(tiny_cfg(TRAIN)) is None  # a split of data cannot repeat it


def test_train_prints_the_warning(tmp_path, tiny_cfg, capsys):
    held = write_jsonl(tmp_path / "val.jsonl", HELD)
    train(tiny_cfg(TRAIN, val_data=held, max_steps=1))
    out = capsys.readouterr().out
    assert "warning: 2 of 4 training rows repeat held-out rows" in out
