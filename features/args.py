"""The extractors' shared command-line flags. Imports nothing heavy, so ``--help`` and argument errors answer
before torch loads (the work itself is in ``features.common``)."""

from __future__ import annotations

import argparse
import os

from videoblip2.annotations import add_ann_format_argument, add_qa_mapping_argument
from videoblip2.cli import non_negative_int, positive_int

TRIM_MODES = ("name", "ann")


def add_common_arguments(parser: argparse.ArgumentParser, batch_size: int, batch_unit: str) -> None:
    io = parser.add_argument_group("input / output")
    io.add_argument("inputs", nargs="+",
                    help="video files, folders, list files (.txt, one path per line) or an annotation .json")
    io.add_argument("--out", required=True, help="features folder (FEATURES); writes FEATURES/<kind>/{id}.npy")
    io.add_argument("--video-dir", help="folder of the videos named in an annotation input")
    io.add_argument("--split", help="split of an annotation input with splits (train / validate / test)")
    add_ann_format_argument(io)
    add_qa_mapping_argument(io)
    io.add_argument("--trim", choices=TRIM_MODES, default=None,
                    help="the annotated clips are segments of full videos {video-dir}/{youtube_id}.*: take each "
                         "clip's frames/audio from its segment only, the times parsed from the clip name "
                         "{youtube_id}_{start}_{end} in seconds (name: VATEX, MSVD) or read from the annotation "
                         "(ann: MSR-VTT's 'start time'/'end time', MSVD's corpus CSV Start/End)")
    io.add_argument("--failures", help="failure log (default: OUT/failures.jsonl)")  # videoblip2.data.FAILURES_NAME
    run = parser.add_argument_group("run")
    run.add_argument("--shard", default="0/1", help="i/N: process every N-th video from the i-th (0-based)")
    run.add_argument("--workers", type=non_negative_int, default=min(8, os.cpu_count() or 1),
                     help="decoding worker processes (0: decode in the main process)")
    run.add_argument("--batch-size", type=positive_int, default=batch_size, help=f"{batch_unit} per model batch")
    run.add_argument("--device", default="auto", help="cuda, cpu or auto")
    run.add_argument("--limit", type=positive_int, help="process at most this many (unfinished) videos")
