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


def test_logits_computed_only_where_tokens_are_learned_give_the_full_loss_and_gradients(tiny_model_dir):
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    from train.data import IGNORE_INDEX, collate
    from train.loop import loss_sum

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    examples = [{"input_ids": [1, 5, 6, 7, 8, 2], "labels": [-100, -100, -100, 7, 8, 2]},
                {"input_ids": [1, 9, 10, 11], "labels": [-100, -100, 10, 11]}]
    batch = collate(examples, pad_id=0)
    rows_seen = []
    hook = model.lm_head.register_forward_hook(lambda module, args, out: rows_seen.append(args[0].shape[:-1]))
    masked = loss_sum(model, batch)
    hook.remove()
    assert rows_seen == [torch.Size([5])]  # 3 + 2 learned tokens: the lm_head saw those positions only
    masked.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    full = F.cross_entropy(logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(),
                           ignore_index=IGNORE_INDEX, reduction="sum")
    full.backward()
    torch.testing.assert_close(masked, full, rtol=1e-5, atol=1e-5)
    for grad, p in zip(grads, model.parameters()):
        torch.testing.assert_close(grad, p.grad, rtol=1e-4, atol=1e-6)


def test_loss_falls_when_overfitting_a_handful_of_rows(tiny_cfg, tmp_path, capsys):
    result = train(tiny_cfg(max_steps=30, eval_every=10))
    seen = losses(tmp_path / "run")
    assert result["stopped"] == "max_steps" and result["steps"] == 30 and len(seen) == 30
    assert sum(seen[-5:]) / 5 < 0.25 * seen[0]
    # val_fraction 0: no held-out rows, so no val_loss at all (not a nan), and the log says why
    assert not [m for m in metrics(tmp_path / "run") if "val_loss" in m]
    assert "no held-out rows (val_fraction 0, no val_data): no val_loss" in capsys.readouterr().out
    record = next(m for m in metrics(tmp_path / "run") if "loss" in m)
    assert record["tokens_per_s"] > 0 and record["mfu"] is None  # no GPU: no peak FLOPs to divide by


def test_held_out_loss_every_eval_every_steps_and_at_the_end(tiny_cfg, tmp_path):
    train(tiny_cfg(max_steps=25, eval_every=10, val_fraction=0.25))
    assert [m["step"] for m in metrics(tmp_path / "run") if "val_loss" in m] == [10, 20, 25]


def test_a_time_budget_stop_still_reports_the_held_out_loss(tiny_cfg, tmp_path):
    result = train(tiny_cfg(max_steps=6, eval_every=0, val_fraction=0.25, time_budget_min=1e-6))
    assert result["stopped"] == "time_budget" and result["steps"] == 1
    val = [m for m in metrics(tmp_path / "run") if "val_loss" in m]
    assert [m["step"] for m in val] == [1] and math.isfinite(val[0]["val_loss"])


def test_the_lr_logged_at_a_step_is_the_lr_that_step_used(tiny_cfg, tmp_path):
    train(tiny_cfg(max_steps=8, warmup_ratio=0.5, lr=1e-2))  # 4 warmup steps: 1/4, 2/4, 3/4, 1, then cosine
    logged = [m["lr"] for m in metrics(tmp_path / "run") if "loss" in m]
    assert logged == pytest.approx([1e-2 * lr_factor(step, warmup=4, total=8) for step in range(8)], rel=1e-9)
    assert logged[0] == pytest.approx(2.5e-3)


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


@pytest.mark.parametrize("method", ["lora", "full"])
def test_resume_continues_with_the_same_losses_as_an_uninterrupted_run(tiny_cfg, tmp_path, method):
    # dropout on, 2 micro-batches per step, an epoch of 2 steps and evaluations in between:
    # RNG, accumulation, epochs and data position all matter; a full fine-tune resumes its weights
    settings = dict(max_steps=6, micro_batch_size=2, grad_accum=2, lora_dropout=0.3, save_every=0,
                    val_fraction=0.25, eval_every=1, method=method, lr=1e-2 if method == "lora" else 1e-3)
    whole = train(tiny_cfg(**settings, output_dir=str(tmp_path / "whole")))
    first = train(tiny_cfg(**settings, output_dir=str(tmp_path / "parts"), time_budget_min=1e-6))
    assert first["stopped"] == "time_budget" and first["steps"] == 1
    saved = {p.name for p in (tmp_path / "parts" / "checkpoints" / "step_000001").iterdir()}
    assert ("model.safetensors" in saved) == (method == "full")  # LoRA: the adapter only
    assert ("0_adapter_model.safetensors" in saved) == (method == "lora")
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


def test_a_checkpoint_of_another_run_is_not_resumed(tiny_cfg, tmp_path):
    train(tiny_cfg(max_steps=2))
    written = (tmp_path / "run" / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"different lora_r \(8 there, 4 here\), seed \(0 there, 1 here\); "
                                          r"resuming would mix two runs"):
        train(tiny_cfg(max_steps=4, lora_r=4, seed=1))
    changed = dict(lr=2e-2, warmup_ratio=0.1, lora_dropout=0.1, weight_decay=0.01, max_grad_norm=0.5)
    with pytest.raises(ConfigError) as refused:
        train(tiny_cfg(max_steps=4, **changed))
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'run' / 'checkpoints' / 'step_000002'} was")
    assert [key for key in changed if f" {key} (" in message] == list(changed)
    assert (tmp_path / "run" / "config.yaml").read_text() == written  # a refused run writes nothing


def test_changed_run_lengths_and_report_settings_resume_with_a_warning(tiny_cfg, capsys):
    train(tiny_cfg(max_steps=2))
    assert "warning" not in capsys.readouterr().out
    result = train(tiny_cfg(max_steps=4, log_every=2, eval_every=3, gradient_checkpointing=True))
    assert result["steps"] == 4  # a longer schedule for the same run continues it
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert lines == ["warning: resuming with changed max_steps (2 there, 4 here), eval_every (0 there, 3 here), "
                     "log_every (1 there, 2 here), gradient_checkpointing (False there, True here)"]


def test_every_config_key_is_either_part_of_the_run_or_allowed_to_change():
    from dataclasses import fields

    from train.checkpoint import IDENTITY_KEYS, LOCATION_KEYS, RESUMABLE_KEYS
    from train.config import TrainConfig

    groups = IDENTITY_KEYS + RESUMABLE_KEYS + LOCATION_KEYS
    assert sorted(groups) == sorted(f.name for f in fields(TrainConfig)) and len(set(groups)) == len(groups)


def test_assertion_eval_without_held_out_rows_is_refused(tiny_cfg):
    with pytest.raises(ConfigError, match="set val_fraction above 0 or val_data"):
        train(tiny_cfg(max_steps=1, assertion_eval={"checker": "train_testkit:is_short"}))


@pytest.mark.slow
def test_a_bf16_run_on_the_cpu_learns(tiny_cfg, tmp_path):
    result = train(tiny_cfg(max_steps=20, precision="bf16"))
    seen = losses(tmp_path / "run")
    assert next(p for p in result["model"].parameters() if not p.requires_grad).dtype == torch.bfloat16
    assert sum(seen[-5:]) / 5 < 0.5 * seen[0]
