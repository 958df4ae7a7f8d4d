"""Cross-entropy training of VideoBLIP2 on (video, caption) pairs, (video, question, answer) triples, or both.

    python -m train.train_ce --tiny --features data/synth --ann data/synth/train_val_videodatainfo.json \\
        --out runs/ce --epochs 8 --batch-size 32 --lr 1e-3

    torchrun --nproc_per_node 4 -m train.train_ce --t5 google/flan-t5-base --qformer-tokenizer bert-base-uncased \\
        --bert bert-base-uncased --blip2 blip2_pretrained_flant5xl.pth --features features/msrvtt \\
        --ann msrvtt/train_val_videodatainfo.json --out runs/ce --epochs 10 --batch-size 32 --lr 1e-4

    python -m train.train_ce --tiny --features data/synth --qa-ann data/synth/avqa-train.json \
        --qa-val-ann data/synth/avqa-val.json --out runs/qa --epochs 20 --batch-size 32 --lr 1e-3

Question answering (--qa-ann): the question goes into `config.qa_prompt_template` ("Question: {question} Short
answer:"), the prompt of both Q-Formers and T5, and the answer is the target. With --ann as well, one run trains
both tasks, every batch mixing caption pairs and questions (--qa-ratio sets the share of questions).

The loss of an optimizer step is the token cross-entropy summed over the global batch divided by its number
of label tokens (EOS included). Validation (loss + greedy CIDEr-D for captions, answer loss + QA accuracy for
questions) runs at the end of every epoch and every --eval-every steps; `best/` keeps the model with the best
--best-metric (default: validation CIDEr-D, or QA accuracy in a QA-only run). Re-running the same command
continues from OUT/state. See train/run_dir.py for the output directory layout.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from train.launch import cli
from train.params import (
    add_data_args,
    add_model_args,
    add_optim_args,
    add_qa_args,
    add_run_args,
    check_numeric_flags,
    check_sources,
)
from videoblip2.cli import ArgumentParser
from videoblip2.decoding import add_decoding_args

if TYPE_CHECKING:  # the model stack loads after the arguments are parsed (`--help` answers at once)
    from train.distributed import DistInfo

# VideoBLIP2.set_activation_checkpointing's parts (videoblip2.modeling.CHECKPOINTABLE_PARTS; a test keeps them equal)
CHECKPOINTABLE_PARTS = ("t5_encoder", "t5_decoder", "qformers")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m train.train_ce", description=__doc__.split("\n")[0])
    add_model_args(parser)
    add_data_args(parser, captions_required=False)
    add_qa_args(parser)
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
    if not args.ann and not args.qa_ann:
        parser.error("give training captions (--ann), training questions (--qa-ann), or both")
    if args.val_ann and not args.ann:
        parser.error("--val-ann validates captions: give --ann too")
    if args.qa_val_ann and not args.qa_ann:
        parser.error("--qa-val-ann validates questions: give --qa-ann too")
    if args.qa_ratio is not None and not (args.ann and args.qa_ann):
        parser.error("--qa-ratio mixes captions and questions: give --ann and --qa-ann")
    if args.qa_loss_weight is not None and not (args.ann and args.qa_ann):
        parser.error("--qa-loss-weight weighs the QA loss against the caption loss: give --ann and --qa-ann")
    if args.qa_loss_weight is not None and not args.qa_loss_weight >= 0:
        parser.error(f"--qa-loss-weight must be >= 0, got {args.qa_loss_weight}")
    if args.qa_ratio is not None and not 0 < args.qa_ratio < 1:
        parser.error(f"--qa-ratio must be between 0 and 1 (exclusive), got {args.qa_ratio}")
    return args


def train(args: argparse.Namespace, dist: DistInfo) -> dict[str, Any]:
    from train.data import feature_store, load_qa_train_val, load_train_val
    from train.logger import print_main
    from train.model_setup import build_model, load_resumed_model, place_model
    from train.optim import resolve_qformer_lr
    from train.run_dir import prepare_output
    from train.tasks import CaptionTask, MixedTask, QATask
    from train.trainer import Trainer
    from train.validation import QAValidator, Validator, Validators
    from videoblip2.data import CaptionDataset, QADataset, answer_vocabulary
    from videoblip2.decoding import DecodingOptions

    out, resume = prepare_output(args, dist)
    train_ann, val_ann = load_train_val(args) if args.ann else ({}, None)
    qa_train, qa_val = load_qa_train_val(args)
    if resume is not None:
        model = load_resumed_model(resume, args, dist)
    else:
        # the tiny model's tokenizers learn the captions, the question prompts and the answers
        from videoblip2.config import VideoBLIP2Config

        template = VideoBLIP2Config().qa_prompt_template
        corpus = [c for captions in train_ann.values() for c in captions]
        corpus += [template.format(question=item.question) for item in qa_train] + [i.answer for i in qa_train]
        model = build_model(args, corpus, dist, out)
    place_model(model, dist.device, args.precision, dist)
    if args.activation_checkpointing:
        layers = model.set_activation_checkpointing(args.activation_checkpointing)
        print_main(dist, f"activation checkpointing: {layers} layers ({', '.join(args.activation_checkpointing)})")
    config = model.config
    if args.block_bad_endings is not None:  # recorded in the saved config: predict / caption decode with it
        config.block_bad_endings = args.block_bad_endings
    decoding = DecodingOptions.from_args(args).for_model(config)
    print_main(dist, f"trainable parameters: {model.num_parameters(trainable_only=True):,} of "
                 f"{model.num_parameters():,}")

    val_features = args.val_features or args.features
    validators = []
    captions = questions = None
    if train_ann:
        store = feature_store(args.features, list(train_ann), config, args, dist)
        captions = CaptionDataset(store, train_ann, model.t5_tokenizer, config.max_caption_len)
        if val_ann:
            val_store = feature_store(val_features, list(val_ann), config, args, dist)
            validators.append(Validator(model, val_store, val_ann, dist, args.val_batch_size, args.precision,
                                        decoding))
        else:
            print_main(dist, "warning: no validation captions (--val-ann, or an official --ann with a "
                         f"'{args.val_split}' split): no caption validation")
    answers = answer_vocabulary(qa_train)
    if qa_train:
        store = feature_store(args.features, list(dict.fromkeys(i.video_id for i in qa_train)), config, args, dist)
        questions = QADataset(store, qa_train, model.t5_tokenizer, model.qformer_tokenizer, config)
        if questions.truncation_note("training questions"):
            print_main(dist, questions.truncation_note("training questions"))
        if questions.dropped:
            print_main(dist, f"{len(questions.dropped)} training questions left out: their videos' features are bad")
        if qa_val:
            val_store = feature_store(val_features, list(dict.fromkeys(i.video_id for i in qa_val)), config, args,
                                      dist)
            validators.append(QAValidator(model, val_store, qa_val, dist, args.val_batch_size, args.precision,
                                          candidates=answers if args.qa_closed_vocabulary else None,
                                          decoding=decoding))
        else:
            print_main(dist, "warning: no validation questions (--qa-val-ann): no QA validation")
    if captions is not None and questions is not None:
        task = MixedTask(captions, questions, model.tokenize_prompts([config.prompt]), args.qa_ratio, args.seed,
                         qa_loss_weight=args.qa_loss_weight)
        print_main(dist, f"multi-task: {len(captions)} caption pairs + {len(questions)} questions, "
                     f"{task.qa_fraction:.1%} of the {task.num_items} items per epoch are questions; loss: "
                     + ("label tokens of both pooled" if args.qa_loss_weight is None else
                        f"caption token mean + {args.qa_loss_weight:g} x answer token mean"))
    else:
        task = CaptionTask(captions) if captions is not None else QATask(questions)
    if args.best_metric is None:
        args.best_metric = "val_cider" if captions is not None else "val_qa_accuracy"
    validator = Validators(validators) if validators else None
    if validator is None:
        print_main(dist, "warning: no validation: no best/")
    qformer_lr = resolve_qformer_lr(args, pretrained_qformers=args.model is None and not args.tiny
                                    and bool(args.bert or args.blip2))
    # the peak rates, beside every saved model: train_scst keeps their ratio for its two groups
    extra_info = {"learning_rates": {"lr": args.lr, "qformer_lr": qformer_lr}}
    if answers:
        extra_info.update(qa_answers=answers, qa_prompt_template=config.qa_prompt_template)
    print_main(dist, f"learning rates: {args.lr:g} new layers, {qformer_lr:g} Q-Formers + query tokens")
    trainer = Trainer(args, task, model, dist, validator, out, resume, extra_info=extra_info, qformer_lr=qformer_lr)
    return trainer.fit()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train; returns a summary (out, step, best_<metric> (e.g. best_val_cider), best_metric, best_step,
    last_validation)."""
    args = parse_args(argv)
    check_sources(args)
    from train.launch import run

    return run(train, args)


__all__ = ["main", "parse_args", "train"]

if __name__ == "__main__":
    cli(main)
