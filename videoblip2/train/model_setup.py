"""The model a run starts from: a saved directory, the tiny model, or pretrained sources; its placement."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import torch

from .distributed import DistInfo, barrier
from .errors import TrainingError
from .file_utils import atomic_write_dir
from .logger import print_main
from .precision import uses_bf16
from .rng import set_seed
from .run_dir import TINY_INIT_DIR, ResumeState, resolve_model_dir
from videoblip2.config import VideoBLIP2Config
from videoblip2.modeling import VideoBLIP2


def override_dropout(config: VideoBLIP2Config, p: float) -> None:
    """Every dropout probability of the config: Q-Former, LoRA, and the T5's (`t5.dropout_rate`, saved with it)."""
    config.qformer.hidden_dropout_prob = p
    config.qformer.attention_probs_dropout_prob = p
    config.lora.dropout = p
    config.t5.dropout_rate = p
    if config.t5.architecture is not None:
        config.t5.architecture["dropout_rate"] = p


def build_tiny(corpus: Sequence[str], *, seed: int, hidden: int, layers: int, queries: int,
               dropout: float | None, frozen_t5: bool = False) -> VideoBLIP2:
    """videoblip2.tiny's model, with the dropout override applied to its config before construction."""
    from videoblip2 import tiny

    corpus = list(corpus) + [tiny.DEFAULT_CORPUS[0], "a short description of the video:"]
    t5_tokenizer = tiny.t5_style_tokenizer(corpus)
    qformer_tokenizer = tiny.bert_style_tokenizer(corpus)
    config = tiny.tiny_config(len(t5_tokenizer), len(qformer_tokenizer), hidden=hidden, layers=layers,
                              num_query_tokens=queries, train_t5=not frozen_t5)
    if dropout is not None:
        override_dropout(config, dropout)
    torch.manual_seed(seed)
    return VideoBLIP2(config, t5_tokenizer=t5_tokenizer, qformer_tokenizer=qformer_tokenizer)


def build_model(args: argparse.Namespace, corpus: Sequence[str], dist: DistInfo, out: Path) -> VideoBLIP2:
    """The model a fresh run starts from: --model DIR, --tiny, or pretrained sources (load report printed).

    Building seeds torch with --seed on every process (identical initial weights everywhere); afterwards each
    process is reseeded with seed + rank, as at launch, so dropout and SCST sampling differ across processes.
    """
    model = _build_model(args, corpus, dist, out)
    set_seed(args.seed + dist.rank)
    return model


def _build_model(args: argparse.Namespace, corpus: Sequence[str], dist: DistInfo, out: Path) -> VideoBLIP2:
    fresh_flags = [f for f in ("tiny", "config", "t5", "t5_tokenizer", "qformer_tokenizer", "bert", "blip2", "dropout")
                   if getattr(args, f, None) not in (None, False)]
    if args.model is not None:
        if fresh_flags:
            raise TrainingError(f"--model starts from a saved model; drop {', '.join('--' + f.replace('_', '-') for f in fresh_flags)}")
        model_dir = resolve_model_dir(args.model, args.checkpoint)
        print_main(dist, f"model: {model_dir}")
        return VideoBLIP2.from_pretrained(model_dir)

    if args.tiny:
        other = [f for f in fresh_flags if f not in ("tiny", "dropout")]
        if other:
            raise TrainingError(f"--tiny builds its own config; drop {', '.join('--' + f.replace('_', '-') for f in other)}")
        kwargs = dict(seed=args.seed, hidden=args.tiny_hidden, layers=args.tiny_layers, queries=args.tiny_queries,
                      dropout=args.dropout, frozen_t5=args.tiny_frozen_t5)
        if not dist.distributed:
            return build_tiny(corpus, **kwargs)
        # Training a WordPiece vocabulary is not deterministic across processes (tokenizers' trainer breaks
        # ties in hash order), so rank 0 builds the tiny model and the others load it.
        init_dir = out / TINY_INIT_DIR
        if dist.is_main:
            atomic_write_dir(init_dir, build_tiny(corpus, **kwargs).save_pretrained)
        barrier(dist)
        return VideoBLIP2.from_pretrained(init_dir)

    config = VideoBLIP2Config.load(args.config) if args.config else VideoBLIP2Config()
    if args.t5:
        config.t5.name_or_path = args.t5
        config.t5.architecture = None
    if args.t5_tokenizer:
        config.t5.tokenizer = args.t5_tokenizer
    if args.qformer_tokenizer:
        config.qformer_tokenizer = args.qformer_tokenizer
    if args.dropout is not None:
        override_dropout(config, args.dropout)
    torch.manual_seed(args.seed)
    print_main(dist, f"model: T5 {config.t5.name_or_path}, Q-Former tokenizer {config.qformer_tokenizer}")
    model = VideoBLIP2(config)
    if args.bert or args.blip2:
        model.init_qformers(bert=args.bert, blip2=args.blip2, verbose=dist.is_main)
    else:
        print_main(dist, "warning: neither --bert nor --blip2 given: the Q-Formers start from random weights")
    return model


def place_model(model: VideoBLIP2, device: torch.device, precision: str, dist: DistInfo | None = None) -> VideoBLIP2:
    """Move the model to `device`; under bf16 autocast, store the frozen T5 linear weights in bf16.

    Every step then computes the same products as with fp32 weights (autocast casts them to bf16 on every
    call anyway), without those casts and with half the frozen weights' memory (`VideoBLIP2.cast_frozen_t5`).
    """
    model.to(device)
    if uses_bf16(device, precision):
        cast = model.cast_frozen_t5(torch.bfloat16)
        if cast and dist is not None:
            print_main(dist, f"frozen T5 linear weights stored in bf16 ({cast:,} parameters)")
    return model


def load_resumed_model(resume: ResumeState, args: argparse.Namespace, dist: DistInfo) -> VideoBLIP2:
    print_main(dist, f"resuming from {resume.model_dir.parent} (step {resume.training['progress']['step']}); "
                 "the model comes from the state, model flags are ignored")
    return VideoBLIP2.from_pretrained(resume.model_dir)
