"""Atomic single-file writes: a temporary sibling, flushed and fsynced, then renamed over the target.

A reader (or a later run) sees the old file or the new one, never half of one: a full disk, a kill or a
crash while writing leaves the target as it was and removes the temporary file (a killed process leaves
``.NAME.HOST.PID.tmp``; `stale_temp_files` finds those of dead processes).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterator

TMP_SUFFIX = ".tmp"


class DiskFullError(OSError):
    """A write stopped because the disk (or quota) is full; the message names the folder."""


NAME_MAX = 255  # bytes of one file name (ext4, XFS, btrfs, APFS; NTFS: 255 UTF-16 units, never fewer bytes)


def temp_sibling(path: str | os.PathLike) -> Path:
    """``.NAME.HOST.PID.tmp`` next to ``path``: hidden, and unique per machine and process, so shards on
    several machines may share one folder (the same file system, so the rename is atomic). A NAME too long
    for that (a 242-byte video id + ``.noaudio.json``) is replaced by its SHA-256 prefix."""
    path = Path(path)
    tail = f".{socket.gethostname()}.{os.getpid()}{TMP_SUFFIX}"
    name = path.name
    if len(os.fsencode(f".{name}{tail}")) > NAME_MAX:
        name = hashlib.sha256(os.fsencode(name)).hexdigest()[:32]
    return path.with_name(f".{name}{tail}")


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _no_space_left(folder: Path) -> bool:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < (64 << 10)


def _disk_full(error: OSError, path: Path) -> OSError:
    # numpy's tofile reports a short write as a bare OSError("6144 requested and 6080 written"), no errno
    if error.errno in (errno.ENOSPC, errno.EDQUOT) or (error.errno is None and _no_space_left(path.parent)):
        code = error.errno or errno.ENOSPC
        full = DiskFullError(code, f"disk full ({os.strerror(code)}): cannot write {path.name} in "
                                          f"{path.parent.resolve()} (the previous {path.name}, if any, is untouched)")
        full.filename = str(path)
        return full
    return error


def as_disk_full(error: BaseException, path: str | os.PathLike) -> BaseException:
    """``error`` as a :class:`DiskFullError` naming the folder when it is what a full disk gives, else ``error``.

    Writers report a full disk in three ways: ``OSError`` ENOSPC/EDQUOT; a short write without an errno
    (numpy); and ``torch.save``'s ``RuntimeError: [enforce fail at inline_container.cc:...] ... unexpected
    pos`` / ``file write failed`` from its zip writer, which carries no errno at all (then the folder's free
    space decides)."""
    if isinstance(error, DiskFullError):
        return error
    path = Path(path)
    if isinstance(error, OSError):
        return _disk_full(error, path)
    folder = path if path.is_dir() else path.parent
    if isinstance(error, RuntimeError) and "inline_container" in str(error) and _no_space_left(folder):
        full = DiskFullError(errno.ENOSPC, f"disk full ({os.strerror(errno.ENOSPC)}): cannot write {path.name} in "
                                           f"{folder.resolve()}")
        full.filename = str(path)
        return full
    return error


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """``with atomic_target(path) as tmp: fig.savefig(tmp)``: for writers that take a file name. Whatever is
    written to ``tmp`` is fsynced and renamed over ``path`` when the block ends without an error; on any error
    (a full disk: ``DiskFullError`` naming the folder) ``tmp`` is removed and ``path`` is untouched."""
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as error:
        raise _disk_full(error, path) from error
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """``with atomic_open(path, "wb") as f: np.save(f, a)``: write to a temporary sibling, then replace ``path``
    (see `atomic_target`)."""
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_target(path) as tmp:
        with open(tmp, mode, **open_kwargs) as handle:
            yield handle


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``text`` atomically (see `atomic_open`)."""
    with atomic_open(path, "w", encoding=encoding) as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 1, sort_keys: bool = False,
                      default: Callable[[Any], Any] | None = None, ensure_ascii: bool = True) -> None:
    """``json.dumps(obj)`` + newline written atomically. The text is built first, so an object that cannot be
    serialised raises before anything is written."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default, ensure_ascii=ensure_ascii)
    atomic_write_text(path, text + "\n")


def check_writable_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """Up-front check that a file can be written at ``path`` (before hours of work): the folder exists or can be
    made, is a folder and is writable, and ``path`` is not a folder. Raises ``OSError`` subclasses with a
    one-line message (``IsADirectoryError``, ``NotADirectoryError``, ``PermissionError``)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path}: is a folder, expected a file name")
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{what} {path}: {folder} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PermissionError(f"{what} {path}: cannot create the folder {folder} ({error.strerror})") from None
    check_writable_dir(folder, what=f"{what} {path}")
    return path


def check_writable_dir(folder: str | os.PathLike, what: str = "") -> Path:
    """Creates and removes a probe file in ``folder``: the honest test (``os.access`` is wrong for root on a
    read-only mount). Raises ``PermissionError`` naming the folder."""
    folder = Path(folder)
    probe = temp_sibling(folder / ".write-probe")
    try:
        with open(probe, "w"):
            pass
    except OSError as error:
        prefix = f"{what}: " if what else ""
        raise PermissionError(f"{prefix}cannot write in {folder} ({error.strerror or error})") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
    return folder


def stale_temp_files(folder: str | os.PathLike, max_age_s: float = 24 * 3600) -> list[Path]:
    """Temporary files ``.NAME.HOST.PID.tmp`` in ``folder`` left by a killed writer: from this machine with a
    process id that no longer runs, or from any machine and older than ``max_age_s`` (a live writer on another
    machine is never that slow on one file)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    host = socket.gethostname()
    stale = []
    now = time.time()
    for entry in os.scandir(folder):
        name = entry.name
        if not (name.startswith(".") and name.endswith(TMP_SUFFIX)) or not entry.is_file():
            continue
        head, _, pid = name[: -len(TMP_SUFFIX)].rpartition(".")
        if not pid.isdigit():
            continue
        if head.endswith(f".{host}") and int(pid) != os.getpid() and not _alive(int(pid)):
            stale.append(Path(entry.path))
        elif now - entry.stat().st_mtime > max_age_s:
            stale.append(Path(entry.path))
    return sorted(stale)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
