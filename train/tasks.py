"""What a trainer trains on: the Task interface; the caption, QA and mixed tasks (teacher-forced cross-entropy)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from train.validation import caption_loss_sum, model_inputs
from videoblip2.data import IGNORE_INDEX, CaptionDataset, PromptTokens, QADataset
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

    def label_lengths(self, indices: np.ndarray) -> np.ndarray:
        return self.dataset.label_lengths[indices]

    def batch(self, indices: np.ndarray) -> dict:
        return self.dataset.batch(indices)

    def normalizer(self, indices: np.ndarray) -> float:
        return float(self.label_lengths(indices).sum())

    def micro_step(self, module: nn.Module, model: VideoBLIP2, indices: np.ndarray) -> StepOutput:
        batch = self.batch(indices)
        module.train()
        logits = module(**model_inputs(batch), labels=batch["labels"], return_loss=False).logits  # (B, L, V)
        loss_sum = caption_loss_sum(logits, batch["labels"])
        tokens = float(self.label_lengths(indices).sum())
        return StepOutput(loss_sum, {"loss": (loss_sum.item(), tokens)})


class QATask(CaptionTask):
    """Teacher-forced cross-entropy on (video, question, answer): the caption step, on batches that carry each
    question in the prompt template (QADataset) and the answer as labels; normaliser: answer tokens."""

    name = "train_qa"
    unit = "questions"

    def __init__(self, dataset: QADataset):
        if dataset.labels is None:
            raise ValueError("QA training needs answers")
        super().__init__(dataset)


class MixedTask(CaptionTask):
    """Captions and QA in one run: every batch mixes caption pairs (with the caption prompt) and questions (with
    their template prompts) in one forward pass; normaliser: the label tokens of both.

    Item table: all caption pairs then all questions (so about `qa_ratio` of the items are questions); with
    `qa_ratio` the smaller share is repeated, cycling through a seeded permutation, until it makes that
    fraction; no item is left out. The table is fixed for the run; the trainer shuffles it every epoch.
    """

    name = "train_ce+qa"
    unit = "items"

    def __init__(self, captions: CaptionDataset, qa: QADataset, caption_prompt: PromptTokens,
                 qa_ratio: float | None = None, seed: int = 0):
        if qa.labels is None:
            raise ValueError("QA training needs answers")
        self.captions, self.qa, self.caption_prompt = captions, qa, caption_prompt
        n_cap, n_qa = len(captions), len(qa)
        if qa_ratio is None:
            cap_rows, qa_rows = np.arange(n_cap), np.arange(n_qa)
        else:
            if not 0 < qa_ratio < 1:
                raise ValueError(f"qa_ratio must be in (0, 1), got {qa_ratio}")
            total = max(int(np.ceil(n_qa / qa_ratio)), int(np.ceil(n_cap / (1 - qa_ratio))))
            n_qa_rows = max(n_qa, int(round(qa_ratio * total)))
            rng = np.random.default_rng([seed, 12])
            cap_rows = np.resize(rng.permutation(n_cap), max(n_cap, total - n_qa_rows))
            qa_rows = np.resize(rng.permutation(n_qa), n_qa_rows)
        self.is_qa = np.concatenate([np.zeros(len(cap_rows), bool), np.ones(len(qa_rows), bool)])
        self.row = np.concatenate([cap_rows, qa_rows]).astype(np.int64)
        self.num_items = len(self.row)
        self.qa_fraction = float(self.is_qa.mean())

    def label_lengths(self, indices: np.ndarray) -> np.ndarray:
        rows, is_qa = self.row[indices], self.is_qa[indices]
        return np.where(is_qa, self.qa.label_lengths[np.where(is_qa, rows, 0)],
                        self.captions.label_lengths[np.where(is_qa, 0, rows)])

    def batch(self, indices: np.ndarray) -> dict:
        """Caption rows then question rows: features, labels padded with -100, prompts padded to the longest."""
        indices = np.asarray(indices)
        parts = []
        cap = self.row[indices[~self.is_qa[indices]]]
        if len(cap):
            part = self.captions.batch(cap)
            prompt = self.caption_prompt.to(part["video"].device)
            part["prompt"] = PromptTokens(*(x.expand(len(cap), -1) for x in prompt))
            parts.append(part)
        qa = self.row[indices[self.is_qa[indices]]]
        if len(qa):
            parts.append(self.qa.batch(qa))
        if len(parts) == 1:
            return parts[0]
        longest = max(p["labels"].shape[1] for p in parts)
        return {
            "video_ids": [v for p in parts for v in p["video_ids"]],
            **{k: torch.cat([p[k] for p in parts]) for k in ("video", "video_mask", "audio", "audio_mask")},
            "labels": torch.cat([torch.nn.functional.pad(p["labels"], (0, longest - p["labels"].shape[1]),
                                                         value=IGNORE_INDEX) for p in parts]),
            "prompt": PromptTokens.concat([p["prompt"] for p in parts]),
        }
