"""The run log (log.jsonl), its plot (log.png), and printing from the main process."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from .distributed import DistInfo
from .file_utils import json_default
from videoblip2.fileio import atomic_target, atomic_write_text


class JsonlLog:
    """Append-only JSON-lines log (rank 0 writes); `truncate_after(step)` drops records of a killed run's future."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path = path
        self.enabled = enabled

    def write(self, record: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(dict(record), default=json_default) + "\n")

    def records(self) -> list[dict[str, Any]]:
        return read_log(self.path)

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.exists():
            return
        kept = [r for r in read_log(self.path) if r.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))


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
              ("validation (greedy): CIDEr-D, QA accuracy", [(val, "val_cider", "val CIDEr-D"),
                                                              (val, "val_qa_accuracy", "val QA accuracy")])]
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
    try:
        with atomic_target(png_path) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)


def try_plot_log(log_path: str | os.PathLike, png_path: str | os.PathLike, extra_keys: Sequence[str] = ()) -> bool:
    """`plot_log`, best-effort: without matplotlib, warn and return False (the caller stops trying: one warning)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"warning: matplotlib is not installed: no {Path(png_path).name} (pip install matplotlib); "
              "log.jsonl has every number", flush=True)
        return False
    plot_log(log_path, png_path, extra_keys)
    return True


def print_main(dist: DistInfo, message: str) -> None:
    if dist.is_main:
        print(message, flush=True)
