"""The training loop: ``train(cfg)``, one function to read top to bottom, and its helpers.

An optimizer step's loss is the mean over every learned token of its
``micro_batch_size * grad_accum * processes`` rows (not a mean of per-batch means, which
would weigh short answers more); the learning rate warms up linearly, then follows a cosine.
"""
from __future__ import annotations

import functools
import inspect
import json
import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import transformers.modeling_utils
import yaml
from accelerate.utils import DistributedType, set_seed
from torch.utils.data import DataLoader

from train import checkpoint as ckpt
from train.config import config_dict
from train.data import IGNORE_INDEX, build_examples, collate, load_conversations
from train.overlap import overlap_warning
from train.errors import ConfigError
from train.evals import assertion_eval, extract_fields, load_checker
from train.hardware import MFU_CONVENTION, detect_gpu, mfu, peak_memory_bytes
from train.launch import make_accelerator, zero3
from train.memory import GIB, estimate
from train.model import count_parameters, load_base, load_tokenizer, merge, prepare_model, use_bf16
from train.packing import check_isolation, pack


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@functools.lru_cache(maxsize=None)
def _forward_keeps_logits(model_class) -> bool:
    """Whether the model computes logits only where a boolean ``logits_to_keep`` mask says."""
    return (hasattr(transformers.modeling_utils, "slice_logits_to_keep")  # transformers 5: masks accepted
            and "logits_to_keep" in inspect.signature(model_class.forward).parameters)


