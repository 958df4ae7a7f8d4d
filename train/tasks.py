"""What a trainer trains on: the Task interface, and the caption task (teacher-forced cross-entropy)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from train.validation import caption_loss_sum, model_inputs
from videoblip2.data import CaptionDataset
from videoblip2.modeling import VideoBLIP2


@dataclasses.dataclass
class StepOutput:
    """One micro-batch: the summed loss to backpropagate and metrics as name -> (sum, weight)."""

    loss_sum: torch.Tensor
    metrics: dict[str, tuple[float, float]]


class Task:
    """What a trainer trains on: `num_items` items, a normaliser per global batch, one micro-batch step."""

    name = "task"
    unit = "items"
    plot_keys: tuple[str, ...] = ()

    num_items: int

    def normalizer(self, indices: np.ndarray) -> float:
        """Divides the summed loss of a global batch (the same number on every process)."""
        raise NotImplementedError

    def forward_module(self, model: VideoBLIP2) -> nn.Module:
        """The module whose forward the (DDP-wrapped) step calls."""
        return model

    def micro_step(self, module: nn.Module, model: VideoBLIP2, indices: np.ndarray) -> StepOutput:
        raise NotImplementedError

    def finalize_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        return metrics


class CaptionTask(Task):
    """Teacher-forced cross-entropy on (video, caption) pairs; normaliser: label tokens of the global batch."""

    name = "train_ce"
    unit = "pairs"

    def __init__(self, dataset: CaptionDataset):
        self.dataset = dataset
        self.num_items = len(dataset)

    def normalizer(self, indices: np.ndarray) -> float:
        return float(self.dataset.label_lengths[indices].sum())

    def micro_step(self, module: nn.Module, model: VideoBLIP2, indices: np.ndarray) -> StepOutput:
        batch = self.dataset.batch(indices)
        module.train()
        logits = module(**model_inputs(batch), labels=batch["labels"], return_loss=False).logits  # (B, L, V)
        loss_sum = caption_loss_sum(logits, batch["labels"])
        tokens = float(self.dataset.label_lengths[indices].sum())
        return StepOutput(loss_sum, {"loss": (loss_sum.item(), tokens)})
