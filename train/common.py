"""What train_ce and train_scst share: arguments, model construction, optimiser, checkpoints, resume, logging,
validation, distributed setup, and the training loop itself.

Output directory of a run::

    OUT/last/          save_pretrained directory of the latest save (VideoBLIP2.from_pretrained reads it)
    OUT/best/          save_pretrained directory with the best validation CIDEr so far
    OUT/state/         resume state: model/ (save_pretrained), training_state.pt (optimizer, scheduler, RNG of
                       every rank), progress.json (step, epoch, data position; human-readable)
    OUT/log.jsonl      one JSON object per line: "start", "train" (every --log-every steps), "val", "save"
    OUT/log.png        the training curves, redrawn at the end of every epoch
    OUT/last/trainer_info.json, OUT/best/trainer_info.json: step, epoch and validation metrics of that save

Every directory is written into a temporary sibling and swapped in with renames (`atomic_write_dir`), so a
run killed at any moment leaves the previous complete `best/`, `last/` and `state/` (a swap interrupted between
its two renames is undone by `recover_dir` at the next start).

Data order: epoch e visits the items (caption pairs for CE, videos for SCST) in
``np.random.default_rng([seed, e]).permutation(num_items)``, cut into global batches of
``batch_size * grad_accum * world_size`` items (an incomplete last batch is dropped). Rank r takes the r-th
contiguous slice of a global batch, then ``grad_accum`` micro-batches of ``batch_size`` from it. A resumed run
recomputes the permutation and skips exactly the global batches already consumed.

Loss normalisation: the loss of a global batch is the *sum* of per-item losses divided by a normaliser of the
whole global batch (CE: its label tokens; SCST: its samples), the same whatever the split over processes and
micro-batches, so one process and N processes with the same global batch take the same optimizer step.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import nn

from videoblip2.annotations import AnnotationError, load_annotations
from videoblip2.config import VideoBLIP2Config
from videoblip2.data import IGNORE_INDEX, CaptionDataset, FeatureStore, VideoDataset
from videoblip2.modeling import CONFIG_NAME, VideoBLIP2
from videoblip2.predict import predict_captions

LOG_NAME = "log.jsonl"
PLOT_NAME = "log.png"
STATE_DIR = "state"
STATE_FILE = "training_state.pt"
PROGRESS_FILE = "progress.json"
INFO_FILE = "trainer_info.json"
TINY_INIT_DIR = ".tiny_init"


class TrainingError(RuntimeError):
    """A training run that cannot start or continue as asked; the message says why and what to do."""


# ============================================================================ arguments


def add_model_args(parser: argparse.ArgumentParser, *, fresh: bool = True) -> None:
    """--model DIR | --tiny | real sources (--t5, --qformer-tokenizer, --bert, --blip2, --config)."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None,
                       help="a save_pretrained directory, or a training output directory (its best/ or last/, "
                            "see --checkpoint)")
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


def add_data_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--features", required=True,
                       help="features directory: video/{id}.npy [T, 768], audio/{id}.npy [T, 512], meta.json")
    group.add_argument("--ann", required=True,
                       help="training captions: official MSR-VTT JSON (train_val_videodatainfo.json; its "
                            "--train-split), a list of {video_id, caption}, or {video_id: [captions]}")
    group.add_argument("--val-ann", default=None,
                       help="validation captions (default: the --val-split of --ann when --ann is official)")
    group.add_argument("--val-features", default=None, help="validation features directory (default: --features)")
    group.add_argument("--train-split", default="train", help="split of an official --ann to train on")
    group.add_argument("--val-split", default="validate", help="split of an official annotation file to validate on")
    group.add_argument("--val-videos", type=int, default=None, help="validate on the first N validation videos only")
    group.add_argument("--skip-bad-features", action="store_true",
                       help="skip (and list) videos whose feature files are missing or broken instead of failing")
    group.add_argument("--features-on-cpu", action="store_true",
                       help="keep the preloaded features in CPU memory instead of moving them to the GPU once")


