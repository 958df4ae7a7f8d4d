"""Self-critical sequence training (SCST) of a train_ce model with a CIDEr-D reward.

    python -m train.train_scst --model runs/ce --features data/synth \\
        --ann data/synth/train_val_videodatainfo.json --out runs/scst --baseline mean --lr 1e-5

For every training video: K captions sampled from the model (multinomial, temperature 1, --num-samples K)
and, with `--baseline greedy`, the greedy caption; the video is encoded once for all of them
(VideoBLIP2.sample_with_logprobs). Reward: CIDEr-D (eval.cider.CiderD) with document frequencies from the
full training references, scored against the video's full caption set (`--refs full`) or its top-5 subset
(`--refs top5 --top5 train_top5_detail.json`, from `python -m train.make_top5`). Advantage and loss: see
train/scst.py. Logging, checkpoints (last/, best/ by validation CIDEr-D, state/), resume and multi-process
training are those of train_ce (train/trainer.py).
"""

from __future__ import annotations

import argparse
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from train.data import feature_store, load_train_val
from train.distributed import DistInfo
from train.errors import TrainingError
from train.launch import cli, run
from train.logger import print_main
from train.model_setup import build_model, load_resumed_model, place_model
from train.params import add_data_args, add_model_args, add_optim_args, add_run_args
from train.run_dir import prepare_output
from train.scst import BASELINES, scst_advantages, scst_loss
from train.tasks import StepOutput, Task
from train.trainer import Trainer
from train.validation import Validator, model_inputs
from videoblip2.annotations import load_annotations
from videoblip2.data import VideoDataset
from videoblip2.modeling import SampleOutput, VideoBLIP2


class SamplingPolicy(nn.Module):
    """The module DistributedDataParallel wraps for SCST: its forward is VideoBLIP2.sample_with_logprobs."""

    def __init__(self, model: VideoBLIP2, num_samples: int, temperature: float, include_greedy: bool,
                 max_new_tokens: int | None):
        super().__init__()
        self.model = model
        self.num_samples = num_samples
        self.temperature = temperature
        self.include_greedy = include_greedy
        self.max_new_tokens = max_new_tokens

    def forward(self, video, video_mask, audio, audio_mask) -> SampleOutput:
        return self.model.sample_with_logprobs(
            video, video_mask, audio, audio_mask, num_samples=self.num_samples, temperature=self.temperature,
            include_greedy=self.include_greedy, max_new_tokens=self.max_new_tokens)


