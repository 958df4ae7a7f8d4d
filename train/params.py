"""Command-line flags of train_ce and train_scst, in groups: model, data, optimisation, run."""

from __future__ import annotations

import argparse
import os

from videoblip2.annotations import add_ann_format_argument, add_qa_mapping_argument

BASELINES = ("greedy", "mean")  # SCST baselines (train/scst.py)
# What train_scst --loss-norm divides the summed -A * log p by: the samples (sequence) or their tokens (token).
LOSS_NORMS = ("sequence", "token")


def add_model_args(parser: argparse.ArgumentParser, *, fresh: bool = True) -> None:
    """--model DIR | --tiny | real sources (--t5, --qformer-tokenizer, --bert, --blip2, --config)."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None,
                       help="a save_pretrained directory, a training output directory (its best/ or last/, "
                            "see --checkpoint), or a Hugging Face Hub id (org/name)")
    group.add_argument("--checkpoint", choices=("best", "last"), default="best",
                       help="which save of a training output directory --model starts from (default: best)")
    if not fresh:
        return
    group.add_argument("--tiny", action="store_true",
                       help="a tiny randomly initialised model (videoblip2.tiny) with tokenizers trained on the "
                            "training captions: CPU demos and tests")
    group.add_argument("--tiny-hidden", type=int, default=64, help="--tiny: hidden size of T5 and Q-Formers")
    group.add_argument("--tiny-layers", type=int, default=2, help="--tiny: layers of T5 and Q-Formers")
    group.add_argument("--tiny-queries", type=int, default=4, help="--tiny: query tokens per Q-Former")
    group.add_argument("--tiny-frozen-t5", action="store_true",
                       help="--tiny: freeze the random T5 and train LoRA only, like the real recipe (by default a "
                            "tiny T5 is trained whole, config t5.train_base: a frozen random T5 knows no language)")
    group.add_argument("--config", default=None,
                       help="VideoBLIP2Config JSON for a model built from pretrained sources (default: the "
                            "dataclass defaults: Flan-T5-base, BERT-base Q-Formers with 32 queries, 32 frames)")
    group.add_argument("--t5", default=None, help="Flan-T5 hub id or local directory (config t5.name_or_path)")
    group.add_argument("--t5-tokenizer", default=None, help="T5 tokenizer id/path (default: --t5)")
    group.add_argument("--qformer-tokenizer", default=None, help="BERT tokenizer id/path for the Q-Former prompt")
    group.add_argument("--bert", default=None, help="BERT weights (hub id or path) initialising the Q-Formers")
    group.add_argument("--blip2", default=None,
                       help="BLIP-2 checkpoint (LAVIS .pth or Hugging Face directory) laid over --bert")
    group.add_argument("--dropout", type=float, default=None,
                       help="override every dropout probability of a fresh model's config (Q-Former hidden and "
                            "attention, T5 dropout_rate, LoRA dropout); 0 disables dropout")


def add_data_args(parser: argparse.ArgumentParser, *, captions_required: bool = True) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--features", required=True,
                       help="features directory: video/{id}.npy [T, 768], audio/{id}.npy [T, 512], meta.json")
    group.add_argument("--ann", required=captions_required, default=None,
                       help="training captions: official MSR-VTT JSON (train_val_videodatainfo.json; its "
                            "--train-split), a list of {video_id, caption}, {video_id: [captions]}, MSVD "
                            "(AllVideoDescriptions.txt / corpus .csv + youtube_mapping.txt beside it), a VALOR or "
                            "VATEX folder or file, a video_id,caption .csv/.tsv (videoblip2.annotations)")
    add_ann_format_argument(group)
    group.add_argument("--val-ann", default=None,
                       help="validation captions (default: the --val-split of --ann when --ann has splits)")
    group.add_argument("--val-features", default=None, help="validation features directory (default: --features)")
    group.add_argument("--train-split", default="train", help="split of an --ann with splits to train on")
    group.add_argument("--val-split", default="validate", help="split of an annotation file with splits to validate on")
    group.add_argument("--val-videos", type=int, default=None, help="validate on the first N validation videos only")
    group.add_argument("--skip-bad-features", action="store_true",
                       help="skip (and list) videos whose feature files are missing or broken instead of failing")
    group.add_argument("--features-on-cpu", action="store_true",
                       help="keep the preloaded features in CPU memory instead of moving them to the GPU once")


def add_qa_args(parser: argparse.ArgumentParser) -> None:
    """Question answering in train_ce: QA files, their mix with captions, the metric that picks best/."""
    group = parser.add_argument_group("question answering")
    group.add_argument("--qa-ann", default=None,
                       help="training questions (MUSIC-AVQA, MSRVTT-QA/MSVD-QA or plain QA JSON/JSONL; "
                            "videoblip2.annotations.load_qa_annotations): alone, or with --ann for a multi-task run")
    group.add_argument("--qa-val-ann", default=None, help="validation questions (validation QA accuracy)")
    add_qa_mapping_argument(group)
    group.add_argument("--qa-ratio", type=float, default=None,
                       help="with --ann and --qa-ann: the fraction of each epoch's items that are questions, the "
                            "smaller set repeated to reach it (default: the two sets as they are)")
    group.add_argument("--qa-loss-weight", type=float, default=None, metavar="W",
                       help="with --ann and --qa-ann: loss = caption token mean + W x answer token mean (per task, "
                            "over the global batch). Default: the label tokens of both pooled, where an answer "
                            "(~2 tokens) weighs ~1/6 of a caption (~13); --qa-ratio sets the items, W the loss")
    group.add_argument("--qa-closed-vocabulary", action="store_true",
                       help="validate QA by ranking the training answers (as predict --closed-vocabulary) instead "
                            "of generating answers")
    group.add_argument("--best-metric", default=None,
                       choices=("val_cider", "val_qa_accuracy", "val_loss", "val_qa_loss"),
                       help="the validation metric that picks best/ (losses: lowest; others: highest); default "
                            "val_cider when the run has captions, else val_qa_accuracy")


def add_optim_args(parser: argparse.ArgumentParser, *, lr: float, weight_decay: float = 0.05,
                   warmup_ratio: float = 0.05) -> None:
    group = parser.add_argument_group("optimisation")
    group.add_argument("--lr", type=float, default=lr,
                       help=f"peak learning rate of the new layers: input projections, time embeddings, proj_video/"
                            f"proj_audio, LoRA (default {lr:g}); of everything when --qformer-lr is the same")
    group.add_argument("--qformer-lr", type=float, default=None,
                       help="peak learning rate of the pretrained Q-Formers and their query tokens (default: 1e-5, "
                            "LAVIS' BLIP-2 caption fine-tuning rate, when train_ce initialises them from --bert/"
                            "--blip2; otherwise --lr: --tiny or random Q-Formers are not pretrained, and train_ce "
                            "--model runs use one rate unless told; train_scst: --lr times the ratio of the "
                            "--model's train_ce rates, recorded in its trainer_info.json)")
    group.add_argument("--weight-decay", type=float, default=weight_decay,
                       help="AdamW weight decay; never applied to biases, norms and embeddings")
    group.add_argument("--adam-betas", type=float, nargs=2, default=(0.9, 0.999))
    group.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up steps (overrides --warmup-ratio)")
    group.add_argument("--warmup-ratio", type=float, default=warmup_ratio,
                       help="warm-up as a fraction of the total steps; cosine decay to 0 after it")
    group.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping (0: off)")
    group.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")


def add_run_args(parser: argparse.ArgumentParser, *, epochs: int, batch_size: int, unit: str) -> None:
    group = parser.add_argument_group("run")
    group.add_argument("--out", required=True, help="output directory (last/, best/, state/, log.jsonl, log.png)")
    group.add_argument("--epochs", type=int, default=epochs)
    group.add_argument("--max-steps", type=int, default=None,
                       help="total optimizer steps (overrides --epochs; the schedule is laid out over them)")
    group.add_argument("--batch-size", type=int, default=batch_size,
                       help=f"{unit} per micro-batch per process; global batch = batch-size x grad-accum x processes")
    group.add_argument("--val-batch-size", type=int, default=None,
                       help="validation batch: videos to decode, caption pairs for the loss (default: 2 x --batch-size)")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--log-every", type=int, default=10, help="log a training record every N steps")
    group.add_argument("--eval-every", type=int, default=0,
                       help="validate every N steps (0: only at the end of each epoch and of the run)")
    group.add_argument("--eval-first", action="store_true", help="also validate before the first step")
    group.add_argument("--save-every", type=int, default=0,
                       help="save last/ + state/ every N steps (always at the end of each epoch and of the run)")
    resume = group.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true",
                        help="continue from OUT/state (an error if there is none); re-running into an output "
                             "directory that has a state resumes anyway")
    resume.add_argument("--overwrite", action="store_true", help="delete OUT's previous run and start afresh")
    group.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    group.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                       help="auto: bf16 autocast on CUDA, fp32 on CPU")
    group.add_argument("--num-threads", type=int, default=None, help="torch CPU threads")
    group.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


# ------------------------------------------------------------------------------------------------------------
# numeric flags: checked at parse time (a bad value would otherwise do nothing, or fail late inside torch)

# flag -> (low, high, low included, high included); None: unbounded. A flag a parser lacks is skipped.
NUMERIC_RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "lr": (0, None, False, False),
    "qformer_lr": (0, None, False, False),
    "weight_decay": (0, None, True, False),
    "adam_betas": (0, 1, True, False),
    "warmup_steps": (0, None, True, False),
    "warmup_ratio": (0, 1, True, True),
    "max_grad_norm": (0, None, True, False),
    "grad_accum": (1, None, True, False),
    "epochs": (1, None, True, False),
    "max_steps": (1, None, True, False),
    "batch_size": (1, None, True, False),
    "val_batch_size": (1, None, True, False),
    "seed": (0, None, True, False),
    "log_every": (1, None, True, False),
    "eval_every": (0, None, True, False),
    "save_every": (0, None, True, False),
    "num_threads": (1, None, True, False),
    "val_videos": (1, None, True, False),
    "qa_ratio": (0, 1, False, False),
    "dropout": (0, 1, True, False),
    "tiny_hidden": (1, None, True, False),
    "tiny_layers": (1, None, True, False),
    "tiny_queries": (1, None, True, False),
    "temperature": (0, None, False, False),
    "max_sample_len": (1, None, True, False),
}


def _range_text(low: float | None, high: float | None, low_in: bool, high_in: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>=' if low_in else '>'} {low:g}")
    if high is not None:
        parts.append(f"{'<=' if high_in else '<'} {high:g}")
    return " and ".join(parts)


def check_numeric_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`parser.error` (usage + one line, exit 2) for a numeric flag outside `NUMERIC_RANGES` (NaN and inf too)."""
    import math

    for name, (low, high, low_in, high_in) in NUMERIC_RANGES.items():
        value = getattr(args, name, None)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is None:
                continue
            ok = math.isfinite(v) and (low is None or (v >= low if low_in else v > low)) and (
                high is None or (v <= high if high_in else v < high))
            if not ok:
                parser.error(f"--{name.replace('_', '-')} must be {_range_text(low, high, low_in, high_in)}, got {v}")


