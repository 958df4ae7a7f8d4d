"""Process start and end for the `python -m train.*` entry points: threads, distributed setup, seeds, and
the one-line errors (exit 2) for user mistakes."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Callable

from typing import TYPE_CHECKING

from train.errors import TrainingError
from videoblip2.cli import cli as library_cli

if TYPE_CHECKING:  # torch loads in `start`, after the arguments are parsed (`--help` answers at once)
    from train.distributed import DistInfo


def start(args: argparse.Namespace) -> DistInfo:
    """Threads, distributed setup, seeds (rank-dependent torch stream so samples differ across processes)."""
    import torch

    from train.distributed import setup_distributed
    from train.rng import set_seed

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
    from train.distributed import cleanup_distributed

    out = Path(args.out)
    fresh = not out.exists()
    dist = start(args)
    try:
        return body(args, dist)
    except BaseException:
        if fresh and dist.is_main:
            remove_empty_dirs(out)  # a run that failed before writing anything leaves no empty --out behind
        raise
    finally:
        cleanup_distributed()


def remove_empty_dirs(folder: Path) -> None:
    """Remove ``folder`` if it holds nothing but empty folders (best effort)."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True) + [folder]:
        if path.is_dir():
            try:
                path.rmdir()  # only succeeds on an empty folder
            except OSError:
                return


def cli(main: Callable[[], Any]) -> None:
    """`python -m` entry: errors that speak to the user (bad files, flags, states) print one line, exit 2."""
    library_cli(main, extra=(TrainingError,))
