"""Real faults for tests: a tiny tmpfs (a full disk) and a read-only bind mount, where the test runs as root and
may mount; else the test is skipped and the monkeypatched twins (`enospc_on_fsync`, `eacces_on_open`) carry
the same check on every machine."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


def _mount(*args: str) -> bool:
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "64k") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path``: a disk that fills up for real (ENOSPC from write(2))."""
    path.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)):
        pytest.skip("needs root and mount(8) for a real tmpfs; the monkeypatched ENOSPC test covers this")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """``path`` re-mounted read-only onto itself: EROFS even for root (chmod does not stop root)."""
    if not (_mount("--bind", str(path), str(path)) and _mount("-o", "remount,bind,ro", str(path))):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
        pytest.skip("needs root and mount(8) for a read-only bind mount")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last byte."""
    with open(folder / "ballast", "wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 4096)


def enospc_on_fsync(monkeypatch: pytest.MonkeyPatch, only: str | None = None) -> None:
    """os.fsync raises ENOSPC (for files whose name contains ``only``, else all): what a full disk gives with
    delayed allocation (ext4, XFS, NFS report it at fsync/close, after every write() succeeded)."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if only is None or only in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
