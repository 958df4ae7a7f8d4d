"""The SCST task a Trainer trains on: K sampled captions per video, CIDEr-D rewards, the policy-gradient loss
(train/scst.py); and the module DistributedDataParallel wraps for it."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from train.scst import LOSS_NORMS, scst_advantages, scst_loss
from train.tasks import StepOutput, Task
from train.validation import model_inputs
from videoblip2.data import VideoDataset
from videoblip2.modeling import SampleOutput, VideoBLIP2


class SamplingPolicy(nn.Module):
    """The module DistributedDataParallel wraps for SCST: its forward is VideoBLIP2.sample_with_logprobs."""

    def __init__(self, model: VideoBLIP2, num_samples: int, temperature: float, include_greedy: bool,
                 max_new_tokens: int | None, block_bad_endings: bool = False):
        super().__init__()
        self.model = model
        self.num_samples = num_samples
        self.temperature = temperature
        self.include_greedy = include_greedy
        self.max_new_tokens = max_new_tokens
        self.block_bad_endings = block_bad_endings

    def forward(self, video, video_mask, audio, audio_mask) -> SampleOutput:
        return self.model.sample_with_logprobs(
            video, video_mask, audio, audio_mask, num_samples=self.num_samples, temperature=self.temperature,
            include_greedy=self.include_greedy, max_new_tokens=self.max_new_tokens,
            block_bad_endings=self.block_bad_endings)


class SCSTTask(Task):
    """K samples per video, CIDEr-D rewards, greedy or mean baseline; normaliser: samples of the global batch."""

    name = "train_scst"
    unit = "videos"
    plot_keys = ("reward_mean", "reward_greedy", "adv_abs_mean")

    def __init__(self, videos: VideoDataset, cider, refs: Mapping[str, Sequence[str]] | None, *, baseline: str,
                 num_samples: int, temperature: float, max_new_tokens: int | None, block_bad_endings: bool = False,
                 loss_norm: str = "sequence"):
        self.videos = videos
        self.num_items = len(videos)
        self.cider = cider
        self.refs = refs  # None: the video's full caption set (the CiderD corpus itself)
        self.baseline = baseline
        self.num_samples = num_samples
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.block_bad_endings = block_bad_endings
        if loss_norm not in LOSS_NORMS:
            raise ValueError(f"loss_norm must be one of {LOSS_NORMS}, got {loss_norm!r}")
        self.loss_norm = loss_norm

    def normalizer(self, indices: np.ndarray) -> float:
        return float(len(indices) * self.num_samples)

    def forward_module(self, model: VideoBLIP2) -> nn.Module:
        return SamplingPolicy(model, self.num_samples, self.temperature, self.baseline == "greedy",
                              self.max_new_tokens, self.block_bad_endings)

    def reward(self, captions: Sequence[str], video_ids: Sequence[str],
               ended: Sequence[bool] | None = None) -> np.ndarray:
        """CIDEr-D of each caption; `ended`: which captions ended with EOS (the end word of an eos reward)."""
        if self.refs is None:
            return self.cider.score(captions, video_ids, ended=ended)
        return self.cider.score_refs(captions, [self.refs[v] for v in video_ids], ended=ended)

    def micro_step(self, module: nn.Module, model: VideoBLIP2, indices: np.ndarray) -> StepOutput:
        batch = self.videos.batch(indices)
        # eval(): no dropout, neither while sampling nor in the teacher-forced pass that computes the
        # log-probs (gradients still flow), so the log-probs are those of the policy that drew the samples.
        module.eval()
        out: SampleOutput = module(**model_inputs(batch))
        ids, k = batch["video_ids"], self.num_samples
        rewards = torch.as_tensor(self.reward(out.captions, [v for v in ids for _ in range(k)], out.ended.tolist()),
                                  dtype=torch.float32).view(len(ids), k)  # (B, K)
        greedy = None
        if out.greedy_captions is not None:
            greedy = torch.as_tensor(self.reward(out.greedy_captions, ids, out.greedy_ended.tolist()),
                                     dtype=torch.float32)  # (B,)
        advantages = scst_advantages(rewards, self.baseline, greedy)  # (B, K)
        n = float(rewards.numel())
        # sequence: the trainer divides the summed -A*log p by the samples of the global batch. token: by their
        # tokens instead (self-critical.pytorch's RewardCriterion), counted per micro-batch: the sum is scaled
        # by samples / tokens of this micro-batch (one micro-batch on one process: exactly the token mean).
        scale = 1.0 if self.loss_norm == "sequence" else float(out.token_mask.sum()) / n
        loss_sum = scst_loss(out.logprobs, advantages.flatten().to(out.logprobs.device), normalizer=scale)
        distinct = sum(len(set(out.captions[i * k:(i + 1) * k])) for i in range(len(ids))) / k
        metrics = {
            "loss": (loss_sum.item(), n),
            "reward_mean": (float(rewards.sum()), n),
            "adv_mean": (float(advantages.sum()), n),
            "adv_sq": (float((advantages ** 2).sum()), n),
            "adv_abs_mean": (float(advantages.abs().sum()), n),
            "adv_pos_frac": (float((advantages > 0).sum()), n),
            "sample_len": (float(out.token_mask.sum()), n),
            "distinct_samples": (distinct, float(len(ids))),
        }
        if greedy is not None:
            metrics["reward_greedy"] = (float(greedy.sum()), float(len(ids)))
        return StepOutput(loss_sum, metrics)

    def finalize_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        adv_sq = metrics.pop("adv_sq")
        metrics["adv_std"] = float(np.sqrt(max(adv_sq - metrics["adv_mean"] ** 2, 0.0)))
        return metrics
