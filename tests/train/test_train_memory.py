"""The memory estimator reproduces the textbook figures and counts from configs alone."""
from __future__ import annotations

import json

import pytest

from train.errors import ConfigError
from train.memory import GIB, count_parameters, estimate, main, model_config


def test_a_7b_model_at_8_bytes_per_parameter_needs_52_gib_and_does_not_fit_an_a100_40gb():
    est = estimate(params=7e9, method="full", optim="adamw16")
    assert est.states == 5.6e10
    assert round(est.states / GIB, 2) == 52.15
    assert (est.weights, est.gradients, est.optimizer) == (1.4e10, 1.4e10, 2.8e10)
    assert not est.fits("A100-40GB") and est.fits("A100-80GB")


def test_mixed_precision_adam_costs_16_bytes_per_parameter():
    est = estimate(params=7e9, method="full", optim="adamw")
    assert est.states / est.params == 16
    assert "16 B/param" in est.convention


def test_llama2_7b_lora_r4_on_qkv_trains_3145728_parameters_counted_on_the_meta_device():
    counts = count_parameters(model_config("llama-2-7b"), "lora", lora_r=4, lora_targets=["q_proj", "k_proj", "v_proj"])
    assert counts["trainable"] == 3_145_728
    assert counts["total"] == 6_738_415_616  # base parameters; the meta device holds no weights


def test_lora_and_qlora_shrink_the_weights_and_checkpointing_the_activations():
    common = dict(model="llama-2-7b", seq_len=2048, micro_batch=1, lora_r=16)
    lora, qlora = estimate(method="lora", **common), estimate(method="qlora", **common)
    full = estimate(method="full", **common)
    assert full.total > lora.total > qlora.total
    assert 12.5 < lora.weights / GIB < 12.7  # bf16 base, fp32 adapter
    assert 3.5 < qlora.weights / GIB < 4.5   # NF4 blocks, bf16 embeddings and lm_head
    ckpt = estimate(method="lora", gradient_checkpointing=True, **common)
    assert ckpt.activations < lora.activations / 5
    assert estimate(method="lora", **{**common, "micro_batch": 2}).activations == pytest.approx(2 * lora.activations)


def test_a_local_config_json_is_read(tmp_path):
    config = {"model_type": "llama", "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 128,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4}
    (tmp_path / "config.json").write_text(json.dumps(config))
    est = estimate(model=str(tmp_path), method="full")
    # embeddings + lm_head + 2 layers of (4 attention 64x64 + 3 MLP 64x128 + 2 norms) + final norm
    assert est.params == 2 * 1000 * 64 + 2 * (4 * 64 * 64 + 3 * 64 * 128 + 2 * 64) + 64
    with pytest.raises(ConfigError, match="not a known name"):
        estimate(model=str(tmp_path / "nothing"))


def test_the_command_line_states_the_convention_and_the_verdict(capsys):
    assert main(["--params", "7e9", "--method", "full", "--optim", "adamw16", "--gpu", "A100-40GB"]) == 0
    out = capsys.readouterr().out
    assert "2 weights + 2 grads + 4 optimizer = 8 B/param" in out
    assert "52.15 GiB" in out and "5.6e+10 B" in out and "A100-40GB" in out and "does NOT fit" in out


def test_tied_embeddings_are_counted_once():
    # SmolLM2-135M shares its input and output embeddings; the GGUF model holds 134,515,008 parameters
    assert count_parameters(model_config("smollm2-135m"))["total"] == 134_515_008
