"""Training data: annotation splits for training and validation, and the preloaded feature stores."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from train.distributed import DistInfo
from train.errors import TrainingError
from train.logger import print_main
from videoblip2.annotations import has_splits, load_annotations
from videoblip2.config import VideoBLIP2Config
from videoblip2.data import FeatureStore


def load_split(path: str | os.PathLike, split: str, format: str = "auto") -> dict[str, list[str]]:
    """The `split` of a file with splits (official MSR-VTT, MSVD + mapping, VALOR/VATEX folder), or every
    video of a file without (``videoblip2.annotations.has_splits``)."""
    return load_annotations(path, split if has_splits(path, format) else None, format)


def load_train_val(args: argparse.Namespace) -> tuple[dict[str, list[str]], dict[str, list[str]] | None]:
    """(training annotations, validation annotations or None) from --ann / --val-ann."""
    fmt = args.ann_format
    train = load_split(args.ann, args.train_split, fmt)
    if args.val_ann:
        val = load_split(args.val_ann, args.val_split, fmt)
    elif has_splits(args.ann, fmt):
        val = load_annotations(args.ann, args.val_split, fmt)
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
        print_main(dist, f"{root}: skipped {len(store.skipped)} videos with bad features, e.g. {store.skipped[0][1]}")
    if not len(store):
        raise TrainingError(f"{root}: no usable videos")
    return store.to(dist.device if not args.features_on_cpu else "cpu")
