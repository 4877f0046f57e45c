"""Evaluation with assertions: fields from rows, checker loading, and the hook in the loop."""
from __future__ import annotations

import pytest
from train_testkit import metrics, repeat_rows, write_jsonl

from train.config import AssertionEvalConfig
from train.errors import ConfigError, DataError
from train.evals import _is_valid, extract_fields, load_checker
from train.loop import train

HONEYCOMB_LIKE = {"row": {"columns": ["a", "b"]}, "messages": [
    {"role": "system", "content": "You write queries."},
    {"role": "user", "content": 'NLQ: "slow requests"\n\nColumns: [\'duration_ms\', \'http.route\']'},
    {"role": "assistant", "content": "{}"}]}


def test_fields_come_from_a_turn_through_a_regex_and_a_parser():
    fields = {"columns": {"turn": "human", "regex": r"Columns: (\[.*\])", "parse": "list"},
              "nlq": {"regex": r'NLQ: "(.*?)"'},
              "given": "columns"}
    assert extract_fields(HONEYCOMB_LIKE, fields) == {
        "columns": ["duration_ms", "http.route"], "nlq": "slow requests", "given": ["a", "b"]}
    comma = {"row": {}, "messages": [{"role": "user", "content": "COLUMNS:x, y,z\nQ"}]}
    assert extract_fields(comma, {"columns": {"regex": "COLUMNS:(.*)", "parse": "csv"}}) == {"columns": ["x", "y", "z"]}


def test_field_mistakes_are_explained():
    with pytest.raises(DataError, match="does not match"):
        extract_fields(HONEYCOMB_LIKE, {"columns": {"regex": "COLUMNS:(.*)"}})
    with pytest.raises(DataError, match=r"row has no field 'cols'; it has \['columns'\]"):
        extract_fields(HONEYCOMB_LIKE, {"columns": "cols"})
    with pytest.raises(ConfigError, match="unknown key"):
        extract_fields(HONEYCOMB_LIKE, {"columns": {"regexp": "x"}})
    with pytest.raises(DataError, match="expected a list"):
        extract_fields(HONEYCOMB_LIKE, {"nlq": {"regex": r'NLQ: (".*?")', "parse": "list"}})


def test_checkers_are_loaded_by_name_and_their_answers_read():
    assert load_checker("train_testkit:same_word")("fig ", word="fig") == []
    with pytest.raises(ConfigError, match="cannot import 'no_such_module'"):
        load_checker("no_such_module:check")
    with pytest.raises(ConfigError, match="has no checker named 'nope'"):
        load_checker("train_testkit:nope")
    assert _is_valid(load_checker("train_testkit:is_short")("ok")) == (True, [])
    assert _is_valid(load_checker("train_testkit:same_word")("pear", word="fig")) == (False, ["wrong_word"])
    # the one convention of assertions.calling: a message is a failure, None a pass
    assert _is_valid("too long") == (False, ["check_failed"]) and _is_valid(None) == (True, [])


def test_validity_is_logged_next_to_the_loss_and_rises_as_the_model_learns(tiny_cfg, tmp_path):
    held_out = write_jsonl(tmp_path / "held.jsonl", repeat_rows(8))  # the training rows: memorising suffices
    ecfg = {"checker": "train_testkit:same_word", "every": 10, "rows": 8, "max_new_tokens": 3, "at_start": True,
            "check_fields": {"word": {"turn": "user", "regex": r"Repeat : (\w+)"}}}
    train(tiny_cfg(max_steps=40, val_data=held_out, assertion_eval=ecfg))
    rates = {m["step"]: m["valid_rate"] for m in metrics(tmp_path / "run") if "valid_rate" in m}
    assert sorted(rates) == [0, 10, 20, 30, 40]
    assert rates[0] <= 0.25 and rates[40] >= 0.75
    assert all(m["valid_n"] == 8 for m in metrics(tmp_path / "run") if "valid_n" in m)
    assert isinstance(AssertionEvalConfig(**ecfg), AssertionEvalConfig)


def test_a_field_mapping_that_does_not_fit_the_rows_stops_the_run_before_training(tiny_cfg, tmp_path):
    ecfg = {"checker": "train_testkit:same_word", "check_fields": {"word": {"regex": r"Say : (\w+)"}}}
    with pytest.raises(DataError, match=r"assertion_eval.check_fields.word: regex .*Say.* does not match 'Repeat : "):
        train(tiny_cfg(max_steps=1, val_fraction=0.25, assertion_eval=ecfg))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
