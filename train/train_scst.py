"""Self-critical sequence training (SCST) of a train_ce model with a CIDEr-D reward.

    python -m train.train_scst --model runs/ce --features data/synth \\
        --ann data/synth/train_val_videodatainfo.json --out runs/scst --lr 1e-5

The design's recipe by default (Rennie et al. 2017; the design doc): for every training video K captions
sampled from the model (plain multinomial at --temperature, --num-samples K) and its greedy caption, the
video encoded once for all of them (VideoBLIP2.sample_with_logprobs, which scores exactly the distribution
it samples from). Reward: CIDEr-D (eval.cider.CiderD) with document frequencies from the full training
references and the end of sentence scored as a word (`--no-eos-reward` turns that off), against the video's
top-5 reference subset (`--refs top5`; built from --ann with train.make_top5's ranking and written to
OUT/train_top5_detail.json unless --top5 FILE is given) or its full caption set (`--refs full`). Baseline:
the greedy caption's reward (`--baseline greedy`), or the mean reward of the other K-1 samples
(`--baseline mean`, self-critical.pytorch's "new SCST" variant, no greedy pass). Advantage and loss: see
train/scst.py. Logging, checkpoints (last/, best/ by validation CIDEr-D, state/), resume and multi-process
training are those of train_ce (train/trainer.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from train.data import feature_store, load_train_val
from train.distributed import DistInfo
from train.errors import TrainingError
from train.launch import cli, run
from train.logger import print_main
from train.make_top5 import OUTPUT_NAME as TOP5_NAME
from train.make_top5 import select_top, write_records
from train.model_setup import build_model, load_resumed_model, place_model
from train.params import add_data_args, add_model_args, add_optim_args, add_run_args, check_numeric_flags
from train.run_dir import INFO_FILE, prepare_output, resolve_model_dir
from train.scst import BASELINES, LOSS_NORMS, scst_advantages, scst_loss
from train.tasks import StepOutput, Task
from train.trainer import Trainer
from train.validation import Validator, model_inputs
from videoblip2.annotations import load_annotations
from videoblip2.data import VideoDataset
from videoblip2.decoding import DecodingOptions, add_decoding_args
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m train.train_scst", description=__doc__.split("\n")[0])
    add_model_args(parser, fresh=False)
    add_data_args(parser)
    group = parser.add_argument_group("SCST")
    group.add_argument("--num-samples", type=int, default=5, help="K sampled captions per video")
    group.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    group.add_argument("--baseline", choices=BASELINES, default="greedy",
                       help="greedy: reward of the greedy caption (Rennie et al. 2017, the design; default); mean: "
                            "mean reward of the other K-1 samples (self-critical.pytorch's 'new SCST', no greedy pass)")
    group.add_argument("--refs", choices=("full", "top5"), default="top5",
                       help="reward references: the video's top-5 subset (the design's train_top5_detail.json; "
                            "default) or its full caption set")
    group.add_argument("--top5", default=None,
                       help="top-5 file from python -m train.make_top5 (default: built from --ann with the same "
                            f"ranking and written to OUT/{TOP5_NAME})")
    group.add_argument("--no-eos-reward", dest="eos_reward", action="store_false",
                       help="score captions without the end of sentence as a word (by default, as in "
                            "self-critical.pytorch, it is one: a caption stopping on 'a' or 'with' loses reward)")
    group.add_argument("--loss-norm", choices=LOSS_NORMS, default="sequence",
                       help="what the policy-gradient loss is averaged over: sequence (sum of -A * log p per "
                            "sample / samples; Rennie et al., the default) or token (/ sampled tokens, EOS included; "
                            "self-critical.pytorch): about 10x smaller gradients for 10-token captions")
    group.add_argument("--max-sample-len", type=int, default=None,
                       help="longest sample in tokens, EOS included (default: the model's max_caption_len)")
    add_optim_args(parser, lr=1e-5, weight_decay=0.0, warmup_ratio=0.0)
    add_run_args(parser, epochs=5, batch_size=8, unit="videos")
    add_decoding_args(parser, num_beams=1, title="decoding (validation; --block-bad-endings also applies to sampling)")
    args = parser.parse_args(argv)
    check_numeric_flags(parser, args)
    if args.model is None:
        parser.error("--model is required: a train_ce output directory or a save_pretrained directory")
    if args.top5 and args.refs != "top5":
        parser.error("--top5 FILE is for --refs top5")
    if args.num_samples < 1 or (args.baseline == "mean" and args.num_samples < 2):
        parser.error("--num-samples must be >= 1, and >= 2 with --baseline mean")
    return args


def scst_qformer_lr(args: argparse.Namespace) -> tuple[float, str]:
    """The Q-Formers' peak rate and why: --qformer-lr; else --lr times the ratio the --model's train_ce run
    used (its trainer_info.json "learning_rates": 1e-5 / 1e-4 for Q-Formers started from BLIP-2), so both groups
    drop from CE by the same factor; else (no record, e.g. a bare save_pretrained folder) --lr."""
    if args.qformer_lr is not None:
        return args.qformer_lr, "--qformer-lr"
    info = resolve_model_dir(args.model, args.checkpoint) / INFO_FILE
    try:
        rates = json.loads(info.read_text()).get("learning_rates") or {}
    except (OSError, ValueError, AttributeError):
        rates = {}
    lr, qformer_lr = rates.get("lr"), rates.get("qformer_lr")
    if isinstance(lr, (int, float)) and isinstance(qformer_lr, (int, float)) and lr > 0 and qformer_lr > 0:
        return args.lr * qformer_lr / lr, f"--lr x {qformer_lr:g}/{lr:g}, the ratio of the model's train_ce rates"
    return args.lr, f"one rate: {info} records no train_ce learning rates"


def _load_top5(path: str, video_ids: Sequence[str]) -> dict[str, list[str]]:
    top5 = load_annotations(path)
    missing = [v for v in video_ids if v not in top5]
    if missing:
        raise TrainingError(f"{path}: no captions for {len(missing)} training videos, e.g. {missing[:3]}; "
                            "rebuild it from the same --ann with python -m train.make_top5")
    return top5


def build_top5(train_ann: Mapping[str, Sequence[str]], out: Path, dist: DistInfo,
               cider=None) -> tuple[dict[str, list[str]], Path]:
    """train.make_top5's subset of `train_ann` (consensus ranking, k=5), written to OUT/train_top5_detail.json.

    `cider`: the reward (eval.cider.CiderD over `train_ann`), so the subset is ranked by the reward's own
    CIDEr-D (document frequencies and end-of-sentence word alike)."""
    top5 = select_top(train_ann, k=5, by="consensus", cider=cider)
    path = out / TOP5_NAME
    if dist.is_main:
        write_records(top5, path)
    return top5, path


def train(args: argparse.Namespace, dist: DistInfo) -> dict[str, Any]:
    from eval.cider import CiderD

    out, resume = prepare_output(args, dist)
    train_ann, val_ann = load_train_val(args)
    model = load_resumed_model(resume, args, dist) if resume is not None else build_model(args, [], dist, out)
    place_model(model, dist.device, args.precision, dist)
    config = model.config
    if args.block_bad_endings is not None:  # recorded in the saved config: predict / caption decode with it
        config.block_bad_endings = args.block_bad_endings
    decoding = DecodingOptions.from_args(args).for_model(config)

    store = feature_store(args.features, list(train_ann), config, args, dist)
    videos = VideoDataset(store)
    # Document frequencies from the full training references, whatever references the reward scores against.
    cider = CiderD({v: train_ann[v] for v in store.video_ids}, eos=args.eos_reward)
    refs, top5_path = None, None
    if args.refs == "top5" and args.top5:
        refs, top5_path = _load_top5(args.top5, store.video_ids), args.top5
    elif args.refs == "top5":
        refs, top5_path = build_top5({v: train_ann[v] for v in store.video_ids}, out, dist, cider)
        print_main(dist, f"top-5 references: built from {args.ann} (train.make_top5 ranking) -> {top5_path}")
    print_main(dist, f"reward: CIDEr-D{' with the end of sentence as a word' if args.eos_reward else ''}, df over "
                 f"{cider.num_documents} training videos, refs = "
                 f"{f'top-5 subset {top5_path}' if refs else 'full caption sets'}; baseline {args.baseline}, "
                 f"K = {args.num_samples}, temperature {args.temperature}"
                 f"{', bad endings blocked' if decoding.block_bad_endings else ''}")
    validator = None
    if val_ann:
        val_store = feature_store(args.val_features or args.features, list(val_ann), config, args, dist)
        validator = Validator(model, val_store, val_ann, dist, args.val_batch_size, args.precision, decoding)
    else:
        print_main(dist, "warning: no validation annotations: no validation, no best/")
    task = SCSTTask(videos, cider, refs, baseline=args.baseline, num_samples=args.num_samples,
                    temperature=args.temperature, max_new_tokens=args.max_sample_len,
                    block_bad_endings=decoding.block_bad_endings, loss_norm=args.loss_norm)
    info = {"baseline": args.baseline, "refs": args.refs, "top5": None if top5_path is None else str(top5_path),
            "eos_reward": args.eos_reward, "num_samples": args.num_samples, "loss_norm": args.loss_norm,
            "init": str(args.model),
            "decoding": decoding.to_dict()}
    qformer_lr, why = scst_qformer_lr(args)
    print_main(dist, f"learning rates: {args.lr:g} new layers, {qformer_lr:g} Q-Formers + query tokens ({why})")
    info["learning_rates"] = {"lr": args.lr, "qformer_lr": qformer_lr}
    trainer = Trainer(args, task, model, dist, validator, out, resume, extra_info=info, qformer_lr=qformer_lr)
    return trainer.fit()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train; returns a summary (out, step, best_val_cider, best_step, last_validation)."""
    return run(train, parse_args(argv))


__all__ = ["SCSTTask", "SamplingPolicy", "build_top5", "main", "parse_args", "train"]

if __name__ == "__main__":
    cli(main)
