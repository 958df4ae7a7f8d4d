"""fp32 or bf16 autocast, by device and --precision."""

from __future__ import annotations

import contextlib

import torch


def uses_bf16(device: torch.device, precision: str) -> bool:
    """bf16 autocast on CUDA (precision auto/bf16); fp32 on CPU unless bf16 is asked for."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def autocast(device: torch.device, precision: str):
    """bf16 autocast when `uses_bf16`, else nothing (fp32)."""
    if uses_bf16(device, precision):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