class SCSTTask(Task):
    """K samples per video, CIDEr-D rewards, greedy or mean baseline; normaliser: samples of the global batch."""

    name = "train_scst"
    unit = "videos"
    plot_keys = ("reward_mean", "reward_greedy", "adv_abs_mean")

    def __init__(self, videos: VideoDataset, cider, refs: Mapping[str, Sequence[str]] | None, *, baseline: str,
                 num_samples: int, temperature: float, max_new_tokens: int | None):
        self.videos = videos
        self.num_items = len(videos)
        self.cider = cider
        self.refs = refs  # None: the video's full caption set (the CiderD corpus itself)
        self.baseline = baseline
        self.num_samples = num_samples
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens

    def normalizer(self, indices: np.ndarray) -> float:
        return float(len(indices) * self.num_samples)

    def forward_module(self, model: VideoBLIP2) -> nn.Module:
        return SamplingPolicy(model, self.num_samples, self.temperature, self.baseline == "greedy",
                              self.max_new_tokens)

    def reward(self, captions: Sequence[str], video_ids: Sequence[str]) -> np.ndarray:
        if self.refs is None:
            return self.cider.score(captions, video_ids)
        return self.cider.score_refs(captions, [self.refs[v] for v in video_ids])

    def micro_step(self, module: nn.Module, model: VideoBLIP2, indices: np.ndarray) -> StepOutput:
        batch = self.videos.batch(indices)
        # eval(): no dropout, neither while sampling nor in the teacher-forced pass that computes the
        # log-probs (gradients still flow), so the log-probs are those of the policy that drew the samples.
        module.eval()
        out: SampleOutput = module(**model_inputs(batch))
        ids, k = batch["video_ids"], self.num_samples
        rewards = torch.as_tensor(self.reward(out.captions, [v for v in ids for _ in range(k)]),
                                  dtype=torch.float32).view(len(ids), k)  # (B, K)
        greedy = None
        if out.greedy_captions is not None:
            greedy = torch.as_tensor(self.reward(out.greedy_captions, ids), dtype=torch.float32)  # (B,)
        advantages = scst_advantages(rewards, self.baseline, greedy)  # (B, K)
        loss_sum = scst_loss(out.logprobs, advantages.flatten().to(out.logprobs.device), normalizer=1.0)
        n = float(rewards.numel())
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m train.train_scst", description=__doc__.split("\n")[0])
    add_model_args(parser, fresh=False)
    add_data_args(parser)
    group = parser.add_argument_group("SCST")
    group.add_argument("--num-samples", type=int, default=5, help="K sampled captions per video")
    group.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    group.add_argument("--baseline", choices=BASELINES, default="mean",
                       help="mean: mean reward of the other K-1 samples (no greedy pass; works better); "
                            "greedy: reward of the greedy caption (the original design)")
    group.add_argument("--refs", choices=("full", "top5"), default="full",
                       help="reward references: the video's full caption set, or its top-5 subset (--top5)")
    group.add_argument("--top5", default=None, help="train_top5_detail.json written by python -m train.make_top5")
    group.add_argument("--max-sample-len", type=int, default=None,
                       help="longest sample in tokens, EOS included (default: the model's max_caption_len)")
    add_optim_args(parser, lr=1e-5, weight_decay=0.0, warmup_ratio=0.0)
    add_run_args(parser, epochs=5, batch_size=8, unit="videos")
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("--model is required: a train_ce output directory or a save_pretrained directory")
    if args.refs == "top5" and not args.top5:
        parser.error("--refs top5 needs --top5 FILE (python -m train.make_top5 writes it)")
    if args.num_samples < 1 or (args.baseline == "mean" and args.num_samples < 2):
        parser.error("--num-samples must be >= 1, and >= 2 with --baseline mean")
    return args


def _load_top5(path: str, video_ids: Sequence[str]) -> dict[str, list[str]]:
    top5 = load_annotations(path)
    missing = [v for v in video_ids if v not in top5]
    if missing:
        raise TrainingError(f"{path}: no captions for {len(missing)} training videos, e.g. {missing[:3]}; "
                            "rebuild it from the same --ann with python -m train.make_top5")
    return top5


def train(args: argparse.Namespace, dist: DistInfo) -> dict[str, Any]:
    from eval.cider import CiderD

    out, resume = prepare_output(args, dist)
    train_ann, val_ann = load_train_val(args)
    model = load_resumed_model(resume, args, dist) if resume is not None else build_model(args, [], dist, out)
    place_model(model, dist.device, args.precision, dist)
    config = model.config

    store = feature_store(args.features, list(train_ann), config, args, dist)
    videos = VideoDataset(store)
    # Document frequencies from the full training references, whatever references the reward scores against.
    cider = CiderD({v: train_ann[v] for v in store.video_ids})
    refs = _load_top5(args.top5, store.video_ids) if args.refs == "top5" else None
    print_main(dist, f"reward: CIDEr-D, df over {cider.num_documents} training videos, refs = "
                 f"{'top-5 subset ' + args.top5 if refs else 'full caption sets'}; baseline {args.baseline}, "
                 f"K = {args.num_samples}, temperature {args.temperature}")
    validator = None
    if val_ann:
        val_store = feature_store(args.val_features or args.features, list(val_ann), config, args, dist)
        validator = Validator(model, val_store, val_ann, dist, args.val_batch_size, args.precision)
    else:
        print_main(dist, "warning: no validation annotations: no validation, no best/")
    task = SCSTTask(videos, cider, refs, baseline=args.baseline, num_samples=args.num_samples,
                    temperature=args.temperature, max_new_tokens=args.max_sample_len)
    info = {"baseline": args.baseline, "refs": args.refs, "num_samples": args.num_samples,
            "init": str(args.model)}
    trainer = Trainer(args, task, model, dist, validator, out, resume, extra_info=info)
    return trainer.fit()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train; returns a summary (out, step, best_val_cider, best_step, last_validation)."""
    return run(train, parse_args(argv))


__all__ = ["SCSTTask", "SamplingPolicy", "main", "parse_args", "train"]

if __name__ == "__main__":
    cli(main)
