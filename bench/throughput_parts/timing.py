"""Timing and memory helpers of bench/throughput.py: threads, synchronisation, stopwatches, peak memory, autocast."""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with `threads` torch CPU threads (None: leave torch's number), and restore the number after."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Accumulates device-synchronised wall time per named part."""

    def __init__(self, device: torch.device, enabled: bool = True):
        self.device = device
        self.enabled = enabled  # False: no synchronisation and no timing (a step timed as a whole)
        self.parts: dict[str, float] = {}

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - start


@contextlib.contextmanager
def timed_method(obj: Any, name: str, watch: Stopwatch, part: str) -> Iterator[None]:
    """Time every call of obj.name (an instance attribute shadows the method for the duration)."""
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        with watch.part(part):
            return original(*args, **kwargs)

    object.__setattr__(obj, name, wrapper)
    try:
        yield
    finally:
        object.__delattr__(obj, name)


def rss_bytes() -> tuple[int, int]:
    """(current, peak) resident set size of this process, from /proc (peak resettable), else getrusage."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return peak, peak


class PeakMemory:
    """Peak memory of a phase: torch.cuda.max_memory_allocated on CUDA, peak RSS on CPU (reset where possible)."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        else:
            with contextlib.suppress(OSError):
                Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.start = rss_bytes()[0]
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self.peak = rss_bytes()[1]

    def result(self) -> dict[str, float]:
        return {"peak_memory_gb": self.peak / 2**30, "memory_at_start_gb": self.start / 2**30,
                "peak_over_start_gb": (self.peak - self.start) / 2**30}


def amp_factory(device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    if device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def tqdm_range(n: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(range(n), desc=desc, leave=False, disable=n < 3 or not sys.stderr.isatty())