# Flags whose value the saved state fixes: on resume the optimizer's hyperparameters and schedule come from
# state/training_state.pt and the model from state/model, so a changed value here would be silently ignored.
FIXED_ON_RESUME = ("lr", "qformer_lr", "weight_decay", "adam_betas", "warmup_steps", "warmup_ratio", "model", "checkpoint",
                   "tiny", "tiny_hidden", "tiny_layers", "tiny_queries", "tiny_frozen_t5", "config", "t5",
                   "t5_tokenizer", "qformer_tokenizer", "bert", "blip2", "dropout")


def check_sources(args: argparse.Namespace) -> None:
    """Every model, tokenizer, checkpoint and data source of a training command, and --out, before any heavy
    work: one line naming the flag, the value and the fix (``videoblip2.sources.SourceError``, exit 2)."""
    from videoblip2.cli import check_out_dir, cli
    from videoblip2.sources import (
        MODEL_FILES,
        TOKENIZER_FILES,
        SourceError,
        check_config_file,
        check_features_folder,
        check_file,
        check_hub_source,
    )

    def check() -> None:
        if getattr(args, "model", None):
            check_hub_source(args.model, "--model", what="VideoBLIP2 model or training output folder",
                             local_fix="give a train_ce output folder or a save_pretrained folder")
        for flag, what, files in (("bert", "BERT model", MODEL_FILES), ("blip2", "BLIP-2 checkpoint", MODEL_FILES)):
            value = getattr(args, flag, None)
            if value:
                check_hub_source(value, f"--{flag}", what=what, filenames=files)
        if getattr(args, "config", None):
            check_config_file(args.config)
        if not getattr(args, "model", None) and hasattr(args, "tiny") and not args.tiny:
            # a model built from pretrained sources: the flags', or the config's defaults (flan-t5-base, bert)
            from videoblip2.config import VideoBLIP2Config

            config = VideoBLIP2Config.load(args.config) if args.config else VideoBLIP2Config()
            t5 = args.t5 or config.t5.name_or_path
            if args.t5 or config.t5.architecture is None:
                check_hub_source(t5, "--t5", what="Flan-T5 model", filenames=MODEL_FILES)
            t5_tokenizer = args.t5_tokenizer or config.t5.tokenizer or t5
            check_hub_source(t5_tokenizer, "--t5-tokenizer" if args.t5_tokenizer else "--t5", what="T5 tokenizer",
                             filenames=TOKENIZER_FILES)
            qformer_tokenizer = args.qformer_tokenizer or config.qformer_tokenizer
            check_hub_source(qformer_tokenizer, "--qformer-tokenizer", what="BERT tokenizer",
                             filenames=TOKENIZER_FILES)
        for flag in ("ann", "val_ann", "qa_ann", "qa_val_ann", "top5"):
            value = getattr(args, flag, None)
            if value and not os.path.exists(value):
                check_file(value, f"--{flag.replace('_', '-')}", what="annotation")
        check_features_folder(args.features, "--features")
        if getattr(args, "val_features", None):
            check_features_folder(args.val_features, "--val-features")
        check_out_dir(args.out, "--out")

    cli(check, extra=(SourceError,))
