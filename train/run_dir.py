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


from train.distributed import DistInfo, barrier
from train.errors import TrainingError
from train.file_utils import dir_siblings, recover_dir
from train.params import FIXED_ON_RESUME
from videoblip2.modeling import CONFIG_NAME
from videoblip2.safe_load import UnsafeCheckpointError, load_torch_file

LOG_NAME = "log.jsonl"
PLOT_NAME = "log.png"
STATE_DIR = "state"
STATE_FILE = "training_state.pt"
PROGRESS_FILE = "progress.json"
INFO_FILE = "trainer_info.json"
TINY_INIT_DIR = ".tiny_init"


def resolve_model_dir(path: str | os.PathLike, checkpoint: str = "best") -> Path:
    """A save_pretrained directory as given, `checkpoint` (then the other one) of a training output directory, or
    the cached snapshot of a Hugging Face Hub model id (videoblip2.hub.resolve: downloaded if needed)."""
    from videoblip2.hub import is_local, resolve

    if not is_local(path):
        return resolve(path)
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
        if dist.is_main:
            drop_unsaved_log(out)
        barrier(dist)
        return out, None
    try:  # tensors and plain data only (train/rng.py stores the RNG states so): no pickled code runs
        training = load_torch_file(state_dir / STATE_FILE)
    except UnsafeCheckpointError as error:
        raise TrainingError(str(error)) from None
    check_fixed_flags(training.get("args") or {}, args, state_dir / STATE_FILE)
    return out, ResumeState(model_dir=state_dir / "model", training=training)


def drop_unsaved_log(out: Path) -> None:
    """A fresh start finding log.jsonl: its records are from an attempt killed before its first save (a finished
    or saved run leaves state/). They are dropped, as a resume drops the records after its saved step, so the
    log and its plot hold one run."""
    log = out / LOG_NAME
    if log.exists():
        count = sum(1 for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip())
        print(f"{log}: dropping {count} records of an earlier attempt that stopped before its first save",
              flush=True)
        log.unlink()
        (out / PLOT_NAME).unlink(missing_ok=True)


def check_fixed_flags(saved: dict[str, Any], args: argparse.Namespace, state_file: Path) -> None:
    """On resume, a flag the saved state fixes (`train.params.FIXED_ON_RESUME`: optimizer hyperparameters, the
    model) must be unchanged: the saved optimizer and model would silently override the new value."""
    changed = []
    for name in FIXED_ON_RESUME:
        if name not in saved or not hasattr(args, name):
            continue
        old, new = saved[name], getattr(args, name)
        if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
            old, new = list(old), list(new)
        if old != new:
            changed.append(f"--{name.replace('_', '-')} {old!r} (saved) vs {new!r} (now)")
    if changed:
        raise TrainingError(f"{state_file}: resuming keeps the saved run's optimizer and model, so these changed flags "
                            f"would be ignored: {'; '.join(changed)}. Re-run with the saved values, or start a new "
                            "run with --overwrite or another --out")
