"""Predict the GPU memory of a fine-tuning run before renting the GPU.

    python -m train.memory --model llama-2-7b --method lora --seq-len 2048 --micro-batch 4 --gpu A100-40GB
    python -m train.memory --params 7e9 --method full --optim adamw16 --gpu A100-40GB

Parameters are counted on the meta device (with peft), so no weights are needed.
Bytes per parameter (the convention, printed with every estimate):

- full, ``adamw`` (mixed precision): 16 = fp32 weights 4 + fp32 grads 4 + Adam m, v 8
  (ZeRO's 2 + 2 + 12 split sums the same);
- full, ``adamw16`` (pure 16-bit): 8 = weights 2 + grads 2 + Adam m, v 2 + 2;
- lora: frozen base 2 (bf16) + 16 per adapter parameter (fp32 weight, grad, Adam m, v);
- qlora: as lora, but linear layers of the blocks in NF4 with double quantization,
  4.127 bits per parameter (Dettmers et al., 2023); embeddings and lm_head stay bf16.

Activations per token and layer, in bf16: ``(6h + 2kv + 4I) * 2`` bytes with sdpa/flash
attention (norms 4h, q and attention output 2h, k and v 2kv, MLP 4I); LoRA adds an fp32 copy
of each adapted layer's input (and a dropout mask); gradient checkpointing keeps each layer's
input (2h) plus one layer recomputed. Logits: ``V * (2 + 4 + 4)`` bytes per token.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from train.errors import ConfigError, TrainError
from train.hardware import GPUS, MIB

GIB = 2**30
NF4_BYTES = 4.127 / 8
RESERVE_GIB = 1.0  # CUDA context and allocator slack when deciding "fits"

_LLAMA2 = dict(model_type="llama", vocab_size=32000, max_position_embeddings=4096, tie_word_embeddings=False)
_SMOL = dict(model_type="llama", vocab_size=49152, max_position_embeddings=8192, tie_word_embeddings=True)
KNOWN_MODELS = {
    "llama-2-7b": dict(_LLAMA2, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32),
    "llama-2-13b": dict(_LLAMA2, hidden_size=5120, intermediate_size=13824, num_hidden_layers=40,
                        num_attention_heads=40, num_key_value_heads=40),
    "llama-3-8b": dict(model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                       num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                       tie_word_embeddings=False),
    "llama-3.2-1b": dict(model_type="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                         num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                         tie_word_embeddings=True),
    "mistral-7b": dict(model_type="mistral", vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                       num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                       tie_word_embeddings=False),
    "smollm2-135m": dict(_SMOL, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3),
    "smollm2-360m": dict(_SMOL, hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
                         num_attention_heads=15, num_key_value_heads=5),
    "smollm2-1.7b": dict(_SMOL, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                         num_attention_heads=32, num_key_value_heads=32),
}
OPTIM_BYTES = {"adamw": (4, 4, 8), "adamw16": (2, 2, 4)}  # weights, grads, optimizer states per param
ACT_BYTES = {"bf16": 2, "fp32": 4}
FIRST_BLOCK = re.compile(r"\.(layers|h|blocks|layer)\.0\.")  # Llama-style, GPT-2-style block names
#: on a CPU, the process before it loads a model (Python, torch, transformers, peft: measured 0.37 GiB)
CPU_RUNTIME_GIB = 0.4
#: on a CPU, peak RSS over what autograd keeps: backward-pass buffers and memory the allocator
#: does not hand back (fitted to SmolLM2-135M runs, train/README.md)
CPU_ALLOCATOR_FACTOR = 1.0


def model_config(model: str):
    """A transformers config from a known name, a config.json, or a folder holding one."""
    from transformers import AutoConfig

    if model.lower() in KNOWN_MODELS:
        kwargs = dict(KNOWN_MODELS[model.lower()])
        return AutoConfig.for_model(kwargs.pop("model_type"), **kwargs)
    path = Path(model)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ConfigError(f"model {model!r}: not a known name ({', '.join(KNOWN_MODELS)}) "
                          f"and not a config.json or a folder holding one")
    raw = json.loads(path.read_text())
    return AutoConfig.for_model(raw.pop("model_type"), **raw)


def count_parameters(config, method: str = "full", lora_r: int = 16, lora_targets="all-linear") -> dict:
    """Total, trainable, and block-linear (quantized by QLoRA) parameter counts, weights not needed."""
    import torch
    from transformers import AutoModelForCausalLM

    # the meta device holds shapes only; unlike accelerate's init_empty_weights it also lets
    # transformers 5 tie the input and output embeddings, so tied models are not counted twice
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
        block_linear = sum(m.weight.numel() for name, m in model.named_modules()
                           if type(m).__name__ in ("Linear", "Conv1D") and "lm_head" not in name)
        total = sum(p.numel() for p in model.parameters())
        trainable, lora_inputs = total, 0
        if method != "full":
            from peft import LoraConfig, get_peft_model

            with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
                warnings.simplefilter("ignore", FutureWarning)
                warnings.filterwarnings("ignore", message="fan_in_fan_out")  # GPT-2's Conv1D layers
                model = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=2 * lora_r,
                                                         target_modules=lora_targets))
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            lora_inputs = sum(m.in_features for name, m in model.named_modules()
                              if name.endswith("lora_A.default") and FIRST_BLOCK.search(name))
    return {"total": total, "trainable": trainable, "block_linear": block_linear, "lora_inputs": lora_inputs}


@dataclass
class MemoryEstimate:
    """Bytes for each part of a training run's memory; see the module docstring."""

    params: int
    trainable: int
    weights: float
    gradients: float
    optimizer: float
    activations: float | None
    convention: str
    precision: str = "bf16"
    device: str = "cuda"
    runtime: float = 0.0  # on a CPU: the process itself (Python, torch and its libraries)

    @property
    def states(self) -> float:
        return self.weights + self.gradients + self.optimizer

    @property
    def total(self) -> float:
        return self.states + (self.activations or 0) + self.runtime

    @property
    def where(self) -> str:
        return "peak RSS of the process on the CPU" if self.device == "cpu" else "peak allocated on the GPU"

    def fits(self, gpu: str) -> bool:
        if gpu not in GPUS:
            raise ConfigError(f"unknown GPU {gpu!r}; known: {', '.join(GPUS)}")
        return self.total <= GPUS[gpu][0] * MIB - RESERVE_GIB * GIB


