"""Clip trimming: frames and audio windows taken from a segment of a longer video only. The generated video
(tests/media.py) numbers its frames in their grey level and sounds a tone only inside the segment, so a test
reads back which frames and which sound were used. Then the extractors with --trim name / --trim ann."""

import json

import numpy as np
import pytest

from features import audio as audio_cli
from features import video as video_cli
from features.common import list_videos
from media import level_to_index, write_video
from videoblip2.extract import ExtractionError, decode_audio, decode_frames, load_clap, load_clip, probe_video

FPS, FRAMES = 4, 20  # a 5 s "full YouTube video"
TONE = (2.0, 4.0)  # the clip: frames 8..15, the only seconds with sound


@pytest.fixture(scope="module")
def full_video(tmp_path_factory):
    folder = tmp_path_factory.mktemp("full_videos")
    write_video(folder / "yt-ID_x.mp4", num_frames=FRAMES, fps=FPS, tone_span=TONE)
    return folder / "yt-ID_x.mp4"


def frame_numbers(frames):
    return [level_to_index(frame[:8, :8].mean()) for frame in frames]


def test_frames_come_from_the_segment_only(full_video):
    assert probe_video(full_video) == (20, 4.0) and probe_video(full_video, TONE) == (8, 4.0)
    assert frame_numbers(decode_frames(full_video, 4)) == [2, 7, 12, 17]  # the whole video
    assert frame_numbers(decode_frames(full_video, 4, segment=TONE)) == [9, 11, 13, 15]  # 8 + [1, 3, 5, 7]
    assert frame_numbers(decode_frames(full_video, 32, segment=TONE)) == list(range(8, 16))
    assert frame_numbers(decode_frames(full_video, 2, segment=(0.5, 1.5))) == [3, 5]  # after a seek to 0
    assert frame_numbers(decode_frames(full_video, 32, segment=(4.5, 60))) == [18, 19]  # cut by the video's end
    with pytest.raises(ExtractionError, match=r"yt-ID_x.mp4: the video stream has no frames in the segment 6-9 s"):
        decode_frames(full_video, 4, segment=(6, 9))
    with pytest.raises(ValueError, match="0 <= start < end"):
        decode_frames(full_video, 4, segment=(3, 2))


def test_audio_comes_from_the_segment_only(full_video):
    whole = decode_audio(full_video)
    assert np.abs(whole[: 48000]).max() < 1e-3 and np.abs(whole).max() > 0.4  # silent first second, a tone later
    clip = decode_audio(full_video, segment=TONE)
    assert len(clip) == 2 * 48000
    blocks = np.abs(clip).reshape(20, 4800).max(axis=1)  # every 0.1 s of the clip sounds
    np.testing.assert_allclose(blocks, 0.5, atol=0.03)
    assert np.abs(decode_audio(full_video, segment=(0.0, 1.9))).max() < 1e-3  # outside: silence
    half = np.abs(decode_audio(full_video, segment=(1.0, 3.0))).reshape(20, 4800).max(axis=1)
    assert (half[:9] < 0.01).all() and (half[11:] > 0.45).all()  # the tone starts 1 s into this segment


def _vatex_ann(path, clips):
    path.write_text(json.dumps([{"videoID": clip, "enCap": ["a tone"]} for clip in clips]))
    return path


def test_extractors_trim_by_clip_name(full_video, tiny_files, tmp_path):
    ann = _vatex_ann(tmp_path / "vatex_validation_v1.0.json", ["yt-ID_x_000002_000004", "yt-ID_x_000000_000001"])
    items = list_videos([str(ann)], str(full_video.parent), trim="name")
    assert [(i.video_id, i.path, i.segment) for i in items] == [
        ("yt-ID_x_000000_000001", str(full_video), (0.0, 1.0)), ("yt-ID_x_000002_000004", str(full_video), (2.0, 4.0))]

    out = tmp_path / "features"
    common = [str(ann), "--video-dir", str(full_video.parent), "--out", str(out), "--trim", "name", "--device", "cpu",
              "--workers", "0"]
    assert video_cli.main([*common, "--clip-model", tiny_files["clip_config"], "--clip-pretrained", tiny_files["clip_ckpt"],
                           "--num-frames", "4"]) == 0
    clip = load_clip(tiny_files["clip_config"], tiny_files["clip_ckpt"], device="cpu")
    tone_clip = np.load(out / "video" / "yt-ID_x_000002_000004.npy")
    np.testing.assert_allclose(tone_clip, clip.encode_video(full_video, 4, segment=TONE), atol=2e-3, rtol=1e-2)
    assert not np.allclose(tone_clip, clip.encode_video(full_video, 4), atol=1e-2)  # not the whole video's frames
    assert np.load(out / "video" / "yt-ID_x_000000_000001.npy").shape == (4, 768)
    assert json.loads((out / "meta.json").read_text())["video"]["trim"] == "name"

    assert audio_cli.main([*common, "--clap-model", tiny_files["clap_config"], "--clap-pretrained", tiny_files["clap_ckpt"],
                           "--window", "1", "--hop", "0.5"]) == 0
    clap = load_clap(tiny_files["clap_config"], tiny_files["clap_ckpt"], device="cpu")
    sound = np.load(out / "audio" / "yt-ID_x_000002_000004.npy")
    assert sound.shape == (3, 512)  # 2 s: windows at 0, 0.5, 1 s
    np.testing.assert_allclose(sound, clap.encode_video(full_video, 1.0, 0.5, 16, segment=TONE), atol=2e-3, rtol=1e-2)
    # the first second of the full video is silent: that clip has no sound, although the video has
    marker = json.loads((out / "audio" / "yt-ID_x_000000_000001.noaudio.json").read_text())
    assert marker["reason"] == "silent"