def add_optim_args(parser: argparse.ArgumentParser, *, lr: float, weight_decay: float = 0.05,
                   warmup_ratio: float = 0.05) -> None:
    group = parser.add_argument_group("optimisation")
    group.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr:g})")
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


# ============================================================================ distributed


@dataclasses.dataclass
class DistInfo:
    """Where this process runs: rank / world size from torchrun's environment, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str = "auto") -> DistInfo:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK, pick the device and start the process group.

    Backend: nccl on CUDA, gloo on CPU. A single process (no torchrun) needs nothing.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {device}: CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if world_size > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup_distributed() -> None:
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def barrier(dist: DistInfo) -> None:
    if dist.distributed:
        torch_dist.barrier()


def all_reduce_sum(values: np.ndarray, dist: DistInfo) -> np.ndarray:
    """Sum a float vector over processes (float64 on CPU for gloo, on the device for nccl)."""
    if not dist.distributed:
        return values
    device = dist.device if dist.device.type == "cuda" else torch.device("cpu")
    tensor = torch.as_tensor(values, dtype=torch.float64, device=device)
    torch_dist.all_reduce(tensor)
    return tensor.cpu().numpy()


def all_gather_objects(obj: Any, dist: DistInfo) -> list[Any]:
    if not dist.distributed:
        return [obj]
    out: list[Any] = [None] * dist.world_size
    torch_dist.all_gather_object(out, obj)
    return out


# ============================================================================ model


def resolve_model_dir(path: str | os.PathLike, checkpoint: str = "best") -> Path:
    """A save_pretrained directory as given, or `checkpoint` (then the other one) of a training output directory."""
    path = Path(path)
    if (path / CONFIG_NAME).is_file():
        return path
    order = (checkpoint, "last" if checkpoint == "best" else "best")
    for name in order:
        # Read-only: that run may still be writing. `.NAME.old` is the complete previous version while a
        # swap is between its two renames.
        for candidate in (path / name, _siblings(path / name)[1]):
            if (candidate / CONFIG_NAME).is_file():
                return candidate
    raise TrainingError(f"{path}: neither a VideoBLIP2 model directory (no {CONFIG_NAME}) nor a training output "
                        f"directory with {order[0]}/ or {order[1]}/")


def _override_dropout(config: VideoBLIP2Config, p: float) -> None:
    config.qformer.hidden_dropout_prob = p
    config.qformer.attention_probs_dropout_prob = p
    config.lora.dropout = p
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
        _override_dropout(config, dropout)
    torch.manual_seed(seed)
    return VideoBLIP2(config, t5_tokenizer=t5_tokenizer, qformer_tokenizer=qformer_tokenizer)


def build_model(args: argparse.Namespace, corpus: Sequence[str], dist: DistInfo, out: Path) -> VideoBLIP2:
    """The model a fresh run starts from: --model DIR, --tiny, or pretrained sources (load report printed)."""
    fresh_flags = [f for f in ("tiny", "config", "t5", "t5_tokenizer", "qformer_tokenizer", "bert", "blip2", "dropout")
                   if getattr(args, f, None) not in (None, False)]
    if args.model is not None:
        if fresh_flags:
            raise TrainingError(f"--model starts from a saved model; drop {', '.join('--' + f.replace('_', '-') for f in fresh_flags)}")
        model_dir = resolve_model_dir(args.model, args.checkpoint)
        _print(dist, f"model: {model_dir}")
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
    t5 = None
    if args.dropout is not None:
        _override_dropout(config, args.dropout)
        if config.t5.architecture is None:
            from transformers import T5ForConditionalGeneration

            t5 = T5ForConditionalGeneration.from_pretrained(config.t5.name_or_path, dropout_rate=args.dropout)
    torch.manual_seed(args.seed)
    _print(dist, f"model: T5 {config.t5.name_or_path}, Q-Former tokenizer {config.qformer_tokenizer}")
    model = VideoBLIP2(config, t5=t5)
    if args.bert or args.blip2:
        model.init_qformers(bert=args.bert, blip2=args.blip2, verbose=dist.is_main)
    else:
        _print(dist, "warning: neither --bert nor --blip2 given: the Q-Formers start from random weights")
    return model


# ============================================================================ data


def _is_official(path: str | os.PathLike) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError):
        return False  # load_annotations reports the problem with the file name
    return isinstance(data, dict) and "videos" in data and "sentences" in data


def load_split(path: str | os.PathLike, split: str) -> dict[str, list[str]]:
    """The `split` of an official MSR-VTT file, or every video of a plain caption file."""
    return load_annotations(path, split if _is_official(path) else None)


def load_train_val(args: argparse.Namespace) -> tuple[dict[str, list[str]], dict[str, list[str]] | None]:
    """(training annotations, validation annotations or None) from --ann / --val-ann."""
    train = load_split(args.ann, args.train_split)
    if args.val_ann:
        val = load_split(args.val_ann, args.val_split)
    elif _is_official(args.ann):
        val = load_annotations(args.ann, args.val_split)
    else:
        val = None
    if val is not None and args.val_videos is not None:
        val = dict(list(val.items())[: args.val_videos])
    overlap = set(train) & set(val or {})
    if overlap:
        raise TrainingError(f"{len(overlap)} videos are in both the training and the validation annotations, "
                            f"e.g. {sorted(overlap)[:3]}")
    return train, val


def feature_store(root: str | os.PathLike, video_ids: Sequence[str], config: VideoBLIP2Config,
                  args: argparse.Namespace, dist: DistInfo) -> FeatureStore:
    store = FeatureStore(root, list(video_ids), max_frames=config.max_frames,
                         max_audio_windows=config.max_audio_windows, video_dim=config.video_dim,
                         audio_dim=config.audio_dim, preload=True, skip_bad=args.skip_bad_features)
    if store.skipped:
        _print(dist, f"{root}: skipped {len(store.skipped)} videos with bad features, e.g. {store.skipped[0][1]}")
    if not len(store):
        raise TrainingError(f"{root}: no usable videos")
    return store.to(dist.device if not args.features_on_cpu else "cpu")


# ============================================================================ optimisation


_EMBEDDING_NAMES = ("embedding", "query_tokens", "shared.weight", "embed_tokens", "relative_attention_bias")


def no_decay(name: str, param: nn.Parameter) -> bool:
    """Biases, norm weights (1-d) and embeddings (word/position/time embeddings, query tokens) get no weight decay."""
    return param.ndim < 2 or any(part in name for part in _EMBEDDING_NAMES)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, plain = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (plain if no_decay(name, param) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, args: argparse.Namespace, device: torch.device) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=tuple(args.adam_betas),
                             fused=device.type == "cuda")


def build_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Linear warm-up from 0 to the peak lr, then cosine decay to 0 (transformers' schedule)."""
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, warmup_steps, total_steps)


