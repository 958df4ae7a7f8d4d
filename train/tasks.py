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
    their template prompts) in one forward pass.

    Loss (`qa_loss_weight`): None pools the label tokens of both tasks (sum over the global batch / its label
    tokens), so each task weighs by its tokens: a caption has ~13, an answer ~2, and at `qa_ratio` 0.5 the
    questions carry ~14% of the loss. A weight W makes the balance explicit, per-task means:
    ``caption tokens' mean loss + W * answer tokens' mean loss`` (each over the global batch; a task absent from
    a batch adds 0). `qa_ratio` sets how many items of each task are seen, W what their loss counts.

    Item table: all caption pairs then all questions (so about `qa_ratio` of the items are questions); with
    `qa_ratio` the smaller share is repeated, cycling through a seeded permutation, until it makes that
    fraction; no item is left out. The table is fixed for the run; the trainer shuffles it every epoch.
    """

    name = "train_ce+qa"
    unit = "items"

    def __init__(self, captions: CaptionDataset, qa: QADataset, caption_prompt: PromptTokens,
                 qa_ratio: float | None = None, seed: int = 0, qa_loss_weight: float | None = None):
        if qa.labels is None:
            raise ValueError("QA training needs answers")
        if qa_loss_weight is not None and not qa_loss_weight >= 0:
            raise ValueError(f"qa_loss_weight must be >= 0, got {qa_loss_weight}")
        self.qa_loss_weight = qa_loss_weight
        self._task_tokens = (0.0, 0.0)  # (caption, answer) label tokens of the current global batch
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

    def normalizer(self, indices: np.ndarray) -> float:
        if self.qa_loss_weight is None:
            return super().normalizer(indices)
        lengths, is_qa = self.label_lengths(indices), self.is_qa[indices]
        self._task_tokens = (float(lengths[~is_qa].sum()), float(lengths[is_qa].sum()))
        return 1.0  # micro_step divides each task's sum by its own tokens

    def micro_step(self, module: nn.Module, model: VideoBLIP2, indices: np.ndarray) -> StepOutput:
        indices = np.asarray(indices)
        batch = self.batch(indices)  # caption rows first, then question rows
        module.train()
        logits = module(**model_inputs(batch), labels=batch["labels"], return_loss=False).logits  # (B, L, V)
        n_cap = int((~self.is_qa[indices]).sum())
        cap_sum = caption_loss_sum(logits[:n_cap], batch["labels"][:n_cap])
        qa_sum = caption_loss_sum(logits[n_cap:], batch["labels"][n_cap:])
        lengths, is_qa = self.label_lengths(indices), self.is_qa[indices]
        cap_tokens, qa_tokens = float(lengths[~is_qa].sum()), float(lengths[is_qa].sum())
        metrics = {"loss": (cap_sum.item() + qa_sum.item(), cap_tokens + qa_tokens),
                   "loss_caption": (cap_sum.item(), cap_tokens), "loss_qa": (qa_sum.item(), qa_tokens)}
        if self.qa_loss_weight is None:
            return StepOutput(cap_sum + qa_sum, metrics)
        global_cap, global_qa = self._task_tokens
        loss = cap_sum / global_cap if global_cap else cap_sum * 0
        loss = loss + (self.qa_loss_weight * qa_sum / global_qa if global_qa else qa_sum * 0)
        return StepOutput(loss, metrics)

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