#: model types with a plain (not gated) MLP among those with Llama-style config names
NON_GATED = ("phi", "gpt_neox", "starcoder2")
FAMILIES = ("Llama-style configs (Llama, Mistral, Qwen2, SmolLM2...: hidden_size, intermediate_size, "
            "num_hidden_layers) and GPT-2-style ones (n_embd, n_layer, n_inner)")


def model_dims(config) -> dict:
    """The sizes activations depend on, from a Llama-style or a GPT-2-style config."""
    kind = getattr(config, "model_type", None)
    if all(hasattr(config, key) for key in ("hidden_size", "intermediate_size", "num_hidden_layers")):
        h, heads = config.hidden_size, config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or h // heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        return {"h": h, "inter": config.intermediate_size, "layers": config.num_hidden_layers, "q": heads * head_dim,
                "kv": kv_heads * head_dim, "vocab": config.vocab_size, "gated": kind not in NON_GATED}
    if all(hasattr(config, key) for key in ("n_embd", "n_layer")):
        h = config.n_embd
        return {"h": h, "inter": getattr(config, "n_inner", None) or 4 * h, "layers": config.n_layer, "q": h,
                "kv": h, "vocab": config.vocab_size, "gated": False}
    raise ConfigError(f"model type {kind!r}: the memory estimator knows {FAMILIES}")


def activation_bytes(config, seq_len: int, micro_batch: int, gradient_checkpointing: bool,
                     lora_inputs: int = 0, lora_dropout: float = 0.0, precision: str = "bf16",
                     logits_share: float = 1.0) -> float:
    """What autograd keeps for the backward pass, plus the logits (see the module docstring)."""
    d, size = model_dims(config), ACT_BYTES[precision]
    mlp = (4 if d["gated"] else 2) * d["inter"]
    # an adapted layer's input: a bf16 base casts it to the fp32 adapter (4 B), dropout keeps
    # its fp32 output and a mask (4 + 1 B); an fp32 base without dropout shares the base's copy
    dropout = lora_dropout > 0
    lora = lora_inputs * ((4 + dropout) if precision == "bf16" else 5 * dropout)
    per_layer = (4 * d["h"] + 2 * d["q"] + 2 * d["kv"] + mlp) * size + lora
    tokens = seq_len * micro_batch
    if gradient_checkpointing:
        blocks = tokens * (d["layers"] * d["h"] * size + per_layer)
    else:
        blocks = tokens * d["layers"] * per_layer
    return blocks + tokens * 4 * d["h"] + tokens * logits_share * d["vocab"] * (size + 4 + 4)