def test_extractor_trim_from_annotation_times(full_video, tiny_files, tmp_path, capsys):
    official = {"videos": [{"video_id": "video0", "split": "test", "url": "https://www.youtube.com/watch?v=yt-ID_x",
                            "start time": 2.0, "end time": 4.0}],
                "sentences": [{"video_id": "video0", "caption": "a tone", "sen_id": 0}]}
    ann = tmp_path / "test_videodatainfo.json"
    ann.write_text(json.dumps(official))
    out = tmp_path / "features"
    args = [str(ann), "--video-dir", str(full_video.parent), "--out", str(out), "--trim", "ann", "--device", "cpu",
            "--workers", "0", "--clip-model", tiny_files["clip_config"], "--clip-pretrained", tiny_files["clip_ckpt"],
            "--num-frames", "4"]
    assert video_cli.main([*args, "--split", "test"]) == 0
    clip = load_clip(tiny_files["clip_config"], tiny_files["clip_ckpt"], device="cpu")
    np.testing.assert_allclose(np.load(out / "video" / "video0.npy"), clip.encode_video(full_video, 4, segment=TONE),
                               atol=2e-3, rtol=1e-2)

    # user errors: exit 2 with one line naming the problem
    capsys.readouterr()
    vatex = _vatex_ann(tmp_path / "v.json", ["yt-ID_x_000002_000004"])
    assert video_cli.main([str(vatex), *args[1:]]) == 2
    assert "no start/end fields" in capsys.readouterr().err
    assert video_cli.main([str(ann), *args[1:6], "name", *args[7:]]) == 2
    assert "1 video ids are not clip names {youtube_id}_{start}_{end}, e.g. video0" in capsys.readouterr().err
    assert video_cli.main([str(full_video.parent), *args[1:]]) == 2
    assert "--trim ann takes the clips of an annotation file" in capsys.readouterr().err


def test_both_extractors_agree_on_segments_outside_or_past_the_video(full_video, tiny_files, tmp_path, capsys,
                                                                     caplog):
    """A segment after the end of the video fails in both extractors (failures.jsonl, not a silent marker); one
    running past the end is cut to it, with a warning naming the clip and a count in the summary."""
    ann = _vatex_ann(tmp_path / "vatex.json", ["yt-ID_x_000002_000004", "yt-ID_x_000004_000009",
                                               "yt-ID_x_000006_000009"])
    out = tmp_path / "features"
    common = [str(ann), "--video-dir", str(full_video.parent), "--out", str(out), "--trim", "name", "--device", "cpu",
              "--workers", "0"]
    capsys.readouterr()
    assert video_cli.main([*common, "--clip-model", tiny_files["clip_config"], "--clip-pretrained",
                           tiny_files["clip_ckpt"], "--num-frames", "4"]) == 1
    err = capsys.readouterr().err
    assert ("yt-ID_x_000004_000009: segment 4-9 s runs past the end of the video (5.00 s): features of 4-5.00 s"
            in caplog.text)
    assert "2 written, 1 failed, 1 cut short (segment past the end of the video: yt-ID_x_000004_000009)" in err
    clip = load_clip(tiny_files["clip_config"], tiny_files["clip_ckpt"], device="cpu")
    np.testing.assert_allclose(np.load(out / "video" / "yt-ID_x_000004_000009.npy"),
                               clip.encode_video(full_video, 4, segment=(4.0, 5.0)), atol=2e-3, rtol=1e-2)
    assert audio_cli.main([*common, "--clap-model", tiny_files["clap_config"], "--clap-pretrained",
                           tiny_files["clap_ckpt"], "--window", "1", "--hop", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "1 written, 1 failed, 1 without sound, 1 cut short (segment past the end of the video: yt-ID_x_000004" in err
    assert not (out / "audio" / "yt-ID_x_000006_000009.noaudio.json").exists()  # outside is not silence
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert sorted((f["video_id"], f["extractor"]) for f in failures) == [
        ("yt-ID_x_000006_000009", "audio"), ("yt-ID_x_000006_000009", "video")]
    assert all("the segment 6-9 s starts after the end of the video (5.00 s)" in f["error"] for f in failures)
