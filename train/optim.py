"""AdamW with decay / no-decay parameter groups, and the warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch import nn

_EMBEDDING_NAMES = ("embedding", "query_tokens", "shared.weight", "embed_tokens", "relative_attention_bias")


def no_decay(name: str, param: nn.Parameter) -> bool:
    """Biases, norm weights (1-d) and embeddings (word/position/time embeddings, query tokens) get no weight decay."""
    return param.ndim < 2 or any(part in name for part in _EMBEDDING_NAMES)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, plain = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (plain if no_decay(name, param) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, args: argparse.Namespace, device: torch.device) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=tuple(args.adam_betas),
                             fused=device.type == "cuda")


def build_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Linear warm-up from 0 to the peak lr, then cosine decay to 0 (transformers' schedule)."""
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, warmup_steps, total_steps)