def estimate(model: str | None = None, params: float | None = None, method: str = "lora", optim: str = "adamw",
             seq_len: int = 2048, micro_batch: int = 1, gradient_checkpointing: bool = False, lora_r: int = 16,
             lora_targets="all-linear", lora_dropout: float = 0.05, precision: str = "bf16",
             device: str = "cuda", logits_share: float = 1.0) -> MemoryEstimate:
    """Memory of one training run; give ``model`` (name, config path or config) or a bare ``params`` count.

    ``precision`` is the compute precision (bf16 or fp32: the frozen base is stored in it);
    ``device`` cuda gives the memory allocated on the GPU, cpu the peak RSS of the process;
    ``logits_share`` is the share of positions whose logits are computed (1: all of them).
    """
    if method not in ("full", "lora", "qlora") or optim not in OPTIM_BYTES:
        raise ConfigError(f"method must be full, lora or qlora and optim adamw or adamw16; got {method}, {optim}")
    if precision not in ACT_BYTES or device not in ("cuda", "cpu"):
        raise ConfigError(f"precision must be bf16 or fp32 and device cuda or cpu; got {precision}, {device}")
    if model is None and params is None:
        raise ConfigError("give a model (name or config.json) or --params")
    config = model_config(model) if isinstance(model, str) else model
    if config is not None:
        model_dims(config)  # an unknown family fails here, with the families it knows
        counts = count_parameters(config, method, lora_r, lora_targets)
    else:
        counts = {"total": int(params), "trainable": int(params) if method == "full" else 0,
                  "block_linear": int(params), "lora_inputs": 0}
    weights, grads, opt, convention = _state_bytes(counts, method, optim, precision)
    acts = None
    if config is not None:
        acts = activation_bytes(config, seq_len, micro_batch, gradient_checkpointing,
                                counts["lora_inputs"] if method != "full" else 0, lora_dropout, precision,
                                logits_share)
        if device == "cpu":
            acts *= CPU_ALLOCATOR_FACTOR
    runtime = CPU_RUNTIME_GIB * GIB if device == "cpu" else 0.0
    return MemoryEstimate(counts["total"], counts["trainable"], weights, grads, opt, acts, convention,
                          precision, device, runtime)


def _state_bytes(counts: dict, method: str, optim: str, precision: str) -> tuple:
    """Weights, gradients, optimizer states, and the convention in words."""
    n, adapter = counts["total"], counts["trainable"]
    if method == "full":
        w, g, o = OPTIM_BYTES[optim]
        return n * w, n * g, n * o, f"full fine-tune, {optim}: {w} weights + {g} grads + {o} optimizer = " \
                                    f"{w + g + o} B/param"
    frozen, size = n - adapter, ACT_BYTES[precision]
    if method == "qlora":
        weights = counts["block_linear"] * NF4_BYTES + (frozen - counts["block_linear"]) * 2 + adapter * 4
        base = f"block linears {NF4_BYTES:.3f} B/param (NF4 + double quant), the rest 2"
    else:
        weights, base = frozen * size + adapter * 4, f"{size} B/param ({precision})"
    convention = f"{method}: frozen base {base}; adapter 4 weight + 4 grad + 8 Adam = 16 B/param"
    return weights, adapter * 4, adapter * 8, convention


def report(est: MemoryEstimate, gpu: str | None = None, seq_len: int = 0, micro_batch: int = 0) -> str:
    gib = lambda b: f"{b / GIB:8.2f} GiB  ({b:.3g} B)"  # noqa: E731
    lines = [f"parameters        {est.params:,} (trainable {est.trainable:,})",
             f"convention        {est.convention}",
             f"weights           {gib(est.weights)}",
             f"gradients         {gib(est.gradients)}",
             f"optimizer states  {gib(est.optimizer)}",
             f"  states total    {gib(est.states)}  = {est.states / max(est.params, 1):.2f} B/param"]
    if est.activations is None:
        lines.append("activations       n/a (give --model to count them)")
    else:
        lines.append(f"activations       {gib(est.activations)}  (seq {seq_len} x micro-batch {micro_batch}, "
                     f"{est.precision})")
    if est.runtime:
        lines.append(f"process           {gib(est.runtime)}  (Python, torch and libraries)")
    lines.append(f"total             {gib(est.total)}  ({est.where})")
    for name in [gpu] if gpu else []:
        verdict = "fits" if est.fits(name) else "does NOT fit"
        lines.append(f"{name:<17} {GPUS[name][0] * MIB / GIB:.1f} GiB: {verdict} "
                     f"(keeping {RESERVE_GIB:.0f} GiB for the CUDA context)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help=f"known name ({', '.join(KNOWN_MODELS)}), config.json or model folder")
    parser.add_argument("--params", type=float, help="a bare parameter count (e.g. 7e9) instead of --model")
    parser.add_argument("--method", default="lora", choices=["full", "lora", "qlora"])
    parser.add_argument("--optim", default="adamw", choices=list(OPTIM_BYTES))
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--micro-batch", type=int, default=1)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-targets", default="all-linear", help="all-linear or a comma list: q_proj,v_proj")
    parser.add_argument("--lora-dropout", type=float, default=0.05)
    parser.add_argument("--gpu", choices=list(GPUS), help="say whether the run fits this GPU")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cpu: the peak RSS of a CPU run, which computes in fp32 unless --precision bf16")
    parser.add_argument("--precision", choices=list(ACT_BYTES),
                        help="compute precision (default: bf16 on cuda, fp32 on cpu)")
    parser.add_argument("--logits-share", type=float, default=1.0,
                        help="share of positions whose logits are computed (the trainer: learned ones only)")
    args = parser.parse_args(argv)
    targets = args.lora_targets if args.lora_targets == "all-linear" else args.lora_targets.split(",")
    precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    try:
        est = estimate(args.model, args.params, args.method, args.optim, args.seq_len, args.micro_batch,
                       args.gradient_checkpointing, args.lora_r, targets, args.lora_dropout, precision,
                       args.device, args.logits_share)
    except TrainError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report(est, args.gpu, args.seq_len, args.micro_batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
