"""What the trainer knows about GPUs (memory, peak bf16 FLOPs, MFU) and the measured peak memory.

Memory is the total ``nvidia-smi`` reports, in MiB. Peak FLOPs are NVIDIA's dense (no
sparsity) bf16 tensor-core figures with fp32 accumulation; None where a card has no bf16
tensor cores or no published figure, in which case no MFU is reported.
"""
from __future__ import annotations

import sys

import torch

MIB = 2**20

#: name: (memory in MiB, peak dense bf16 FLOP/s or None)
GPUS: dict[str, tuple[int, float | None]] = {
    "A100-40GB": (40960, 312e12),
    "A100-80GB": (81920, 312e12),
    "H100-80GB": (81559, 989e12),      # SXM; the PCIe card is listed separately
    "H100-PCIe": (81559, 756e12),
    "H200": (143771, 989e12),
    "L40S": (46068, 362e12),
    "L4": (23034, 121e12),
    "A10G": (23028, None),
    "A10": (23028, 125e12),
    "T4": (15360, None),               # no bf16 tensor cores
    "V100-16GB": (16384, None),        # no bf16 tensor cores
    "V100-32GB": (32768, None),
    "RTX4090": (24564, 165e12),
    "RTX3090": (24576, 71e12),
}

MFU_CONVENTION = ("MFU = 6 * N * tokens/s / peak dense bf16 FLOP/s, N = all parameters (frozen ones "
                  "included), attention FLOPs left out; with LoRA the backward pass skips the frozen "
                  "weights' gradients, so the work done is nearer 4*N per token and this overstates it by up to 1.5x")


def detect_gpu() -> str | None:
    """The table's name for the current CUDA device, or None (CPU, or a card not in the table)."""
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name().upper().replace(" ", "")
    total_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    for key in ("H200", "L40S", "L4", "A10G", "T4", "RTX4090", "RTX3090"):
        if key in name:
            return key
    if "H100" in name:
        return "H100-PCIe" if "PCIE" in name else "H100-80GB"
    if "A100" in name:
        return "A100-80GB" if total_gib > 50 else "A100-40GB"
    if "V100" in name:
        return "V100-32GB" if total_gib > 20 else "V100-16GB"
    if "A10" in name:
        return "A10"
    return None


def mfu(n_params: int, tokens_per_s: float, gpu: str | None) -> float | None:
    peak = GPUS[gpu][1] if gpu in GPUS else None
    return None if peak is None else 6 * n_params * tokens_per_s / peak


def peak_memory_bytes(device) -> int:
    """The run's measured peak: bytes allocated on a CUDA device, or this process's peak RSS."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return psutil.Process().memory_info().peak_wset
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux
