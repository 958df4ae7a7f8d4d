"""CLIP frame features: ``python -m features.video VIDEOS... --out FEATURES``.

Writes ``FEATURES/video/{video_id}.npy`` float16 ``[T, D]`` (T = --num-frames sampled uniformly, D = 768 for
ViT-L-14's image embedding), records the settings in ``FEATURES/meta.json["video"]``, logs unreadable
videos to ``FEATURES/failures.jsonl`` and exits non-zero if any failed. Re-running skips finished videos.

    python -m features.video data/msrvtt/videos --out data/features \\
        --clip-model ViT-L-14 --clip-pretrained /models/ViT-L-14-openai.safetensors --quick-gelu
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .args import add_common_arguments
from videoblip2.cli import ArgumentParser, add_renamed_flag, positive_float, positive_int
from videoblip2.defaults import CLIP_LAYERS, DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, DEFAULT_NUM_FRAMES

if TYPE_CHECKING:  # the model stack loads after the arguments are parsed (`--help` answers at once)
    from .common import RunSummary, VideoItem
    from videoblip2.extract import ClipFrameEncoder


# meta.json["video"] keys that must agree before new features join existing ones
CHECKED_KEYS = ("model", "pretrained", "weights_sha256", "layer", "num_frames", "fps", "dim", "dtype", "quick_gelu")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m features.video", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_common_arguments(parser, batch_size=256, batch_unit="frames")
    model = parser.add_argument_group("model")
    model.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL,
                       help="open_clip architecture, or a model-config .json file")
    model.add_argument("--clip-pretrained", default=DEFAULT_CLIP_PRETRAINED,
                       help="open_clip tag (needs the network) or local checkpoint file; 'none' = random weights")
    add_renamed_flag(model, "--model", "--clip-model", "clip_model")
    add_renamed_flag(model, "--pretrained", "--clip-pretrained", "clip_pretrained")
    model.add_argument("--quick-gelu", action="store_true",
                       help="QuickGELU activations: needed for OpenAI weights given as a local file")
    model.add_argument("--layer", choices=CLIP_LAYERS, default="embed",
                       help="embed: image embedding (768 for ViT-L-14); pooled: pooled ViT output before the projection")
    model.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                       help="auto: bf16 (else fp16) on a GPU, fp32 on the CPU")
    frames = parser.add_argument_group("frames")
    frames.add_argument("--num-frames", type=positive_int, default=DEFAULT_NUM_FRAMES,
                        help="frames per video, sampled uniformly (middle frame of equal segments)")
    frames.add_argument("--fps", type=positive_float, help="sample at this rate instead (at most --num-frames frames)")
    return parser.parse_args(argv)


class DecodeFrames:
    """Worker-side job: sampled frames of one video, resized and cropped by CLIP's PIL steps, as uint8."""

    def __init__(self, num_frames: int, fps: float | None, prepare: Callable, threads: int = 0):
        self.num_frames, self.fps, self.prepare, self.threads = num_frames, fps, prepare, threads

    def __call__(self, item: VideoItem) -> dict[str, Any]:
        import torch

        from videoblip2.extract import decode_frames, segment_in_video

        segment, cut = segment_in_video(item.path, item.segment) if item.segment else (None, None)
        info: dict[str, Any] = {}
        frames = decode_frames(item.path, self.num_frames, fps=self.fps, transform=self.prepare,
                               threads=self.threads, segment=segment, info=info)
        return {"frames": torch.from_numpy(frames), "orientation": info["orientation"],  # (T, S, S, 3) uint8
                **({"cut_short": cut} if cut else {})}


def pretrained_label(pretrained: str | None) -> str:
    """What meta.json records: the tag, or a checkpoint's file name (folders may move between machines)."""
    if not pretrained or pretrained.lower() == "none":
        return "none"
    return os.path.basename(pretrained) if os.path.isfile(pretrained) else pretrained


def run(args: argparse.Namespace, encoder: ClipFrameEncoder | None = None) -> RunSummary:
    """The extraction behind :func:`main`; ``encoder`` reuses a loaded model (benchmarks).

    Raises:
        InputError, ExtractorModelError, MetaMismatchError: nothing was extracted.
    """
    import torch

    from .common import (
        RunSummary,
        check_settings,
        feature_writer,
        plan_shard,
        run_extraction,
        update_meta,
        weights_fingerprint,
    )
    from videoblip2.extract import load_clip

    from videoblip2.sources import check_clip_source

    # a missing or offline-only weights source: one line, before the videos are listed
    check_clip_source(args.clip_model, args.clip_pretrained)
    plan = plan_shard(args, "video", [".npy"])
    out, folder, items, done, pending, skipped, failures = (
        plan.out, plan.folder, plan.items, plan.done, plan.pending, plan.skipped, plan.failures)
    settings = {
        "model": args.clip_model if not args.clip_model.endswith(".json") else Path(args.clip_model).stem,
        "pretrained": pretrained_label(args.clip_pretrained),
        "weights_sha256": weights_fingerprint(args.clip_pretrained),  # the content: file names are all alike
        "quick_gelu": bool(args.quick_gelu or (args.clip_pretrained or "").lower() == "openai"),
        "layer": args.layer,
        "num_frames": args.num_frames,
        "fps": args.fps,
    }
    if not pending:  # nothing to extract, but other settings than the folder's are still refused
        if done:
            check_settings(out, "video", settings, CHECKED_KEYS)
        return RunSummary(total=len(items), skipped=skipped, failures=failures.path)

    if encoder is None:
        encoder = load_clip(args.clip_model, args.clip_pretrained, layer=args.layer, device=args.device,
                            precision=args.precision, quick_gelu=args.quick_gelu)
    entry = {
        **settings,
        "sampling": "uniform: middle frame of num_frames equal segments (videoblip2.extract.sample_frame_indices)",
        "trim": args.trim,
        "image_size": list(encoder.image_size),
        "dim": encoder.dim,
        "dtype": "float16",
        **encoder.describe(),  # normalization, preprocessing, precision
    }
    update_meta(out, "video", entry, CHECKED_KEYS, has_features=bool(done))

    write = feature_writer(folder, "CLIP")

    summary = run_extraction(
        items=pending,
        # the cores are shared between the workers: FFmpeg threads per worker = cores / workers
        decode=DecodeFrames(args.num_frames, args.fps, encoder.prepare,
                            threads=max(1, (os.cpu_count() or 1) // args.workers) if args.workers > 0 else 0),
        rows_of=lambda decoded: decoded["frames"],
        encode=encoder.encode,
        collate=torch.cat,
        batch_size=args.batch_size,
        workers=args.workers,
        device=encoder.device,
        write=write,
        failures=failures,
        desc="video features",
    )
    summary.total, summary.skipped = len(items), skipped
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from .common import cli_main

    return cli_main(run, args, "video")


if __name__ == "__main__":
    sys.exit(main())
