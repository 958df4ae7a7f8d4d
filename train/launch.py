"""Process start and end for the `python -m train.*` entry points: threads, distributed setup, seeds, and
the one-line errors (exit 2) for user mistakes."""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable

import torch

from train.distributed import DistInfo, cleanup_distributed, setup_distributed
from train.errors import TrainingError
from train.rng import set_seed
from videoblip2.cli import cli as library_cli


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
    library_cli(main, extra=(TrainingError,))