def uses_bf16(device: torch.device, precision: str) -> bool:
    """bf16 autocast on CUDA (precision auto/bf16); fp32 on CPU unless bf16 is asked for."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def autocast(device: torch.device, precision: str):
    """bf16 autocast when `uses_bf16`, else nothing (fp32)."""
    if uses_bf16(device, precision):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def place_model(model: VideoBLIP2, device: torch.device, precision: str, dist: DistInfo | None = None) -> VideoBLIP2:
    """Move the model to `device`; under bf16 autocast, store the frozen T5 linear weights in bf16.

    Every step then computes the same products as with fp32 weights (autocast casts them to bf16 on every
    call anyway), without those casts and with half the frozen weights' memory (`VideoBLIP2.cast_frozen_t5`).
    """
    model.to(device)
    if uses_bf16(device, precision):
        cast = model.cast_frozen_t5(torch.bfloat16)
        if cast and dist is not None:
            _print(dist, f"frozen T5 linear weights stored in bf16 ({cast:,} parameters)")
    return model


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ============================================================================ atomic directories


def _siblings(final: Path) -> tuple[Path, Path]:
    return final.with_name(f".{final.name}.tmp"), final.with_name(f".{final.name}.old")


def recover_dir(final: str | os.PathLike) -> None:
    """Finish or undo an interrupted `atomic_write_dir`: the previous complete version comes back if needed."""
    final = Path(final)
    tmp, old = _siblings(final)
    if not final.exists() and old.exists():
        os.replace(old, final)  # killed between the two renames: the old version is the complete one
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_dir(final: str | os.PathLike, write: Callable[[Path], Any]) -> None:
    """Write a directory with `write(tmp_dir)` next to `final`, then swap it in with two renames.

    If the process dies inside `write`, `final` is untouched; if it dies between the renames, `final` is
    missing and `recover_dir` restores the old version from `.NAME.old`.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(final)
    tmp, old = _siblings(final)
    write(tmp)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


