"""Cross-entropy training of VideoBLIP2 on every (video, caption) pair of the training annotations.

    python -m train.train_ce --tiny --features data/synth --ann data/synth/train_val_videodatainfo.json \\
        --out runs/ce --epochs 8 --batch-size 32 --lr 1e-3

    torchrun --nproc_per_node 4 -m train.train_ce --t5 google/flan-t5-base --qformer-tokenizer bert-base-uncased \\
        --bert bert-base-uncased --blip2 blip2_pretrained_flant5xl.pth --features features/msrvtt \\
        --ann msrvtt/train_val_videodatainfo.json --out runs/ce --epochs 10 --batch-size 32 --lr 1e-4

The loss of an optimizer step is the token cross-entropy summed over the global batch divided by its number
of label tokens (EOS included). Validation (loss + greedy CIDEr-D) runs at the end of every epoch and every
--eval-every steps; `best/` keeps the model with the best validation CIDEr-D. Re-running the same command
continues from OUT/state. See train/run_dir.py for the output directory layout.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from train.data import feature_store, load_train_val
from train.distributed import DistInfo
from train.launch import cli, run
from train.logger import print_main
from train.model_setup import build_model, load_resumed_model, place_model
from train.optim import resolve_qformer_lr
from train.params import add_data_args, add_model_args, add_optim_args, add_run_args, check_numeric_flags
from train.run_dir import prepare_output
from train.tasks import CaptionTask
from train.trainer import Trainer
from train.validation import Validator
from videoblip2.data import CaptionDataset
from videoblip2.decoding import DecodingOptions, add_decoding_args
from videoblip2.modeling import CHECKPOINTABLE_PARTS


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m train.train_ce", description=__doc__.split("\n")[0])
    add_model_args(parser)
    add_data_args(parser)
    add_optim_args(parser, lr=1e-4)
    add_run_args(parser, epochs=10, batch_size=32, unit="caption pairs")
    add_decoding_args(parser, num_beams=1, title="decoding (validation)")
    parser.add_argument("--activation-checkpointing", nargs="+", default=[], metavar="PART",
                        choices=CHECKPOINTABLE_PARTS,
                        help="recompute these parts' layers in backward instead of keeping their activations: "
                             "less memory for a larger batch, at one more forward of them (same losses)")
    args = parser.parse_args(argv)
    check_numeric_flags(parser, args)
    if args.model is not None and args.tiny:
        parser.error("--model and --tiny are alternatives")
    return args


def train(args: argparse.Namespace, dist: DistInfo) -> dict[str, Any]:
    out, resume = prepare_output(args, dist)
    train_ann, val_ann = load_train_val(args)
    if resume is not None:
        model = load_resumed_model(resume, args, dist)
    else:
        model = build_model(args, [c for captions in train_ann.values() for c in captions], dist, out)
    place_model(model, dist.device, args.precision, dist)
    if args.activation_checkpointing:
        layers = model.set_activation_checkpointing(args.activation_checkpointing)
        print_main(dist, f"activation checkpointing: {layers} layers ({', '.join(args.activation_checkpointing)})")
    config = model.config
    print_main(dist, f"trainable parameters: {model.num_parameters(trainable_only=True):,} of "
                 f"{model.num_parameters():,}")

    store = feature_store(args.features, list(train_ann), config, args, dist)
    dataset = CaptionDataset(store, train_ann, model.t5_tokenizer, config.max_caption_len)
    validator = None
    if val_ann:
        val_store = feature_store(args.val_features or args.features, list(val_ann), config, args, dist)
        validator = Validator(model, val_store, val_ann, dist, args.val_batch_size, args.precision,
                              DecodingOptions.from_args(args))
    else:
        print_main(dist, "warning: no validation annotations (--val-ann, or an official --ann with a "
                     f"'{args.val_split}' split): no validation, no best/")
    args.qformer_lr = resolve_qformer_lr(args, pretrained_qformers=args.model is None and not args.tiny
                                         and bool(args.bert or args.blip2))
    print_main(dist, f"learning rates: {args.lr:g} new layers, {args.qformer_lr:g} Q-Formers + query tokens")
    trainer = Trainer(args, CaptionTask(dataset), model, dist, validator, out, resume)
    return trainer.fit()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train; returns a summary (out, step, best_val_cider, best_step, last_validation)."""
    return run(train, parse_args(argv))


__all__ = ["CaptionTask", "main", "parse_args", "train"]

if __name__ == "__main__":
    cli(main)
