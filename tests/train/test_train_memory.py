"""The memory estimator reproduces the textbook figures and counts from configs alone."""
from __future__ import annotations

import json

import pytest

from train_testkit import metrics

from train.errors import ConfigError
from train.loop import train
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


def test_a_cpu_run_is_estimated_in_fp32_with_the_process_itself():
    common = dict(model="smollm2-135m", method="lora", seq_len=1024, micro_batch=4)
    gpu, cpu = estimate(**common), estimate(**common, precision="fp32", device="cpu")
    frozen = gpu.params - gpu.trainable
    assert gpu.weights == frozen * 2 + gpu.trainable * 4 and cpu.weights == frozen * 4 + cpu.trainable * 4
    assert cpu.runtime == 0.4 * GIB and gpu.runtime == 0 and cpu.activations > 1.3 * gpu.activations
    assert "peak RSS" in cpu.where and "fp32" in cpu.convention
    # logits only where tokens are learned: most of the logits' memory goes
    assert estimate(**common, logits_share=0.2).activations < 0.8 * gpu.activations
    with pytest.raises(ConfigError, match="precision must be bf16 or fp32"):
        estimate(**common, precision="fp16")


def test_gpt2_style_configs_are_estimated_and_other_families_named_in_one_line():
    from transformers import GPT2Config, T5Config

    config = GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=1000, n_positions=128)
    est = estimate(model=config, method="lora", seq_len=128, micro_batch=2, lora_dropout=0.0)
    assert est.params == 1000 * 64 + 128 * 64 + 2 * (4 * 64 + 4 * 64 * 64 + 4 * 64 + 2 * 4 * 64 * 64 + 5 * 64) + 2 * 64
    # a plain MLP of n_inner = 4 * n_embd: (4h + 2h + 2h + 2 * 4h) * 2 B per token and layer in bf16,
    # and the fp32 copies of the adapted layers' inputs (c_attn, attn c_proj, c_fc: h; mlp c_proj: 4h)
    per_token = 2 * ((4 * 64 + 2 * 64 + 2 * 64 + 2 * 256) * 2 + (3 * 64 + 256) * 4) + 4 * 64 + 1000 * 10
    assert est.activations == 128 * 2 * per_token
    assert estimate(model=GPT2Config(n_embd=64, n_layer=2, n_head=4, n_inner=128, vocab_size=1000),
                    method="full").activations < estimate(model=config, method="full").activations
    with pytest.raises(ConfigError, match=r"^model type 't5': the memory estimator knows Llama-style .* GPT-2-style"):
        estimate(model=T5Config())
    assert main(["--model", "nothing-known"]) == 2


def test_the_run_prints_its_estimate_first_and_its_measured_peak_at_the_end(tiny_cfg, capsys):
    result = train(tiny_cfg(max_steps=2, precision="no"))
    out = capsys.readouterr().out
    estimate_line = next(line for line in out.splitlines() if line.startswith("memory: estimated peak"))
    assert "(peak RSS of the process on the CPU, fp32)" in estimate_line
    assert out.index(estimate_line) < out.index("step 1 ")
    assert result["peak_mem_gib"] > 0.2 and result["estimated_mem_gib"] == pytest.approx(0.4, abs=0.01)
    assert all(m["peak_mem_gib"] > 0.2 for m in metrics(tmp_run(result)) if "loss" in m)


def tmp_run(result):
    from pathlib import Path

    return Path(result["output_dir"])
