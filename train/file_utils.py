"""Atomic writes: directories swapped in with renames, and JSON files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from videoblip2.fileio import as_disk_full, atomic_write_json


def dir_siblings(final: Path) -> tuple[Path, Path]:
    return final.with_name(f".{final.name}.tmp"), final.with_name(f".{final.name}.old")


def recover_dir(final: str | os.PathLike) -> None:
    """Finish or undo an interrupted `atomic_write_dir`: the previous complete version comes back if needed."""
    final = Path(final)
    tmp, old = dir_siblings(final)
    if not final.exists() and old.exists():
        os.replace(old, final)  # killed between the two renames: the old version is the complete one
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_dir(final: str | os.PathLike, write: Callable[[Path], Any]) -> None:
    """Write a directory with `write(tmp_dir)` next to `final`, then swap it in with two renames.

    If the process dies inside `write`, `final` is untouched; if it dies between the renames, `final` is
    missing and `recover_dir` restores the old version from `.NAME.old`. A full disk inside `write` (any
    writer, `torch.save` included) is a `DiskFullError` naming the folder; the partial copy is removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(final)
    tmp, old = dir_siblings(final)
    try:
        write(tmp)
    except (OSError, RuntimeError) as error:  # torch.save reports a full disk as a RuntimeError
        shutil.rmtree(tmp, ignore_errors=True)
        full = as_disk_full(error, final)
        if full is error:
            raise
        raise full from None
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def write_json(path: Path, obj: Any) -> None:
    """Atomic (temporary sibling + rename): a kill or a full disk leaves the previous version."""
    atomic_write_json(path, obj, default=json_default)


def json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
