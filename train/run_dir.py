"""The output directory of a run: its layout, finding a saved model in it, and what a fresh or resumed start finds there.

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
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from train.distributed import DistInfo, barrier
from train.errors import TrainingError
from train.file_utils import dir_siblings, recover_dir
from videoblip2.modeling import CONFIG_NAME

LOG_NAME = "log.jsonl"
PLOT_NAME = "log.png"
STATE_DIR = "state"
STATE_FILE = "training_state.pt"
PROGRESS_FILE = "progress.json"
INFO_FILE = "trainer_info.json"
TINY_INIT_DIR = ".tiny_init"


def resolve_model_dir(path: str | os.PathLike, checkpoint: str = "best") -> Path:
    """A save_pretrained directory as given, or `checkpoint` (then the other one) of a training output directory."""
    path = Path(path)
    if (path / CONFIG_NAME).is_file():
        return path
    order = (checkpoint, "last" if checkpoint == "best" else "best")
    for name in order:
        # Read-only: that run may still be writing. `.NAME.old` is the complete previous version while a
        # swap is between its two renames.
        for candidate in (path / name, dir_siblings(path / name)[1]):
            if (candidate / CONFIG_NAME).is_file():
                return candidate
    raise TrainingError(f"{path}: neither a VideoBLIP2 model directory (no {CONFIG_NAME}) nor a training output "
                        f"directory with {order[0]}/ or {order[1]}/")


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
            for path in (target, *dir_siblings(target)):
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
