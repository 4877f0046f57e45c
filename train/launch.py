"""The accelerator a run trains with, and the launches that would not do what they look like.

Without CUDA, a ``torchrun`` launch (``WORLD_SIZE`` > 1) trains as CPU data parallel (gloo);
with a GPU, ``ACCELERATE_USE_CPU=true`` keeps it on the CPUs. ``accelerate launch`` of a
multi-CPU config, or a process set up alone under ``WORLD_SIZE`` > 1, would train alone and
write the same folder as the others: both stop with the command that works instead.
"""
from __future__ import annotations

import os

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, GradientAccumulationPlugin

from train.errors import ConfigError
from train.model import use_bf16

CPU_COMMAND = "ACCELERATE_USE_CPU=true torchrun --nproc_per_node {n} -m train CONFIG"
_LAUNCHER_RANKS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def world_size() -> int:
    """The number of processes the launcher says there are (1 without a launcher)."""
    return max(int(os.environ.get(name, 1)) for name in _LAUNCHER_RANKS)


def check_launch(accelerator) -> None:
    """Stop a multi-process launch that would train as independent single processes."""
    world = world_size()
    if world > 1 and accelerator.distributed_type == DistributedType.NO:
        raise ConfigError(f"WORLD_SIZE is {world} but accelerate set up one non-distributed process: each process "
                          f"would train alone and write the same output_dir; on CPUs launch with: "
                          f"{CPU_COMMAND.format(n=world)}")
    # accelerate launch always sets ACCELERATE_USE_CPU, and MASTER_ADDR only when asked for several processes
    launched_one = ("ACCELERATE_USE_CPU" in os.environ and "MASTER_ADDR" in os.environ
                    and not any(name in os.environ for name in _LAUNCHER_RANKS))
    if launched_one:
        raise ConfigError("accelerate launch runs a multi-CPU config as one process (it starts several only "
                          f"through mpirun); launch with: {CPU_COMMAND.format(n='N')}")


def zero3(accelerator) -> bool:
    """Weights sharded by DeepSpeed: every rank must take part in each forward pass."""
    return (accelerator.distributed_type == DistributedType.DEEPSPEED
            and accelerator.state.deepspeed_plugin.zero_stage == 3)


def make_accelerator(cfg) -> Accelerator:
    mixed = os.environ.get("ACCELERATE_MIXED_PRECISION") if cfg.precision == "auto" else None
    accelerator = Accelerator(
        cpu=world_size() > 1 and not torch.cuda.is_available(),  # several processes, no GPU: CPU data parallel
        mixed_precision=mixed or ("bf16" if use_bf16(cfg) else "no"),
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=cfg.grad_accum, sync_with_dataloader=False),
        step_scheduler_with_optimizer=False,  # stepped once per optimizer step in the loop, on every process
        log_with=cfg.trackers or None, project_dir=cfg.output_dir)
    check_launch(accelerator)
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        ds = accelerator.state.deepspeed_plugin.deepspeed_config
        ds["train_micro_batch_size_per_gpu"] = cfg.micro_batch_size
        if ds.get("gradient_clipping", "auto") == "auto":
            ds["gradient_clipping"] = cfg.max_grad_norm
    if accelerator.distributed_type == DistributedType.FSDP and cfg.assertion_eval:
        raise ConfigError("assertion_eval cannot generate from FSDP-sharded weights; use zero2.yaml or "
                          "zero3.yaml, or score the saved adapter after training")
    return accelerator
