"""Every output file is replaced atomically: a full disk while writing leaves the previous file whole and no
temporary file behind (issue 14, point 1). `enospc_on_fsync` stands for a disk that fills while the new version
is written; the real-tmpfs test shows what an in-place `open(path, "w")` did: a truncated file."""

from __future__ import annotations

import json

import pytest
from faults import enospc_on_fsync, fill, small_tmpfs

from videoblip2.annotations import load_predictions, save_predictions
from videoblip2.fileio import DiskFullError

OLD = {"video1": "a man is cooking", "video2": "a dog runs"}


def _only(folder, *names):
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def test_predictions_survive_a_real_full_disk(tmp_path):
    with small_tmpfs(tmp_path / "disk", "64k") as disk:
        target = disk / "predictions.json"
        save_predictions(OLD, target)
        fill(disk)
        with pytest.raises(DiskFullError, match=f"disk full .*{disk}"):
            save_predictions({f"video{i}": "a long caption " * 20 for i in range(500)}, target)
        assert load_predictions(target) == OLD
        _only(disk, "ballast", "predictions.json")


def test_predictions_simulated_enospc(tmp_path, monkeypatch):
    save_predictions(OLD, tmp_path / "p.json")
    enospc_on_fsync(monkeypatch)
    with pytest.raises(DiskFullError):
        save_predictions({"video1": "new"}, tmp_path / "p.json")
    assert load_predictions(tmp_path / "p.json") == OLD
    _only(tmp_path, "p.json")


def test_metrics_json(tmp_path, monkeypatch):
    from videoblip2.eval.evaluate import main

    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps([{"video_id": "video1", "caption": "a man is cooking"},
                               {"video_id": "video2", "caption": "a dog runs"}]))
    save_predictions(OLD, tmp_path / "p.json")
    (tmp_path / "m.json").write_text('{"old": 1}\n')
    enospc_on_fsync(monkeypatch, only="m.json")
    with pytest.raises(DiskFullError):
        main(["--predictions", str(tmp_path / "p.json"), "--ann", str(ann), "--out", str(tmp_path / "m.json"),
              "--no-meteor"])
    assert (tmp_path / "m.json").read_text() == '{"old": 1}\n'
    _only(tmp_path, "ann.json", "p.json", "m.json")


def test_top5_file(tmp_path, monkeypatch):
    from videoblip2.train.make_top5 import write_records

    write_records({"v": ["old"]}, tmp_path / "top5.json")
    enospc_on_fsync(monkeypatch)
    with pytest.raises(DiskFullError):
        write_records({"v": ["new", "newer"]}, tmp_path / "top5.json")
    assert json.loads((tmp_path / "top5.json").read_text()) == [{"video_id": "v", "caption": "old"}]
    _only(tmp_path, "top5.json")


def test_plot_and_log(tmp_path, monkeypatch):
    from videoblip2.train.logger import JsonlLog, plot_log

    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"type": "train", "step": s, "loss": 1.0 / s}) + "\n" for s in (1, 2, 3)))
    plot_log(log, tmp_path / "curves.png")
    png = (tmp_path / "curves.png").read_bytes()
    before = log.read_text()
    enospc_on_fsync(monkeypatch)
    with pytest.raises(DiskFullError):
        plot_log(log, tmp_path / "curves.png", extra_keys=["reward"])
    with pytest.raises(DiskFullError):
        JsonlLog(log).truncate_after(1)
    assert (tmp_path / "curves.png").read_bytes() == png and log.read_text() == before
    _only(tmp_path, "log.jsonl", "curves.png")


def test_synth_files(tmp_path, monkeypatch):
    from videoblip2 import synth

    synth.generate(tmp_path, seed=1, num_videos=9, num_audio_windows=2, progress=False)
    meta = (tmp_path / "meta.json").read_text()
    enospc_on_fsync(monkeypatch, only="meta.json")
    with pytest.raises(DiskFullError):
        synth.generate(tmp_path, seed=2, num_videos=9, num_audio_windows=2, progress=False, overwrite=True)
    assert (tmp_path / "meta.json").read_text() == meta
    assert not [p for p in tmp_path.rglob(".*.tmp")]


def test_model_config_and_weights(tmp_path, monkeypatch, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    for name in ("model.safetensors", "config.json"):
        before = (tmp_path / name).read_bytes()
        with monkeypatch.context() as patch:
            enospc_on_fsync(patch, only=name)
            with pytest.raises(DiskFullError, match=name):
                tiny_model.save_pretrained(tmp_path)
        assert (tmp_path / name).read_bytes() == before
    assert not [p for p in tmp_path.rglob(".*.tmp")]
