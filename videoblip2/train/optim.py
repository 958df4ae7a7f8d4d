"""AdamW with learning-rate and decay / no-decay parameter groups, and the warm-up + cosine schedule.

Two learning rates (`--lr`, `--qformer-lr`): the pretrained part, both Q-Formers and their query tokens
(initialised from BERT / BLIP-2), is fine-tuned at a low rate, as LAVIS fine-tunes BLIP-2's Q-Former for
captioning (lavis/projects/blip2/train/caption_coco_ft.yaml: init_lr 1e-5, weight_decay 0.05, cosine); the
new layers (input projections and norms, time embeddings, proj_video/proj_audio, LoRA; a trained tiny T5)
learn at `--lr` (train_ce 1e-4, the rate of LoRA / new-projection fine-tuning in InstructBLIP-style recipes).
Each rate has a decay and a no-decay group (biases, norms, embeddings, query tokens: no weight decay).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch import nn

_EMBEDDING_NAMES = ("embedding", "query_tokens", "shared.weight", "embed_tokens", "relative_attention_bias")


def no_decay(name: str, param: nn.Parameter) -> bool:
    """Biases, norm weights (1-d) and embeddings (word/position/time embeddings, query tokens) get no weight decay."""
    return param.ndim < 2 or any(part in name for part in _EMBEDDING_NAMES)


# LAVIS' Q-Former fine-tuning rate for BLIP-2 captioning (caption_coco_ft.yaml init_lr): --qformer-lr's
# default when train_ce starts the Q-Formers from --bert / --blip2.
QFORMER_FINETUNE_LR = 1e-5
_PRETRAINED_PREFIXES = ("video_qformer.", "audio_qformer.", "video_query_tokens", "audio_query_tokens")


def is_pretrained_part(name: str) -> bool:
    """The Q-Formers and their query tokens: the parameters a BERT / BLIP-2 checkpoint initialises."""
    return name.startswith(_PRETRAINED_PREFIXES)


def param_groups(model: nn.Module, weight_decay: float, lr: float | None = None,
                 qformer_lr: float | None = None) -> list[dict[str, Any]]:
    """AdamW groups: [new decay, new no-decay] at `lr`, then [qformer decay, qformer no-decay] at `qformer_lr`.

    Without `qformer_lr` (one rate) the Q-Formers join the first two groups. Groups carry a "name"; a group
    without `lr` takes the optimizer's default. Empty groups are left out.
    """
    groups: dict[str, dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "qformer" if qformer_lr is not None and is_pretrained_part(name) else "new"
        kind = "no_decay" if no_decay(name, param) else "decay"
        key = f"{part}/{kind}"
        if key not in groups:
            groups[key] = {"name": key, "params": [], "weight_decay": 0.0 if kind == "no_decay" else weight_decay}
            rate = qformer_lr if part == "qformer" else lr
            if rate is not None:
                groups[key]["lr"] = rate
        groups[key]["params"].append(param)
    order = ("new/decay", "new/no_decay", "qformer/decay", "qformer/no_decay")
    return [groups[k] for k in order if k in groups]


def resolve_qformer_lr(args: argparse.Namespace, pretrained_qformers: bool) -> float:
    """--qformer-lr, else QFORMER_FINETUNE_LR for Q-Formers train_ce initialises from BERT / BLIP-2, else --lr."""
    if args.qformer_lr is not None:
        return args.qformer_lr
    return QFORMER_FINETUNE_LR if pretrained_qformers else args.lr


def build_optimizer(model: nn.Module, args: argparse.Namespace, device: torch.device,
                    qformer_lr: float | None = None) -> torch.optim.AdamW:
    """AdamW over `param_groups`: the Q-Formers get their own groups when `qformer_lr` differs from --lr."""
    groups = param_groups(model, args.weight_decay, args.lr, None if qformer_lr in (None, args.lr) else qformer_lr)
    return torch.optim.AdamW(groups, lr=args.lr, betas=tuple(args.adam_betas), fused=device.type == "cuda")


def group_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """{"lr": the new layers' current rate, "lr_qformer": the Q-Formers' (when they have their own)}."""
    out = {"lr": optimizer.param_groups[0]["lr"]}
    for group in optimizer.param_groups:
        if group.get("name", "").startswith("qformer/"):
            out["lr_qformer"] = group["lr"]
            break
    return out


def build_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Linear warm-up from 0 to the peak lr, then cosine decay to 0 (transformers' schedule)."""
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, warmup_steps, total_steps)
