"""The batch extractors ``python -m features.video`` / ``features.audio`` on real files with tiny models:
outputs, cross-video batching, failures, resume, sharding, meta.json; and their pure helpers."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from features import audio as audio_cli
from features import video as video_cli
from features.common import (
    InputError,
    RowBatcher,
    list_videos,
    parse_shard,
    save_npy_atomic,
    take_shard,
)
from videoblip2.extract import decode_audio, load_clap, load_clip, window_starts

SOUNDING = ["tone", "webm"]
READABLE = ["mute", "silent", "tone", "webm"]


def video_args(media, tiny_files, out, *extra):
    return [str(media["tone"].parent), "--out", str(out), "--clip-model", tiny_files["clip_config"],
            "--clip-pretrained", tiny_files["clip_ckpt"], "--num-frames", "8", "--device", "cpu", *extra]


def audio_args(media, tiny_files, out, *extra):
    return [str(media["tone"].parent), "--out", str(out), "--clap-model", tiny_files["clap_config"],
            "--clap-pretrained", tiny_files["clap_ckpt"], "--window", "1", "--hop", "0.5", "--device", "cpu", *extra]


def failures(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


# ---------------------------------------------------------------------------------------------- helpers


def test_row_batcher_packs_across_videos_and_keeps_order():
    calls = []

    def encode(rows):
        calls.append(len(rows))
        return rows * 10

    batcher = RowBatcher(encode, batch_size=4)
    sizes = {"a": 3, "b": 5, "c": 1, "d": 4}
    rows = {}
    done = []
    start = 0
    for key, n in sizes.items():
        rows[key] = torch.arange(start, start + n, dtype=torch.float32)[:, None]  # (n, 1)
        start += n
        done += batcher.add(key, rows[key])
    assert [k for k, _ in done] == ["a", "b", "c"]  # 12 rows = 3 full batches finish a, b and c
    done += batcher.flush()
    assert calls == [4, 4, 4, 1] and batcher.batch_sizes == calls  # 13 rows: full batches, one remainder
    assert [k for k, _ in done] == ["a", "b", "c", "d"]
    for key, out in done:
        torch.testing.assert_close(out, rows[key] * 10)
    with pytest.raises(ValueError):
        batcher.add("empty", torch.zeros(0, 1))


def test_row_batcher_with_list_rows():
    batcher = RowBatcher(lambda rows: torch.tensor([[float(sum(r))] for r in rows]), batch_size=2,
                         collate=lambda chunks: [r for chunk in chunks for r in chunk])
    done = batcher.add("x", [[1], [2], [3]]) + batcher.add("y", [[4]]) + batcher.flush()
    assert [(k, v.flatten().tolist()) for k, v in done] == [("x", [1.0, 2.0, 3.0]), ("y", [4.0])]


def test_list_videos_inputs(tmp_path, media):
    folder = media["tone"].parent
    items = list_videos([str(folder)])
    assert [i.video_id for i in items] == ["broken", "mute", "silent", "tone", "webm"]  # sorted by id
    (tmp_path / "sub").mkdir()
    listing = tmp_path / "sub" / "videos.txt"
    listing.write_text(f"# comment\n{media['tone']}\n\n{os.path.relpath(media['webm'], listing.parent)}\n")
    assert [(i.video_id, Path(i.path).resolve()) for i in list_videos([str(listing)])] == [
        ("tone", media["tone"].resolve()), ("webm", media["webm"].resolve())]
    annotations = tmp_path / "captions.json"
    annotations.write_text(json.dumps({"tone": ["a tone"], "silent": ["nothing"], "gone": ["missing file"]}))
    items = list_videos([str(annotations)], video_dir=str(folder))
    assert [(i.video_id, Path(i.path).name) for i in items] == [
        ("gone", "gone.mp4"), ("silent", "silent.mkv"), ("tone", "tone.mp4")]  # "gone" will fail, logged
    with pytest.raises(InputError, match="--video-dir"):
        list_videos([str(annotations)])
    twin = tmp_path / "tone.webm"
    twin.write_bytes(b"x")
    with pytest.raises(InputError, match="share the id 'tone'"):
        list_videos([str(folder), str(twin)])
    with pytest.raises(InputError, match="not a video file"):
        list_videos([str(tmp_path / "nothing.xyz")])


def test_shards_split_the_sorted_list():
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(InputError):
            parse_shard(bad)
    items = list("abcdefg")
    shards = [take_shard(items, i, 3) for i in range(3)]
    assert shards == [["a", "d", "g"], ["b", "e"], ["c", "f"]]


def test_save_npy_atomic(tmp_path):
    save_npy_atomic(tmp_path / "x.npy", np.arange(6, dtype=np.float16).reshape(2, 3))
    assert os.listdir(tmp_path) == ["x.npy"]  # no temporary left behind
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), np.arange(6).reshape(2, 3))


# ---------------------------------------------------------------------------------------------- video


def test_video_extractor_end_to_end(media, tiny_files, tmp_path, capsys):
    out = tmp_path / "features"
    # 8 frames per video, 12 per batch: videos straddle model batches; 2 decoding worker processes
    rc = video_cli.main(video_args(media, tiny_files, out, "--batch-size", "12", "--workers", "2"))
    assert rc == 1  # the corrupt file failed, the run went on
    assert "4 written, 1 failed" in capsys.readouterr().err
    files = sorted(p.name for p in (out / "video").iterdir())
    assert files == [f"{v}.npy" for v in READABLE]  # nothing else: no temporaries
    clip = load_clip(tiny_files["clip_config"], tiny_files["clip_ckpt"], device="cpu")
    for video_id in READABLE:
        features = np.load(out / "video" / f"{video_id}.npy")
        assert features.shape == (8, 768) and features.dtype == np.float16
        path = next(p for p in media.values() if p.stem == video_id)
        np.testing.assert_allclose(features, clip.encode_video(path, 8), atol=2e-3, rtol=1e-2)
    [failure] = failures(out)
    assert failure["video_id"] == "broken" and failure["extractor"] == "video"
    assert "broken.mp4: cannot open" in failure["error"]
    meta = json.loads((out / "meta.json").read_text())["video"]
    assert meta["model"] == "tiny_clip" and meta["pretrained"] == "tiny_clip.pt"
    assert (meta["num_frames"], meta["dim"], meta["dtype"], meta["layer"]) == (8, 768, "float16", "embed")

    # resume: finished videos are skipped (not rewritten); the failed one is tried again
    before = mtimes(out / "video")
    (out / "video" / "mute.npy").unlink()
    assert video_cli.main(video_args(media, tiny_files, out, "--workers", "0")) == 1
    after = mtimes(out / "video")
    assert {k for k in after if after[k] != before.get(k)} == {"mute.npy"}
    assert len(failures(out)) == 2

    # other settings into the same folder: refused instead of mixing features
    (out / "video" / "mute.npy").unlink()
    assert video_cli.main(video_args(media, tiny_files, out, "--num-frames", "4")) == 2
    assert "num_frames: 8 (on disk) vs 4 (now)" in capsys.readouterr().err


def test_video_extractor_shards(media, tiny_files, tmp_path):
    out = tmp_path / "features"
    got = []
    for shard in ("0/2", "1/2"):
        rc = video_cli.main(video_args(media, tiny_files, out, "--shard", shard, "--workers", "0"))
        got.append({p.stem for p in (out / "video").glob("*.npy")} - set().union(*got))
        assert rc == ("broken" in take_shard(sorted(p.stem for p in media.values()), *parse_shard(shard)))
    assert got[0] & got[1] == set() and got[0] | got[1] == set(READABLE)
    # everything done: a re-run loads no model and succeeds... except for the still-broken file
    assert video_cli.main(video_args(media, tiny_files, out, "--workers", "0")) == 1


# ---------------------------------------------------------------------------------------------- audio


def test_audio_extractor_end_to_end(media, tiny_files, tmp_path, capsys):
    out = tmp_path / "features"
    # 1 s windows every 0.5 s (the tiny CLAP reads 2 s), 3 windows per model batch
    rc = audio_cli.main(audio_args(media, tiny_files, out, "--batch-size", "3", "--workers", "2"))
    assert rc == 1
    assert "2 written, 1 failed, 2 without sound" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "audio").iterdir()) == [
        "mute.noaudio.json", "silent.noaudio.json", "tone.npy", "webm.npy"]
    clap = load_clap(tiny_files["clap_config"], tiny_files["clap_ckpt"], device="cpu")
    for video_id in SOUNDING:
        features = np.load(out / "audio" / f"{video_id}.npy")
        windows = len(window_starts(len(decode_audio(media[video_id])), 48000, 24000, 16))
        assert features.shape == (windows, 512) and features.dtype == np.float16 and windows >= 3
        expected = clap.encode_video(media[video_id], window_s=1.0, hop_s=0.5, max_windows=16)
        np.testing.assert_allclose(features, expected, atol=2e-3, rtol=1e-2)
    meta = json.loads((out / "meta.json").read_text())["audio"]
    assert meta["no_audio"] == ["mute", "silent"]
    assert (meta["window_s"], meta["hop_s"], meta["dim"], meta["sample_rate"]) == (1.0, 0.5, 512, 48000)
    assert json.loads((out / "audio" / "mute.noaudio.json").read_text())["reason"] == "no audio stream"
    assert json.loads((out / "audio" / "silent.noaudio.json").read_text())["reason"] == "silent"
    assert [f["video_id"] for f in failures(out)] == ["broken"]

    # resume: sounding and silent videos alike are done
    before = mtimes(out / "audio")
    assert audio_cli.main(audio_args(media, tiny_files, out, "--workers", "0")) == 1
    assert mtimes(out / "audio") == before
    assert "0 written, 1 failed, 0 without sound" in capsys.readouterr().err

    # together with the video features, the data loader reads a video without sound as intended
    assert video_cli.main(video_args(media, tiny_files, out, "--workers", "0")) == 1
    from videoblip2.data import FeatureStore

    store = FeatureStore(out, ["tone", "mute", "silent"], max_frames=8, max_audio_windows=4)
    assert store.has_audio.tolist() == [True, False, False]
    assert store.audio_mask.sum(dim=1).tolist() == [4, 0, 0] and store.video_mask.all()


def test_other_settings_refused_even_with_nothing_left_to_do(media, tiny_files, tmp_path, capsys, monkeypatch):
    """Issue 20: a re-run into a finished folder used to exit 0 ("1 already done") whatever its settings."""
    out = tmp_path / "f"
    one = [str(media["tone"]), "--out", str(out), "--device", "cpu", "--workers", "0"]
    clip = ["--clip-model", tiny_files["clip_config"], "--clip-pretrained", tiny_files["clip_ckpt"]]
    clap = ["--clap-model", tiny_files["clap_config"], "--clap-pretrained", tiny_files["clap_ckpt"], "--hop", "0.5"]
    assert video_cli.main([*one, *clip, "--num-frames", "8"]) == 0
    assert audio_cli.main([*one, *clap, "--window", "1"]) == 0
    capsys.readouterr()

    def refuse(*args, **kwargs):
        raise AssertionError("nothing to do: no model should load")

    from videoblip2 import extract

    monkeypatch.setattr(extract, "load_clip", refuse)
    monkeypatch.setattr(extract, "load_clap", refuse)
    assert video_cli.main([*one, *clip, "--num-frames", "8"]) == 0  # the same settings: nothing to do
    assert "1 already done, 0 written" in capsys.readouterr().err
    assert video_cli.main([*one, *clip, "--num-frames", "4"]) == 2
    assert "num_frames: 8 (on disk) vs 4 (now)" in capsys.readouterr().err
    assert audio_cli.main([*one, *clap, "--window", "2"]) == 2
    assert "window_s: 1.0 (on disk) vs 2.0 (now)" in capsys.readouterr().err
