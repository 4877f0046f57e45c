"""The loop on a tiny model: it learns, its adapter reloads exactly, and it resumes exactly."""
from __future__ import annotations

import math

import pytest
import torch
from train_testkit import metrics

from train.errors import ConfigError
from train.loop import lr_factor, train
from train.model import load_trained


def losses(run_dir):
    return [m["loss"] for m in metrics(run_dir) if "loss" in m]


def test_lr_warms_up_linearly_then_follows_a_cosine_to_zero():
    factors = [lr_factor(step, warmup=4, total=20) for step in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and all(a > b for a, b in zip(factors[4:], factors[5:]))
    assert math.isclose(lr_factor(12, 4, 20), 0.5) and factors[-1] < 0.01


def test_loss_falls_when_overfitting_a_handful_of_rows(tiny_cfg, tmp_path):
    result = train(tiny_cfg(max_steps=30, eval_every=10))
    seen = losses(tmp_path / "run")
    assert result["stopped"] == "max_steps" and result["steps"] == 30 and len(seen) == 30
    assert sum(seen[-5:]) / 5 < 0.25 * seen[0]
    val = [m["val_loss"] for m in metrics(tmp_path / "run") if "val_loss" in m]
    assert len(val) == 3  # steps 10, 20 and the end (val_fraction 0: no held-out rows -> nan)
    record = next(m for m in metrics(tmp_path / "run") if "loss" in m)
    assert record["tokens_per_s"] > 0 and record["mfu"] is None  # no GPU: no peak FLOPs to divide by


def test_adapter_save_and_load_gives_identical_logits(tiny_cfg):
    cfg = tiny_cfg(max_steps=5, merge=True)
    result = train(cfg)
    trained = result["model"].eval()
    reloaded = load_trained(cfg, result["adapter_dir"]).eval()
    ids = torch.tensor([[1, 5, 16, 17, 24, 2, 1, 6]])
    with torch.no_grad():
        expected = trained(ids).logits
        torch.testing.assert_close(reloaded(ids).logits, expected, atol=0, rtol=0)
        with reloaded.disable_adapter():
            assert not torch.allclose(reloaded(ids).logits, expected)  # the adapter changed something
        from transformers import AutoModelForCausalLM

        merged = AutoModelForCausalLM.from_pretrained(f"{result['output_dir']}/merged").eval()
        torch.testing.assert_close(merged(ids).logits, expected, atol=1e-5, rtol=1e-5)


def test_resume_continues_with_the_same_losses_as_an_uninterrupted_run(tiny_cfg, tmp_path):
    # dropout on, 2 micro-batches per step, an epoch of 2 steps and evaluations in between:
    # RNG, accumulation, epochs and data position all matter
    settings = dict(max_steps=6, micro_batch_size=2, grad_accum=2, lora_dropout=0.3, save_every=0,
                    val_fraction=0.25, eval_every=1)
    whole = train(tiny_cfg(**settings, output_dir=str(tmp_path / "whole")))
    first = train(tiny_cfg(**settings, output_dir=str(tmp_path / "parts"), time_budget_min=1e-6))
    assert first["stopped"] == "time_budget" and first["steps"] == 1
    second = train(tiny_cfg(**settings, output_dir=str(tmp_path / "parts")))
    assert second["stopped"] == "max_steps" and second["steps"] == 6
    assert losses(tmp_path / "parts") == pytest.approx(losses(tmp_path / "whole"), rel=1e-6, abs=0)
    assert len(losses(tmp_path / "parts")) == 6 and whole["steps"] == 6
    val = [m["val_loss"] for m in metrics(tmp_path / "parts") if "val_loss" in m]
    assert val == pytest.approx([m["val_loss"] for m in metrics(tmp_path / "whole") if "val_loss" in m], rel=1e-6)


def test_the_loss_is_a_mean_over_tokens_whatever_the_accumulation(tiny_cfg, tmp_path):
    rows = [{"messages": [{"role": "user", "content": "Say " + " ".join(["apple"] * (i + 1))},
                          {"role": "assistant", "content": " ".join(["pear"] * (3 * i + 1))}]} for i in range(8)]
    one = tiny_cfg(rows, max_steps=3, micro_batch_size=4, grad_accum=1, output_dir=str(tmp_path / "a"))
    two = tiny_cfg(rows, max_steps=3, micro_batch_size=2, grad_accum=2, output_dir=str(tmp_path / "b"))
    train(one)
    train(two)
    assert losses(tmp_path / "b") == pytest.approx(losses(tmp_path / "a"), rel=1e-5)


def test_gradient_checkpointing_changes_memory_not_results(tiny_cfg, tmp_path):
    train(tiny_cfg(max_steps=3, output_dir=str(tmp_path / "plain")))
    result = train(tiny_cfg(max_steps=3, gradient_checkpointing=True, output_dir=str(tmp_path / "ckpt")))
    assert any(getattr(m, "gradient_checkpointing", False) is True for m in result["model"].modules())
    assert losses(tmp_path / "ckpt") == pytest.approx(losses(tmp_path / "plain"), rel=1e-5)


def test_a_checkpoint_of_another_run_is_not_resumed(tiny_cfg):
    train(tiny_cfg(max_steps=2))
    with pytest.raises(ConfigError, match=r"different lora_r, seed; resuming would mix two runs"):
        train(tiny_cfg(max_steps=4, lora_r=4, seed=1))
    result = train(tiny_cfg(max_steps=4))  # a longer schedule for the same run continues it
    assert result["steps"] == 4


def test_assertion_eval_without_held_out_rows_is_refused(tiny_cfg):
    with pytest.raises(ConfigError, match="set val_fraction above 0 or val_data"):
        train(tiny_cfg(max_steps=1, assertion_eval={"checker": "train_testkit:is_short"}))