# ============================================================================ logging


class JsonlLog:
    """Append-only JSON-lines log (rank 0 writes); `truncate_after(step)` drops records of a killed run's future."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path = path
        self.enabled = enabled

    def write(self, record: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(dict(record), default=_json_default) + "\n")

    def records(self) -> list[dict[str, Any]]:
        return read_log(self.path)

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.exists():
            return
        kept = [r for r in read_log(self.path) if r.get("step", 0) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.path)


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a log.jsonl (a torn last line, from a kill mid-write, is ignored)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def plot_log(log_path: str | os.PathLike, png_path: str | os.PathLike, extra_keys: Sequence[str] = ()) -> None:
    """Training curves from log.jsonl: train/val loss, lr, validation CIDEr-D, and `extra_keys` (e.g. rewards)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    train = [r for r in records if r.get("type") == "train"]
    val = [r for r in records if r.get("type") == "val"]

    def series(rows, key):
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        return ([p[0] for p in pts], [p[1] for p in pts])

    panels = [("loss", [(train, "loss", "train"), (val, "val_loss", "validation")]),
              ("learning rate", [(train, "lr", "lr")]),
              ("validation CIDEr-D (greedy)", [(val, "val_cider", "val CIDEr-D")])]
    if extra_keys:
        panels.append(("reward / advantage", [(train, k, k) for k in extra_keys]))
    else:
        panels.append(("gradient norm (before clipping)", [(train, "grad_norm", "grad norm")]))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for ax, (title, lines) in zip(axes.flat, panels):
        for rows, key, label in lines:
            x, y = series(rows, key)
            if x:
                ax.plot(x, y, marker="o" if len(x) < 30 else None, markersize=3, label=label)
        values = [v for line in ax.lines for v in line.get_ydata()]
        if title == "loss" and values and min(values) > 0 and max(values) / min(values) > 20:
            ax.set_yscale("log")  # the first steps of a fresh model dwarf the rest
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = Path(png_path).with_name(Path(png_path).name + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, png_path)


def _print(dist: DistInfo, message: str) -> None:
    if dist.is_main:
        print(message, flush=True)


# ============================================================================ validation


