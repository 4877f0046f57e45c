"""The evaluation command on a LoRA adapter trained by train/ (SmolLM2 from its package)."""
import json

import pytest
import yaml

from curate import ChatExport, read_table
from examples.honeycomb import backends, evaluate, prompts, scoring
from train.config import config_dict, load_config
from train.loop import train


@pytest.mark.slow
def test_evaluate_a_trained_adapter_with_and_without_healing(tmp_path, monkeypatch):
    seeds = read_table("examples/honeycomb/data/seeds.jsonl").head(6)
    export = ChatExport(system=prompts.SYSTEM_PROMPT, human=prompts.USER_TEMPLATE, gpt="query")
    data = export.write(seeds, tmp_path / "export")["sharegpt"]
    cfg = load_config("train/configs/honeycomb.yaml", {
        "data": data, "val_fraction": 0.34, "max_steps": 1, "micro_batch_size": 1, "grad_accum": 1,
        "lora_r": 4, "max_seq_len": 768, "log_every": 1, "eval_every": 0, "save_every": 0,
        "output_dir": str(tmp_path / "run"),
        "assertion_eval": {"rows": 1, "max_new_tokens": 4, "every": 0, "at_start": False}})
    assert train(cfg)["steps"] == 1
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(config_dict(cfg)))
    out = tmp_path / "eval"
    argv = ["--backend", "adapter", "--adapter", str(tmp_path / "run" / "adapter"), "--train-config", str(config),
            "--limit", "2", "--attempts", "2", "--max-tokens", "24", "--out", str(out)]
    assert evaluate.main(argv) == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["backend"] == "adapter" and report["single_attempt"]["rows"] == 2
    assert report["self_healing_2"]["valid"] >= report["single_attempt"]["valid"]
    predictions = [json.loads(line) for line in open(out / "predictions.jsonl")]
    for p in predictions:
        assert isinstance(p["first"], str)
        assert p["attempts"] == (1 if p["first_valid"] else 2)
        assert 0.0 <= p["final_atom_f1"] <= 1.0 and set(p["final_parts"]) <= set(scoring.KINDS)
    first_f1 = sum(p["first_atom_f1"] for p in predictions) / 2
    assert report["single_attempt"]["atom_f1"] == pytest.approx(first_f1, abs=1e-4)

    def no_loading(*args):
        raise AssertionError("every row is saved: the model must not be loaded again")

    monkeypatch.setattr(backends, "_load_model", no_loading)
    assert evaluate.main(argv) == 0
    assert json.loads((out / "evaluation.json").read_text()) == report
