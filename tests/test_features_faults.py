"""Extractor faults (issue 14, points 2, 5, 6, 7): features of other weights are refused, the no-audio list is
complete under concurrent shards, a missing audio file is not silently "silent", killed runs' temporary files
are cleaned, and read-only / file / full outputs are one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from faults import enospc_on_fsync, read_only, small_tmpfs

from features import audio as audio_cli
from features import common
from features import video as video_cli
from videoblip2 import extract
from videoblip2.data import FeatureFileError, FeatureStore


def video_args(media, tiny_files, out, *extra, pretrained=None):
    return [str(media["tone"]), str(media["mute"]), "--out", str(out), "--clip-model", tiny_files["clip_config"],
            "--clip-pretrained", pretrained or tiny_files["clip_ckpt"], "--num-frames", "8", "--device", "cpu",
            "--workers", "0", *extra]


@pytest.fixture
def no_model_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(extract, "load_clip", refuse)
    monkeypatch.setattr(extract, "load_clap", refuse)


# point 2 ------------------------------------------------------------------------------------------------


def test_other_weights_with_the_same_file_name_are_refused(media, tiny_files, tmp_path, capsys):
    out = tmp_path / "features"
    assert video_cli.main(video_args(media, tiny_files, out)) == 0
    meta = json.loads((out / "meta.json").read_text())["video"]
    assert meta["weights_sha256"] == common.weights_fingerprint(tiny_files["clip_ckpt"])
    # the same file name, other weights (everyone's OpenAI CLIP is "open_clip_model.safetensors")
    state = torch.load(tiny_files["clip_ckpt"])
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = state[first] + 1
    (tmp_path / "other").mkdir()
    other = tmp_path / "other" / os.path.basename(tiny_files["clip_ckpt"])
    torch.save(state, other)
    (out / "video" / "mute.npy").unlink()
    assert video_cli.main(video_args(media, tiny_files, out, pretrained=str(other))) == 2
    err = capsys.readouterr().err
    assert f"weights_sha256: {meta['weights_sha256']!r} (on disk) vs" in err and "use another --out" in err
    assert not (out / "video" / "mute.npy").exists()
    # the same content under another name and path is the same weights: accepted
    same = tmp_path / "other" / "copy.pt"
    shutil.copy(tiny_files["clip_ckpt"], same)
    meta_before = json.loads((out / "meta.json").read_text())
    meta_before["video"]["pretrained"] = "copy.pt"
    (out / "meta.json").write_text(json.dumps(meta_before))
    assert video_cli.main(video_args(media, tiny_files, out, pretrained=str(same))) == 0


def test_fingerprint_is_the_content(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 100)
    b.write_bytes(b"x" * 99 + b"y")
    os.utime(b, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns))  # same size, same mtime: still told apart
    assert common.weights_fingerprint(str(a)) != common.weights_fingerprint(str(b))
    assert common.weights_fingerprint(str(a)).startswith("sha256:") and common.weights_fingerprint("openai") is None


# point 5 ------------------------------------------------------------------------------------------------


def test_no_audio_list_is_complete_under_concurrent_shards(tmp_path, monkeypatch):
    out = tmp_path / "features"
    (out / "audio").mkdir(parents=True)
    (out / "audio" / "a.noaudio.json").write_text("{}")  # shard 0's silent video
    real = audio_cli.no_audio_ids
    other = {}

    def slow_no_audio_ids(folder):
        ids = real(folder)
        if not other:  # shard 0 has read the markers; now shard 1 finishes its silent video and its meta.json
            (out / "audio" / "b.noaudio.json").write_text("{}")
            other["thread"] = threading.Thread(target=audio_cli.record_no_audio, args=(out,))
            other["thread"].start()
            other["thread"].join(timeout=0.5)  # it completes here unless shard 0 holds the meta.json lock
        return ids

    monkeypatch.setattr(audio_cli, "no_audio_ids", slow_no_audio_ids)
    audio_cli.record_no_audio(out)  # shard 0's final update
    other["thread"].join()
    assert json.loads((out / "meta.json").read_text())["audio"]["no_audio"] == ["a", "b"]


# point 6 ------------------------------------------------------------------------------------------------


def _extracted_folder(root, failures=()):
    (root / "video").mkdir(parents=True)
    (root / "audio").mkdir()
    for video_id in ("v_sound", "v_silent", "v_listed", "v_failed", "v_never"):
        np.save(root / "video" / f"{video_id}.npy", np.ones((3, 8), np.float16))
    np.save(root / "audio" / "v_sound.npy", np.ones((2, 4), np.float16))
    (root / "audio" / "v_silent.noaudio.json").write_text('{"reason": "silent"}')
    (root / "meta.json").write_text(json.dumps({"audio": {"window_s": 5.0, "dim": 4, "no_audio": ["v_listed"]}}))
    with open(root / "failures.jsonl", "w") as f:
        for video_id in failures:
            f.write(json.dumps({"video_id": video_id, "extractor": "audio", "error": "cannot decode audio"}) + "\n")
    return root


def _store(root, ids, **kwargs):
    return FeatureStore(root, ids, max_frames=4, max_audio_windows=2, video_dim=8, audio_dim=4, **kwargs)


def test_missing_audio_is_an_error_where_the_folder_was_extracted(tmp_path):
    root = _extracted_folder(tmp_path / "f", failures=["v_failed"])
    store = _store(root, ["v_sound", "v_silent", "v_listed"])
    assert store.has_audio.tolist() == [True, False, False]
    with pytest.raises(FeatureFileError, match="v_never.npy: no audio features and no v_never.noaudio.json "
                                               "marker.*has not processed it"):
        _store(root, ["v_sound", "v_never"])
    with pytest.raises(FeatureFileError, match="v_failed.npy: .*extraction failed .*cannot decode audio"):
        _store(root, ["v_failed"], preload=False)
    # --skip-bad-features: skipped and listed
    store = _store(root, ["v_sound", "v_failed", "v_never", "v_silent"], skip_bad=True)
    assert store.video_ids == ["v_sound", "v_silent"] and [v for v, _ in store.skipped] == ["v_failed", "v_never"]
    # a folder without audio extraction settings keeps the old rule: no file = silent
    (root / "meta.json").write_text(json.dumps({"audio": {"dim": 4}}))
    assert _store(root, ["v_never", "v_sound"]).has_audio.tolist() == [False, True]


def test_temporary_files_of_a_killed_extractor_are_removed(media, tiny_files, tmp_path):
    out = tmp_path / "features"
    (out / "video").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    left = out / "video" / f".tone.npy.{socket.gethostname()}.{dead}.tmp"  # kill -9 inside np.save
    left.write_bytes(b"\x93NUMPY half")
    assert video_cli.main(video_args(media, tiny_files, out)) == 0
    assert sorted(os.listdir(out / "video")) == ["mute.npy", "tone.npy"]


# point 7 ------------------------------------------------------------------------------------------------


def test_out_is_a_file(media, tiny_files, tmp_path, capsys, no_model_loading):
    (tmp_path / "f").write_text("")
    assert video_cli.main(video_args(media, tiny_files, tmp_path / "f")) == 2
    assert capsys.readouterr().err == f"error: --out {tmp_path / 'f'}: is a file, expected the features folder\n"


@pytest.mark.parametrize("kind", ["video", "audio"])
def test_read_only_out_and_features_folder(media, tiny_files, tmp_path, capsys, no_model_loading, kind):
    main = video_cli.main if kind == "video" else audio_cli.main
    args = video_args(media, tiny_files, tmp_path / "ro") if kind == "video" else [
        str(media["tone"]), "--out", str(tmp_path / "ro"), "--clap-pretrained", tiny_files["clap_ckpt"], "--device", "cpu"]
    (tmp_path / "ro").mkdir()
    with read_only(tmp_path / "ro"):  # a read-only --out (a real mount: root ignores file modes)
        assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out: cannot ") and str(tmp_path / "ro") in err and len(err.splitlines()) == 1
    (tmp_path / "ro" / kind).mkdir()
    with read_only(tmp_path / "ro" / kind):  # a writable --out with a read-only features folder
        assert main(args) == 2
    assert capsys.readouterr().err.startswith(f"error: --out: cannot write in {tmp_path / 'ro' / kind}")


def test_disk_full_stops_with_one_line_naming_the_folder(media, tiny_files, tmp_path, capsys, monkeypatch):
    out = tmp_path / "features"
    with monkeypatch.context() as patch:
        enospc_on_fsync(patch, only="tone.npy")  # stands for a disk that fills while tone.npy is written
        assert video_cli.main(video_args(media, tiny_files, out)) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("error: disk full") and str(out.resolve() / "video") in err and "run the same" in err
    assert sorted(os.listdir(out / "video")) == ["mute.npy"]  # what was written is whole; no temporary left
    assert np.load(out / "video" / "mute.npy").shape == (8, 768)
    assert video_cli.main(video_args(media, tiny_files, out)) == 0  # space again: resumes


def test_real_full_disk(media, tiny_files, tmp_path, capsys):
    with small_tmpfs(tmp_path / "disk", "32k") as disk:
        out = disk / "features"
        assert video_cli.main(video_args(media, tiny_files, out)) == 2
        assert "error: disk full" in capsys.readouterr().err
        for file in (out / "video").iterdir():
            assert not file.name.startswith(".") and np.load(file).shape == (8, 768)
