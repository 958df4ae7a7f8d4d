"""videoblip2.fileio: a full disk, a kill or an error while writing leaves the old file whole."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from faults import enospc_on_fsync, fill, read_only, small_tmpfs
from videoblip2.fileio import (
    DiskFullError,
    atomic_open,
    atomic_write_json,
    atomic_write_text,
    check_writable_dir,
    check_writable_file,
    stale_temp_files,
)


def test_round_trip_and_no_temp_left(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": [1, 2]})
    with atomic_open(tmp_path / "b.npy", "wb") as f:
        np.save(f, np.arange(3))
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": [1, 2]}
    assert np.load(tmp_path / "b.npy").tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.npy"]


def test_simulated_enospc_keeps_the_old_file(tmp_path, monkeypatch):
    # stands for a full disk reported at fsync (delayed allocation): the old predictions must survive
    target = tmp_path / "predictions.json"
    target.write_text('[{"video_id": "v1", "caption": "old"}]\n')
    enospc_on_fsync(monkeypatch)
    with pytest.raises(DiskFullError, match=f"disk full .*: cannot write predictions.json in {tmp_path}"):
        atomic_write_text(target, "[" + '{"video_id": "v1", "caption": "new"},' * 1000)
    assert target.read_text() == '[{"video_id": "v1", "caption": "old"}]\n'
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.json"]


def test_error_inside_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(ZeroDivisionError):
        with atomic_open(target) as f:
            f.write("half")
            1 / 0
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_unserialisable_json_writes_nothing(tmp_path):
    target = tmp_path / "m.json"
    target.write_text("{}\n")
    with pytest.raises(TypeError):
        atomic_write_json(target, {"a": object()})
    assert target.read_text() == "{}\n"


def test_real_full_tmpfs_keeps_the_old_file(tmp_path):
    with small_tmpfs(tmp_path / "disk", "64k") as disk:
        target = disk / "metrics.json"
        target.write_text('{"CIDEr": 0.5}\n')
        fill(disk)
        with pytest.raises(DiskFullError, match="disk full"):
            atomic_write_text(target, "x" * 200_000)
        assert target.read_text() == '{"CIDEr": 0.5}\n'
        assert sorted(p.name for p in disk.iterdir()) == ["ballast", "metrics.json"]


def test_checks_up_front(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_writable_file(tmp_path / "d")
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        check_writable_file(tmp_path / "f" / "out.json")
    assert check_writable_file(tmp_path / "new" / "out.json").parent.is_dir()
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        with pytest.raises(PermissionError, match=f"cannot write in {ro}"):
            check_writable_dir(ro)


def test_stale_temp_files_of_dead_processes_only(tmp_path):
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / f".v1.npy.{host}.{dead}.tmp").write_bytes(b"half")  # a killed extractor's
    (tmp_path / f".v2.npy.{host}.{os.getpid()}.tmp").write_bytes(b"")  # ours, in progress
    (tmp_path / f".v3.npy.otherhost.{dead}.tmp").write_bytes(b"")  # another machine's, recent
    old = tmp_path / ".v4.npy.otherhost.7.tmp"
    old.write_bytes(b"")
    os.utime(old, (0, 0))  # another machine's, days old
    (tmp_path / "v5.npy").write_bytes(b"")
    assert [p.name for p in stale_temp_files(tmp_path)] == [f".v1.npy.{host}.{dead}.tmp", old.name]


def test_cli_one_line_for_user_errors_and_a_full_disk(capsys):
    import errno

    from videoblip2.cli import cli

    def full():
        raise OSError(errno.ENOSPC, "No space left on device", "/data/run/last/.tmp/spiece.model")

    for body, expected in ((full, "error: disk full: [Errno 28] No space left on device: "
                                  "'/data/run/last/.tmp/spiece.model'\n"),
                           (lambda: check_writable_file("/"), "error: IsADirectoryError: --out /: is a folder, "
                                                              "expected a file name\n")):
        with pytest.raises(SystemExit) as stop:
            cli(body)
        assert stop.value.code == 2 and capsys.readouterr().err == expected
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        cli(lambda: 1 // 0)
