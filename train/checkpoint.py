"""Checkpoints that resume exactly, and the final adapter.

A checkpoint is accelerate's ``save_state`` folder (weights, or only the adapter with LoRA;
optimizer, scheduler, every RNG) plus ``trainer_state.json``: the step, and the run's identity
(`IDENTITY_KEYS`, precision, processes), which a resumed run must share, and its
`RESUMABLE_KEYS`, whose changes are only reported.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import warnings
from pathlib import Path

from accelerate.utils import DistributedType

from train.errors import ConfigError

STATE_FILE = "trainer_state.json"
ADAPTER_FILE = "adapter_model.safetensors"


@contextlib.contextmanager
def _quiet_gguf_base():
    """peft warns when the base folder has no config.json, which is always so for a GGUF base."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Could not find a config file")
        yield


def _is_peft(model) -> bool:
    return hasattr(model, "peft_config")


def register_adapter_hooks(accelerator) -> None:
    """Save and load only the trainable adapter in checkpoints (single device and DDP;
    DeepSpeed and FSDP write their own sharded states)."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    def save_hook(models, weights, output_dir):
        if not all(_is_peft(accelerator.unwrap_model(m)) for m in models):
            return  # a full fine-tune: accelerate writes every weight
        for i, model in enumerate(models):
            with _quiet_gguf_base():
                state = get_peft_model_state_dict(accelerator.unwrap_model(model))
            save_file({k: v.detach().contiguous() for k, v in state.items()},
                      str(Path(output_dir) / f"{i}_{ADAPTER_FILE}"))
        weights.clear()  # nothing else to write: the base is frozen and reloaded from its source

    def load_hook(models, input_dir):
        if not all(_is_peft(accelerator.unwrap_model(m)) for m in models):
            return  # a full fine-tune: accelerate reads every weight back
        for i, model in enumerate(models):
            set_peft_model_state_dict(accelerator.unwrap_model(model),
                                      load_file(str(Path(input_dir) / f"{i}_{ADAPTER_FILE}")))
        models.clear()

    if accelerator.distributed_type in (DistributedType.NO, DistributedType.MULTI_GPU, DistributedType.MULTI_CPU):
        accelerator.register_save_state_pre_hook(save_hook)
        accelerator.register_load_state_pre_hook(load_hook)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = sorted(Path(output_dir, "checkpoints").glob("step_*/" + STATE_FILE))
    return found[-1].parent if found else None


def save_checkpoint(accelerator, model, output_dir: str | Path, state: dict, keep: int) -> Path:
    path = Path(output_dir, "checkpoints", f"step_{state['step']:06d}")
    kwargs = {}
    if accelerator.distributed_type == DistributedType.DEEPSPEED and _is_peft(accelerator.unwrap_model(model)):
        kwargs["exclude_frozen_parameters"] = True
    accelerator.save_state(str(path), **kwargs)
    if accelerator.is_main_process:
        # written last: a folder without it is an interrupted save and is never resumed from
        (path / STATE_FILE).write_text(json.dumps(state, indent=2))
        done = sorted(Path(output_dir, "checkpoints").glob("step_*/" + STATE_FILE))
        for old in done[: max(len(done) - keep, 0)]:
            shutil.rmtree(old.parent, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


#: the keys a resumed run must share with the run that wrote the checkpoint: they decide which
#: rows each step sees, the objective, the optimizer's path and what the saved tensors are
IDENTITY_KEYS = ("data", "val_data", "val_fraction", "format", "template", "eot_token", "train_on_inputs",
                 "max_seq_len", "overlong", "packing", "model", "gguf_file", "method", "lora_r", "lora_alpha",
                 "lora_dropout", "lora_target_modules", "precision", "seed", "micro_batch_size", "grad_accum",
                 "lr", "weight_decay", "warmup_ratio", "max_grad_norm")
#: the keys that may change between the parts of a run: its length (the learning-rate schedule
#: follows the new length), what it reports and saves, and trades of memory for compute
RESUMABLE_KEYS = ("epochs", "max_steps", "time_budget_min", "eval_every", "eval_batches", "log_every",
                  "save_every", "keep_checkpoints", "gradient_checkpointing", "attn_implementation", "merge",
                  "trackers", "assertion_eval")
#: where the run is written and whether to resume it: not properties of the run
LOCATION_KEYS = ("output_dir", "resume")


def _plain(value):
    """A config value as trainer_state.json stores it (tuples become lists, dataclasses dicts)."""
    return json.loads(json.dumps(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value))


def run_identity(cfg, accelerator) -> dict:
    identity = {key: _plain(getattr(cfg, key)) for key in IDENTITY_KEYS}
    identity.update(mixed_precision=str(accelerator.mixed_precision), processes=accelerator.num_processes)
    return identity


def run_settings(cfg) -> dict:
    return {key: _plain(getattr(cfg, key)) for key in RESUMABLE_KEYS}


def _differences(saved: dict, now: dict) -> list[str]:
    return [f"{key} ({saved[key]!r} there, {now[key]!r} here)" for key in now
            if key in saved and saved[key] != now[key]]


def check_resume(path: str | Path, identity: dict, settings: dict) -> tuple[dict, str | None]:
    """The checkpoint's trainer state, and a warning line when resumable settings changed;
    ConfigError, naming every differing key, for a checkpoint of a different run."""
    state = json.loads((Path(path) / STATE_FILE).read_text())
    changed = _differences(state.get("run", {}), identity)
    if changed:
        raise ConfigError(f"{path} was written by a run with different {', '.join(changed)}; resuming would "
                          f"mix two runs: use another output_dir, or resume: false to start over")
    changed = _differences(state.get("settings", {}), settings)
    warning = f"resuming with changed {', '.join(changed)}" if changed else None
    return state, warning


def load_checkpoint(accelerator, model, path: str | Path) -> None:
    """Restore the weights (adapter or full), optimizer, scheduler and RNG states of ``path``."""
    kwargs = {}
    if accelerator.distributed_type == DistributedType.DEEPSPEED and _is_peft(accelerator.unwrap_model(model)):
        kwargs["load_module_strict"] = False
    accelerator.load_state(str(path), **kwargs)


def save_final(accelerator, model, tokenizer, out_dir: str | Path) -> Path:
    """The adapter (or the full model) with its tokenizer, gathered from every shard."""
    state_dict = accelerator.get_state_dict(model)  # every process takes part (ZeRO-3, FSDP)
    if accelerator.is_main_process:
        with _quiet_gguf_base():
            accelerator.unwrap_model(model).save_pretrained(out_dir, state_dict=state_dict,
                                                           save_function=accelerator.save)
        tokenizer.save_pretrained(out_dir)
    accelerator.wait_for_everyone()
    return Path(out_dir)
