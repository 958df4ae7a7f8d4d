"""Training data: caption and QA annotations for training and validation, and the preloaded feature stores."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from train.distributed import DistInfo
from train.errors import TrainingError
from train.logger import print_main
from videoblip2.annotations import QAItem, has_splits, load_annotations, load_qa_annotations
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


def load_qa_train_val(args: argparse.Namespace) -> tuple[list[QAItem], list[QAItem] | None]:
    """(training questions, validation questions or None) from --qa-ann / --qa-val-ann; [] without --qa-ann."""
    if not args.qa_ann:
        return [], None
    train = load_qa_annotations(args.qa_ann, video_map=args.qa_mapping)
    if train[0].answer is None:
        raise TrainingError(f"{args.qa_ann}: the questions have no answers to train on")
    val = load_qa_annotations(args.qa_val_ann, video_map=args.qa_mapping) if args.qa_val_ann else None
    if val is not None:
        if val[0].answer is None:
            raise TrainingError(f"{args.qa_val_ann}: the validation questions have no answers to score against")
        if args.val_videos is not None:
            keep = list(dict.fromkeys(item.video_id for item in val))[: args.val_videos]
            val = [item for item in val if item.video_id in set(keep)]
        overlap = {item.video_id for item in train} & {item.video_id for item in val}
        if overlap:
            raise TrainingError(f"{len(overlap)} videos have questions in both {args.qa_ann} and {args.qa_val_ann}, "
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
