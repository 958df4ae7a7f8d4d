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
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from train.launch import cli
from train.make_top5 import OUTPUT_NAME as TOP5_NAME
from train.params import (
    BASELINES,
    LOSS_NORMS,
    add_data_args,
    add_model_args,
    add_optim_args,
    add_run_args,
    check_numeric_flags,
    check_sources,
)
from videoblip2.cli import ArgumentParser
from videoblip2.decoding import add_decoding_args

if TYPE_CHECKING:  # the model stack loads after the arguments are parsed (`--help` answers at once)
    from train.distributed import DistInfo


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m train.train_scst", description=__doc__.split("\n")[0])
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
    from train.run_dir import INFO_FILE, resolve_model_dir

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
    from train.errors import TrainingError
    from videoblip2.annotations import load_annotations

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
    from train.make_top5 import select_top, write_records

    top5 = select_top(train_ann, k=5, by="consensus", cider=cider)
    path = out / TOP5_NAME
    if dist.is_main:
        write_records(top5, path)
    return top5, path


def train(args: argparse.Namespace, dist: DistInfo) -> dict[str, Any]:
    from eval.cider import CiderD
    from train.data import feature_store, load_train_val
    from train.logger import print_main
    from train.model_setup import build_model, load_resumed_model, place_model
    from train.run_dir import prepare_output
    from train.scst_task import SCSTTask
    from train.trainer import Trainer
    from train.validation import Validator
    from videoblip2.data import VideoDataset
    from videoblip2.decoding import DecodingOptions

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
    args = parse_args(argv)
    check_sources(args)
    from train.launch import run

    return run(train, args)


__all__ = ["build_top5", "main", "parse_args", "train"]

if __name__ == "__main__":
    cli(main)