def _causal_lm(model):
    """The transformers model inside the DDP/DeepSpeed/FSDP wrapper and the peft model."""
    while hasattr(model, "module"):
        model = model.module
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def learned_logits(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(logits, targets, learned)``: the logits at every position whose next token is learned
    (row-major), those tokens, and their mask over ``labels[:, 1:]`` (labels are shifted here).

    Only those positions' logits are computed: with a large vocabulary, the never-scored
    prompt positions would otherwise take most of a step's activation memory.
    """
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids")}
    targets = batch["labels"][:, 1:]
    learned = targets != IGNORE_INDEX
    if _forward_keeps_logits(type(_causal_lm(model))):
        keep = F.pad(learned, (0, 1))  # position i predicts token i + 1; the last one predicts nothing
        logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
        return logits.reshape(-1, logits.shape[-1]), targets[learned], learned
    logits = model(**inputs, use_cache=False).logits
    return logits[:, :-1][learned], targets[learned], learned


def loss_sum(model, batch: dict) -> torch.Tensor:
    """Summed cross-entropy over the learned tokens of a batch."""
    logits, targets, _ = learned_logits(model, batch)
    return F.cross_entropy(logits.float(), targets, reduction="sum")


def learned_tokens(batch: dict) -> torch.Tensor:
    return (batch["labels"][:, 1:] != IGNORE_INDEX).sum()


def micro_batches(accelerator, examples: list[dict], cfg, pad_id: int, skip: int = 0):
    """Endless micro-batches, epoch after epoch; the order of epoch e is fixed by seed + e,
    so skipping ``skip`` batches puts a resumed run exactly where the first one stopped."""
    epoch = 0
    while True:
        order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(cfg.seed + epoch)).tolist()
        # its own generator: a loader drawing from the global RNG would shift the dropout masks
        # of a resumed run, which starts a loader where the uninterrupted run did not
        loader = DataLoader(examples, batch_size=cfg.micro_batch_size, sampler=order,
                            collate_fn=partial(collate, pad_id=pad_id), generator=torch.Generator())
        loader = accelerator.prepare_data_loader(loader)  # shards the batches across processes
        if skip >= len(loader):
            skip, epoch = skip - len(loader), epoch + 1
            continue
        if skip:
            loader, skip = accelerator.skip_first_batches(loader, skip), 0
        yield from loader
        epoch += 1


@torch.no_grad()
def estimate_loss(accelerator, model, examples: list[dict], cfg, pad_id: int) -> float | None:
    """Mean loss per learned token on the held-out examples (None when there are none)."""
    if not examples:
        return None
    loader = accelerator.prepare_data_loader(
        DataLoader(examples, batch_size=cfg.micro_batch_size, collate_fn=partial(collate, pad_id=pad_id),
                   generator=torch.Generator()))
    model.eval()
    total = torch.zeros(2, device=accelerator.device)
    for i, batch in enumerate(loader):
        if cfg.eval_batches is not None and i >= cfg.eval_batches:
            break
        total += torch.stack([loss_sum(model, batch), learned_tokens(batch).float()])
    model.train()
    total = accelerator.reduce(total, "sum")
    return (total[0] / total[1].clamp(min=1)).item()


def prepare_optimizer(accelerator, model, cfg, total_steps: int):
    """AdamW over the trainable parameters and the warmup-cosine schedule, prepared by accelerate."""
    warmup = max(1, round(cfg.warmup_ratio * total_steps))
    if accelerator.distributed_type == DistributedType.FSDP:
        model = accelerator.prepare(model)  # FSDP wraps the model before the optimizer sees its parameters
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(lr_factor, warmup=warmup, total=total_steps))
    if accelerator.distributed_type == DistributedType.FSDP:
        optimizer, scheduler = accelerator.prepare(optimizer, scheduler)
    else:
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    return model, optimizer, scheduler


def load_data(accelerator, cfg, tokenizer) -> tuple[list[dict], list[dict], list[dict]]:
    """Train and held-out examples (masked once, here; the collator only pads), and the
    held-out conversations that assertion_eval generates on."""
    train_rows, val_rows = load_conversations(cfg)
    train_ex, stats = build_examples(train_rows, tokenizer, cfg)
    val_ex, _ = build_examples(val_rows, tokenizer, cfg)
    held = f"{len(val_ex)} held out" if val_ex else "no held-out rows (val_fraction 0, no val_data): no val_loss"
    accelerator.print(f"data: {stats.summary(cfg)}; {held}\n{stats.length_report(cfg, train_ex)}")
    overlap = overlap_warning(cfg) if accelerator.is_main_process else None
    if overlap:
        accelerator.print(f"warning: {overlap}")
    if cfg.packing:
        train_ex, val_ex = pack(train_ex, cfg.max_seq_len), pack(val_ex, cfg.max_seq_len)
    if not train_ex:
        raise ConfigError(f"no training rows left ({stats.summary(cfg)}); raise max_seq_len or add data")
    if cfg.assertion_eval:
        if not val_rows:
            raise ConfigError("assertion_eval generates on held-out rows and there are none; "
                              "set val_fraction above 0 or val_data")
        load_checker(cfg.assertion_eval.checker)  # fail now, not after the first hour of training
        for conv in val_rows[: cfg.assertion_eval.rows]:
            extract_fields(conv, cfg.assertion_eval.check_fields)
    return train_ex, val_ex, val_rows


def resume_state(accelerator, cfg, out: Path) -> tuple[dict, Path | None]:
    """The state to start from and its checkpoint (None: a fresh start); a checkpoint of
    another run is refused here, before anything is written to ``out``."""
    state = {"step": 0, "tokens": 0, "elapsed_s": 0.0}
    last = ckpt.latest_checkpoint(out) if cfg.resume else None
    identity, settings = ckpt.run_identity(cfg, accelerator), ckpt.run_settings(cfg)
    if last is not None:
        state, warning = ckpt.check_resume(last, identity, settings)
        if warning:
            accelerator.print(f"warning: {warning}")
    return {**state, "run": identity, "settings": settings}, last


def optimizer_step(accelerator, model, optimizer, window: list[dict], cfg, params) -> tuple:
    """One optimizer step over ``grad_accum`` micro-batches: (summed loss, learned tokens on
    all processes, gradient norm, tokens seen here)."""
    n_learned = accelerator.reduce(sum(learned_tokens(b) for b in window), "sum").clamp(min=1)
    loss_total, grad_norm, tokens = 0.0, None, 0
    for batch in window:
        with accelerator.accumulate(model):
            loss = loss_sum(model, batch)
            # a token-weighted mean over the global batch: * grad_accum * processes undoes
            # the division accelerate (per micro-batch) and data parallelism (per process) apply
            accelerator.backward(loss * cfg.grad_accum * accelerator.num_processes / n_learned)
            if accelerator.sync_gradients:
                grad_norm = accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        loss_total += loss.detach()
        tokens += int(batch["attention_mask"].sum() if "attention_mask" in batch else batch["input_ids"].numel())
    return accelerator.reduce(loss_total, "sum"), n_learned, grad_norm, tokens


def memory_estimate(accelerator, model, cfg, examples: list[dict]):
    """Predicted peak memory (train.memory) in this run's precision and device: micro-batches of
    its longest row, each with as many learned positions as the row that has the most."""
    longest = max(len(e["input_ids"]) for e in examples)
    most_learned = max(sum(label != IGNORE_INDEX for label in e["labels"][1:]) for e in examples)
    return estimate(model=accelerator.unwrap_model(model).config, method=cfg.method,
                    seq_len=min(longest, cfg.max_seq_len), micro_batch=cfg.micro_batch_size,
                    gradient_checkpointing=cfg.gradient_checkpointing, lora_r=cfg.lora_r,
                    lora_targets=cfg.lora_target_modules, lora_dropout=cfg.lora_dropout,
                    precision="bf16" if use_bf16(cfg) else "fp32", device=accelerator.device.type,
                    logits_share=most_learned / longest if _forward_keeps_logits(type(_causal_lm(model))) else 1.0)


def over_budget(accelerator, cfg, started: float) -> bool:
    """Whether the time budget is spent; every process gets the same answer, so all stop together."""
    if cfg.time_budget_min is None:
        return False
    spent = torch.tensor(float(time.time() - started > cfg.time_budget_min * 60), device=accelerator.device)
    return bool(accelerator.reduce(spent, "max").item())


@dataclass
class Run:
    """What a run works with once `start` has set it up; its methods log and evaluate."""

    cfg: Any
    accelerator: Any
    out: Path
    state: dict  # step, tokens, elapsed_s, and the run's identity and settings for its checkpoints
    tokenizer: Any
    train_ex: list
    val_ex: list
    val_rows: list
    model: Any
    optimizer: Any
    scheduler: Any
    batches: Any
    total_steps: int
    n_params: int
    gpu: str | None
    predicted: Any  # train.memory.MemoryEstimate
    evaluated_at: int | None = None  # the step of the last held-out loss

    def log(self, record: dict) -> None:
        accelerator = self.accelerator
        accelerator.log({k: v for k, v in record.items() if isinstance(v, (int, float)) and v is not None},
                        step=record["step"])
        if accelerator.is_main_process:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            accelerator.print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in record.items() if v is not None))

    def held_out_loss(self) -> None:
        loss = estimate_loss(self.accelerator, self.model, self.val_ex, self.cfg, self.tokenizer.pad_token_id)
        if loss is not None:
            self.log({"step": self.state["step"], "val_loss": loss})
        self.evaluated_at = self.state["step"]

    def assertion_eval(self) -> None:
        # generated in batches of a step's rows: no gradients or activations to keep, so they fit
        cfg = self.cfg
        result = assertion_eval(self.accelerator.unwrap_model(self.model), self.tokenizer, self.val_rows,
                                cfg.assertion_eval, cfg.template, cfg.eot_token,
                                cfg.micro_batch_size * cfg.grad_accum, synced_gpus=zero3(self.accelerator))
        top = ", ".join(f"{rule} x{n}" for rule, n in result["failures"].most_common(3))
        self.log({"step": self.state["step"], "valid_rate": result["valid_rate"], "valid_n": result["n"],
                  "top_failures": top or None})

    def evaluations_due(self) -> None:
        """The held-out loss and the assertion eval of steps between the first and the last."""
        step, ae = self.state["step"], self.cfg.assertion_eval
        if self.cfg.eval_every and step % self.cfg.eval_every == 0 and step < self.total_steps:
            self.held_out_loss()
        if ae and ae.every and step % ae.every == 0 and step < self.total_steps:
            self.assertion_eval()

    def step_record(self, loss: float, lr: float, grad_norm, tokens_per_s: float) -> dict:
        return {"step": self.state["step"], "loss": loss, "lr": lr, "tokens": self.state["tokens"],
                "grad_norm": None if grad_norm is None else float(grad_norm), "tokens_per_s": tokens_per_s,
                "mfu": mfu(self.n_params, tokens_per_s, self.gpu),
                "peak_mem_gib": peak_memory_bytes(self.accelerator.device) / GIB,
                "estimated_mem_gib": self.predicted.total / GIB}


def start(cfg) -> Run:
    """Everything before the first step: the accelerator, a refused or resumed checkpoint, the data,
    the model with its optimizer and schedule, and the memory estimate."""
    accelerator = make_accelerator(cfg)
    set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    state, last = resume_state(accelerator, cfg, out)
    out.mkdir(parents=True, exist_ok=True)
    if accelerator.is_main_process:
        (out / "config.yaml").write_text(yaml.safe_dump(config_dict(cfg), sort_keys=False))
    tokenizer = load_tokenizer(cfg)
    train_ex, val_ex, val_rows = load_data(accelerator, cfg, tokenizer)

    model = prepare_model(cfg, load_base(cfg, device_index=accelerator.local_process_index))
    trainable, n_params = count_parameters(model)
    accelerator.print(f"model: {cfg.model} {cfg.method}, {trainable:,} of {n_params:,} parameters trainable")
    sharded = accelerator.distributed_type == DistributedType.FSDP or zero3(accelerator)
    if cfg.packing and not sharded:  # a sharded model cannot run a forward pass before prepare()
        check_isolation(model if cfg.method == "qlora" else model.to(accelerator.device), len(tokenizer))
    per_step = cfg.micro_batch_size * cfg.grad_accum * accelerator.num_processes
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(train_ex) / per_step))
    model, optimizer, scheduler = prepare_optimizer(accelerator, model, cfg, total_steps)
    ckpt.register_adapter_hooks(accelerator)
    if cfg.trackers:
        accelerator.init_trackers("train", config={k: v if isinstance(v, (int, float, str, bool)) else str(v)
                                                   for k, v in config_dict(cfg).items()})
    if last is not None:
        ckpt.load_checkpoint(accelerator, model, last)
        accelerator.print(f"resumed from {last} at step {state['step']}")
    batches = micro_batches(accelerator, train_ex, cfg, tokenizer.pad_token_id, skip=state["step"] * cfg.grad_accum)

    gpu, predicted = detect_gpu(), memory_estimate(accelerator, model, cfg, train_ex)
    accelerator.print(f"memory: estimated peak {predicted.total / GIB:.2f} GiB ({predicted.where}, "
                      f"{predicted.precision}); {MFU_CONVENTION if gpu else 'no MFU on a CPU'}")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    return Run(cfg, accelerator, out, state, tokenizer, train_ex, val_ex, val_rows, model, optimizer, scheduler,
               batches, total_steps, n_params, gpu, predicted)


def train(cfg) -> dict:
    """Fine-tune as ``cfg`` says; returns the output folder, the steps done, how it stopped, the
    peak memory, and the trained model (unwrapped, with its adapter) for evaluating it right away."""
    started = last_save = time.time()
    run = start(cfg)
    state, accelerator = run.state, run.accelerator
    if cfg.assertion_eval and cfg.assertion_eval.at_start and state["step"] == 0:
        run.assertion_eval()

    run.model.train()
    stop_reason, window_tokens, window_seconds = "max_steps", 0, 0.0
    params = [p for p in run.model.parameters() if p.requires_grad]
    for step in range(state["step"], run.total_steps):
        step_start = time.time()
        lr = run.optimizer.param_groups[0]["lr"]  # the rate this step uses (the scheduler moves it afterwards)
        window = [next(run.batches) for _ in range(cfg.grad_accum)]
        loss_total, n_learned, grad_norm, step_tokens = optimizer_step(accelerator, run.model, run.optimizer,
                                                                       window, cfg, params)
        run.scheduler.step()
        step_loss = (loss_total / n_learned).item()  # .item() waits for the GPU: the timing below is honest
        state["step"], state["tokens"] = step + 1, state["tokens"] + step_tokens
        window_tokens, window_seconds = window_tokens + step_tokens, window_seconds + time.time() - step_start

        if state["step"] % cfg.log_every == 0 or state["step"] in (1, run.total_steps):
            run.log(run.step_record(step_loss, lr, grad_norm, window_tokens / max(window_seconds, 1e-9)))
            window_tokens, window_seconds = 0, 0.0
        run.evaluations_due()
        if over_budget(accelerator, cfg, started) and state["step"] < run.total_steps:
            stop_reason = "time_budget"
        if stop_reason == "time_budget" or (cfg.save_every and state["step"] % cfg.save_every == 0):
            state["elapsed_s"], last_save = state["elapsed_s"] + time.time() - last_save, time.time()
            ckpt.save_checkpoint(accelerator, run.model, run.out, state, cfg.keep_checkpoints)
        if stop_reason == "time_budget":
            accelerator.print(f"time budget of {cfg.time_budget_min} min spent at step {state['step']}: "
                              f"checkpoint saved, run again to continue")
            break
    return finish(run, stop_reason)


def finish(run: Run, stop_reason: str) -> dict:
    """The end of this part of the run: the held-out loss where it stopped; after the last step,
    the assertion eval and a checkpoint to extend from; the adapter; the memory it took."""
    cfg, accelerator, state, out = run.cfg, run.accelerator, run.state, run.out
    if run.evaluated_at != state["step"]:
        run.held_out_loss()
    if stop_reason == "max_steps":
        if cfg.assertion_eval:
            run.assertion_eval()
        if ckpt.latest_checkpoint(out) is None or ckpt.latest_checkpoint(out).name != f"step_{state['step']:06d}":
            ckpt.save_checkpoint(accelerator, run.model, out, state, cfg.keep_checkpoints)
    adapter_dir = ckpt.save_final(accelerator, run.model, run.tokenizer, out / "adapter")
    if cfg.merge and cfg.method != "full" and stop_reason == "max_steps" and accelerator.is_main_process:
        merge(cfg, adapter_dir, out / "merged", run.tokenizer)
    accelerator.end_training()
    return {"output_dir": str(out), "adapter_dir": str(adapter_dir), "steps": state["step"],
            "total_steps": run.total_steps, "stopped": stop_reason, "model": accelerator.unwrap_model(run.model),
            "peak_mem_gib": peak_memory_bytes(accelerator.device) / GIB,
            "estimated_mem_gib": run.predicted.total / GIB, "memory_kind": run.predicted.where,
            "main_process": accelerator.is_main_process}