def _model_inputs(batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {k: batch[k] for k in ("video", "video_mask", "audio", "audio_mask")}


def caption_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed token cross-entropy (fp32) of (B, L, V) logits against (B, L) labels padded with -100."""
    return F.cross_entropy(logits.float().flatten(0, 1), labels.to(logits.device).flatten(),
                           ignore_index=IGNORE_INDEX, reduction="sum")


def generate_captions(model: VideoBLIP2, videos: VideoDataset, *, batch_size: int = 32, precision: str = "auto",
                      num_beams: int = 1, positions: Sequence[int] | np.ndarray | None = None) -> dict[str, str]:
    """{video_id: caption} for `videos` (or its `positions`), greedy by default, in eval mode."""
    use_bf16 = uses_bf16(model.device, precision)
    return predict_captions(model, videos, batch_size=batch_size, num_beams=num_beams, progress=False,
                            indices=positions, autocast_dtype=torch.bfloat16 if use_bf16 else None)


class Validator:
    """Validation loss (teacher-forced, every (video, caption) pair) and greedy-decoding CIDEr-D.

    The CIDEr-D is eval.cider.CiderD with document frequencies over the *validation* references (fast, no
    Java; close to pycocoevalcap's Cider on the same split, which also takes its df from the references
    scored). Final numbers come from `python -m eval.evaluate`. With several processes each one takes every
    world_size-th video / pair and the results are gathered.
    """

    def __init__(self, model: VideoBLIP2, store: FeatureStore, annotations: Mapping[str, Sequence[str]],
                 dist: DistInfo, batch_size: int, precision: str):
        from eval.cider import CiderD

        self.dist = dist
        self.batch_size = batch_size
        self.precision = precision
        refs = {v: list(annotations[v]) for v in store.video_ids}
        self.pairs = CaptionDataset(store, refs, model.t5_tokenizer, model.config.max_caption_len)
        self.videos = VideoDataset(store)
        self.refs = refs
        self.cider = CiderD(refs)

    @torch.no_grad()
    def __call__(self, model: VideoBLIP2) -> dict[str, Any]:
        dist, was_training = self.dist, model.training
        model.eval()
        loss_sum, tokens = 0.0, 0.0
        pair_idx = np.arange(dist.rank, len(self.pairs), dist.world_size)
        for start in range(0, len(pair_idx), self.batch_size):
            batch = self.pairs.batch(pair_idx[start: start + self.batch_size])
            with autocast(model.device, self.precision):
                logits = model(**_model_inputs(batch), labels=batch["labels"], return_loss=False).logits
            loss_sum += caption_loss_sum(logits, batch["labels"]).item()
            tokens += float((batch["labels"] != IGNORE_INDEX).sum())
        captions = generate_captions(model, self.videos, batch_size=self.batch_size, precision=self.precision,
                                     positions=np.arange(dist.rank, len(self.videos), dist.world_size))
        loss_sum, tokens = all_reduce_sum(np.array([loss_sum, tokens]), dist)
        if dist.distributed:
            for part in all_gather_objects(captions, dist):
                captions.update(part)
        ids = self.videos.video_ids
        scores = self.cider.score([captions[v] for v in ids], ids)
        model.train(was_training)
        return {
            "val_loss": float(loss_sum / max(tokens, 1.0)),
            "val_cider": float(scores.mean()),
            "val_videos": len(ids),
            "examples": [{"video_id": v, "caption": captions[v], "reference": self.refs[v][0]} for v in ids[:3]],
        }


# ============================================================================ the training loop


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


@dataclasses.dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # global batches of `epoch` already consumed
    best_cider: float = -math.inf
    best_step: int = -1


class Trainer:
    """Epochs of seeded permutations -> global batches -> micro-batches; eval, checkpoints, resume, logs."""

    def __init__(self, args: argparse.Namespace, task: Task, model: VideoBLIP2, dist: DistInfo,
                 validator: Validator | None, out: Path, resumed: "ResumeState | None" = None,
                 extra_info: Mapping[str, Any] | None = None):
        self.args, self.task, self.model, self.dist, self.validator, self.out = args, task, model, dist, validator, out
        self.global_batch = args.batch_size * args.grad_accum * dist.world_size
        self.steps_per_epoch = task.num_items // self.global_batch
        if self.steps_per_epoch == 0:
            raise TrainingError(f"{task.num_items} training {task.unit} do not fill one global batch of "
                                f"{self.global_batch} (batch-size {args.batch_size} x grad-accum {args.grad_accum} "
                                f"x {dist.world_size} processes): lower --batch-size")
        self.total_steps = args.max_steps if args.max_steps else args.epochs * self.steps_per_epoch
        warmup = args.warmup_steps if args.warmup_steps is not None else int(round(args.warmup_ratio * self.total_steps))
        self.warmup_steps = warmup
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(model, args, dist.device)
        self.scheduler = build_scheduler(self.optimizer, warmup, self.total_steps)
        self.progress = Progress()
        module = task.forward_module(model)
        if dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            module = DistributedDataParallel(module, device_ids=[dist.device.index] if dist.device.type == "cuda"
                                             else None)
        self.module = module
        self.log = JsonlLog(out / LOG_NAME, enabled=dist.is_main)
        self.extra_info = dict(extra_info or {})
        if resumed is not None:
            self._restore(resumed)

    # ------------------------------------------------------------------ resume
    def _restore(self, state: "ResumeState") -> None:
        saved = state.training["progress"]
        run = state.training["run"]
        mine = self._run_signature()
        for key in ("global_batch", "seed", "num_items", "task"):
            if run.get(key) != mine[key]:
                raise TrainingError(f"{self.out / STATE_DIR}: the saved run has {key}={run.get(key)!r}, this one "
                                    f"{mine[key]!r}; resume with the same settings or use --overwrite")
        self.optimizer.load_state_dict(state.training["optimizer"])
        self.scheduler.load_state_dict(state.training["scheduler"])
        if run.get("total_steps") != self.total_steps:
            _print(self.dist, f"warning: total steps changed from {run.get('total_steps')} to {self.total_steps}; "
                              "the learning-rate schedule keeps its saved position")
            self.scheduler = build_scheduler(self.optimizer, self.warmup_steps, self.total_steps)
            self.scheduler.last_epoch = saved["step"]
            lrs = [base * fn(saved["step"]) for base, fn in zip(self.scheduler.base_lrs, self.scheduler.lr_lambdas)]
            for group, lr in zip(self.optimizer.param_groups, lrs):
                group["lr"] = lr
            self.scheduler._last_lr = list(lrs)
        self.progress = Progress(**saved)
        rng = state.training["rng"]
        if len(rng) == self.dist.world_size:
            set_rng_state(rng[self.dist.rank])
        else:
            _print(self.dist, f"warning: the state has RNG states of {len(rng)} processes, this run has "
                              f"{self.dist.world_size}: random streams restart from rank 0's")
            set_rng_state(rng[0])
        self.log.truncate_after(self.progress.step)

    def _run_signature(self) -> dict[str, Any]:
        return {"task": self.task.name, "global_batch": self.global_batch, "seed": self.args.seed,
                "num_items": self.task.num_items, "total_steps": self.total_steps,
                "world_size": self.dist.world_size}

    # ------------------------------------------------------------------ saving
    def _info(self, val: Mapping[str, Any] | None) -> dict[str, Any]:
        p = self.progress
        return {"task": self.task.name, "step": p.step, "epoch": p.epoch, "validation": dict(val or {}),
                **self.extra_info}

    def save(self, val: Mapping[str, Any] | None) -> None:
        """last/ then state/ (each atomic); every rank contributes its RNG state."""
        rngs = all_gather_objects(rng_state(), self.dist)
        if self.dist.is_main:
            def write_model(path: Path) -> None:
                self.model.save_pretrained(path)
                _write_json(path / INFO_FILE, self._info(val))

            atomic_write_dir(self.out / "last", write_model)

            def write_state(path: Path) -> None:
                write_model(path / "model")
                torch.save({
                    "progress": dataclasses.asdict(self.progress),
                    "run": self._run_signature(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "rng": rngs,
                    "args": vars(self.args),
                }, path / STATE_FILE)
                progress = dataclasses.asdict(self.progress)
                if not math.isfinite(progress["best_cider"]):
                    progress["best_cider"] = None
                _write_json(path / PROGRESS_FILE, {**progress, **self._run_signature()})

            atomic_write_dir(self.out / STATE_DIR, write_state)
            self.log.write({"type": "save", "step": self.progress.step, "epoch": self.progress.epoch,
                            "dirs": ["last", STATE_DIR]})
        barrier(self.dist)

    def save_best(self, val: Mapping[str, Any]) -> None:
        if self.dist.is_main:
            def write(path: Path) -> None:
                self.model.save_pretrained(path)
                _write_json(path / INFO_FILE, self._info(val))

            atomic_write_dir(self.out / "best", write)
            self.log.write({"type": "save", "step": self.progress.step, "epoch": self.progress.epoch,
                            "dirs": ["best"], "val_cider": val["val_cider"]})
        barrier(self.dist)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, Any] | None:
        if self.validator is None:
            return None
        start = time.perf_counter()
        val = self.validator(self.model)
        p = self.progress
        record = {"type": "val", "step": p.step, "epoch": p.epoch, **val,
                  "cider_df": "validation references", "seconds": round(time.perf_counter() - start, 3)}
        self.log.write(record)
        if self.dist.is_main:
            from tqdm.auto import tqdm

            tqdm.write(f"[step {p.step}] val loss {val['val_loss']:.4f}  val CIDEr-D {val['val_cider']:.4f}  "
                       f"e.g. {val['examples'][0]['video_id']}: {val['examples'][0]['caption']!r}")
        if val["val_cider"] > p.best_cider:
            p.best_cider, p.best_step = val["val_cider"], p.step
            self.save_best(val)
        return val

    # ------------------------------------------------------------------ training
    def fit(self) -> dict[str, Any]:
        from tqdm.auto import tqdm

        args, dist, task, p = self.args, self.dist, self.task, self.progress
        resumed = p.step > 0
        self.log.write({"type": "start", "step": p.step, "epoch": p.epoch, "resumed": resumed, "task": task.name,
                        "world_size": dist.world_size, "device": str(dist.device), "num_items": task.num_items,
                        "unit": task.unit, "global_batch": self.global_batch,
                        "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
                        "warmup_steps": self.warmup_steps, "args": vars(args)})
        _print(dist, f"{task.name}: {task.num_items} {task.unit}, global batch {self.global_batch}, "
                     f"{self.steps_per_epoch} steps/epoch, {self.total_steps} steps, {dist.world_size} process(es) "
                     f"on {dist.device}" + (f"; resuming at step {p.step}" if resumed else ""))
        last_val = None
        if args.eval_first and not resumed:
            last_val = self.evaluate()
        if p.step >= self.total_steps:
            _print(dist, f"{self.out}: already trained for {p.step} steps; nothing to do")
        bar = tqdm(total=self.total_steps, initial=p.step, disable=args.no_progress or not dist.is_main,
                   desc=task.name, unit="step", dynamic_ncols=True)
        per_rank = args.batch_size * args.grad_accum
        while p.step < self.total_steps:
            if p.batch_in_epoch >= self.steps_per_epoch:
                p.epoch, p.batch_in_epoch = p.epoch + 1, 0
            order = np.random.default_rng([args.seed, p.epoch]).permutation(task.num_items)
            while p.batch_in_epoch < self.steps_per_epoch and p.step < self.total_steps:
                b = p.batch_in_epoch
                tick = time.perf_counter()
                global_indices = order[b * self.global_batch: (b + 1) * self.global_batch]
                local = global_indices[dist.rank * per_rank: (dist.rank + 1) * per_rank]
                scale = dist.world_size / task.normalizer(global_indices)
                sums: dict[str, list[float]] = {}
                self.optimizer.zero_grad(set_to_none=True)
                for m in range(args.grad_accum):
                    micro = local[m * args.batch_size: (m + 1) * args.batch_size]
                    sync = (m == args.grad_accum - 1) or not dist.distributed
                    with contextlib.nullcontext() if sync else self.module.no_sync():
                        with autocast(dist.device, args.precision):
                            out = task.micro_step(self.module, self.model, micro)
                        (out.loss_sum * scale).backward()
                    for key, (value, weight) in out.metrics.items():
                        acc = sums.setdefault(key, [0.0, 0.0])
                        acc[0] += value
                        acc[1] += weight
                grad_norm = (torch.nn.utils.clip_grad_norm_(self.params, args.max_grad_norm)
                             if args.max_grad_norm > 0 else _grad_norm(self.params))
                lr = self.scheduler.get_last_lr()[0]
                self.optimizer.step()
                self.scheduler.step()
                p.step += 1
                p.batch_in_epoch += 1
                rate = self.global_batch / max(time.perf_counter() - tick, 1e-9)
                end_of_epoch = p.batch_in_epoch == self.steps_per_epoch
                final = p.step == self.total_steps
                if p.step % args.log_every == 0 or p.step == 1 or final:
                    keys = sorted(sums)
                    reduced = all_reduce_sum(np.array([v for k in keys for v in sums[k]]), dist)
                    metrics = {k: float(reduced[2 * i] / reduced[2 * i + 1]) if reduced[2 * i + 1] else float("nan")
                               for i, k in enumerate(keys)}
                    metrics = task.finalize_metrics(metrics)
                    record = {"type": "train", "step": p.step, "epoch": p.epoch, **metrics, "lr": lr,
                              "grad_norm": float(grad_norm), f"{task.unit}_per_s": round(rate, 2)}
                    self.log.write(record)
                    bar.set_postfix(loss=f"{metrics.get('loss', float('nan')):.4f}", lr=f"{lr:.2e}",
                                    **{f"{task.unit}/s": f"{rate:.1f}"})
                bar.update(1)
                val = None
                if (args.eval_every and p.step % args.eval_every == 0) or end_of_epoch or final:
                    val = last_val = self.evaluate()
                if (args.save_every and p.step % args.save_every == 0) or end_of_epoch or final:
                    self.save(val if val is not None else last_val)
                if (end_of_epoch or final) and dist.is_main:
                    plot_log(self.out / LOG_NAME, self.out / PLOT_NAME, task.plot_keys)
        bar.close()
        summary = {"out": str(self.out), "step": p.step, "epoch": p.epoch, "best_val_cider": p.best_cider,
                   "best_step": p.best_step, "last_validation": last_val}
        _print(dist, f"done: step {p.step}, best val CIDEr-D {p.best_cider:.4f} at step {p.best_step}; "
                     f"models in {self.out / 'best'} and {self.out / 'last'}")
        return summary


def _grad_norm(params: Sequence[nn.Parameter]) -> torch.Tensor:
    norms = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return torch.stack(norms).norm() if norms else torch.tensor(0.0)


# ============================================================================ run setup


@dataclasses.dataclass
class ResumeState:
    model_dir: Path
    training: dict[str, Any]


def prepare_output(args: argparse.Namespace, dist: DistInfo) -> tuple[Path, ResumeState | None]:
    """Create OUT, clean up interrupted writes, and find the state to resume from (None: fresh start)."""
    out = Path(args.out)
    if args.overwrite and dist.is_main and out.exists():
        for name in ("last", "best", STATE_DIR, TINY_INIT_DIR, LOG_NAME, PLOT_NAME):
            target = out / name
            for path in (target, *_siblings(target)):
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
    barrier(dist)
    out.mkdir(parents=True, exist_ok=True)
    if dist.is_main:
        for name in ("last", "best", STATE_DIR):
            recover_dir(out / name)
    barrier(dist)
    state_dir = out / STATE_DIR
    if not (state_dir / STATE_FILE).is_file():
        if args.resume:
            raise TrainingError(f"--resume: {state_dir / STATE_FILE} does not exist; nothing to resume from")
        return out, None
    training = torch.load(state_dir / STATE_FILE, map_location="cpu", weights_only=False)
    return out, ResumeState(model_dir=state_dir / "model", training=training)


def load_resumed_model(resume: ResumeState, args: argparse.Namespace, dist: DistInfo) -> VideoBLIP2:
    _print(dist, f"resuming from {resume.model_dir.parent} (step {resume.training['progress']['step']}); "
                 "the model comes from the state, model flags are ignored")
    return VideoBLIP2.from_pretrained(resume.model_dir)


def start(args: argparse.Namespace) -> DistInfo:
    """Threads, distributed setup, seeds (rank-dependent torch stream so samples differ across processes)."""
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    dist = setup_distributed(args.device)
    set_seed(args.seed + dist.rank)
    if args.val_batch_size is None:
        args.val_batch_size = 2 * args.batch_size
    for name in ("batch_size", "grad_accum", "log_every", "val_batch_size"):
        if getattr(args, name) < 1:
            raise TrainingError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    return dist


def run(body: Callable[[argparse.Namespace, DistInfo], dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """`body(args, dist)` between distributed setup and teardown."""
    dist = start(args)
    try:
        return body(args, dist)
    finally:
        cleanup_distributed()


def cli(main: Callable[[], Any]) -> None:
    """`python -m` entry: errors that speak to the user (bad files, flags, states) print one line, exit 2."""
    from videoblip2.config import ConfigError
    from videoblip2.data import DataError, FeatureError
    from videoblip2.modeling import CheckpointError

    try:
        main()
    except (TrainingError, AnnotationError, FeatureError, DataError, ConfigError, CheckpointError,
            FileNotFoundError) as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
