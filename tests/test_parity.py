"""Parity with the reference libraries on every kind of real file (issue 26).

The extractors (``ClipFrameEncoder.encode_video``, ``ClapWindowEncoder.encode_video``: what ``features.video``,
``features.audio`` and ``caption`` run) against references built independently of ``videoblip2.extract``:

- CLIP: every frame decoded by PyAV here, turned upright by hand (``np.rot90`` for the rotation the test
  wrote), the documented frames kept, then open_clip's own ``create_model_and_transforms`` preprocessing and
  ``encode_image`` (a second model built by open_clip from the same checkpoint file);
- CLAP: ``librosa.load(sr=48000)`` (WAV), or the AAC decoded by PyAV at its own rate, cut to the true length
  the test wrote and resampled by librosa (mp4: librosa needs an ffmpeg binary for it), cut into the
  documented windows and embedded by laion_clap's ``CLAP_Module.get_audio_embedding_from_data``.

Random-weight real architectures at CI size (a 2-layer ViT; an HTSAT with tiny stages on CLAP's real 10 s
input). The tolerance is what float16 storage allows: cosine >= 0.99999 per row.
"""

import shutil
import subprocess
import types
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from PIL import Image

from media import chirp_wave, make_frame, write_media
from videoblip2.extract import (
    ORIENTATIONS,
    decode_audio,
    decode_frames,
    display_orientation,
    load_clap,
    load_clip,
    sample_frame_indices,
    window_starts,
)
from videoblip2.tiny import TINY_CLAP_CONFIG

MIN_COSINE = 0.99999  # float16 storage: relative error ~5e-4 per value

# CLAP's real audio front end (HTSAT-tiny's audio_cfg: 10 s at 48 kHz, 64 mel bins) with tiny HTSAT stages:
# the library's tiny CLAP with AudioSet's 527 classes
PARITY_CLAP_CONFIG = {**TINY_CLAP_CONFIG, "audio_cfg": {**TINY_CLAP_CONFIG["audio_cfg"], "class_num": 527}}


def cosines(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    a, b = torch.from_numpy(ours.astype(np.float32)), torch.from_numpy(reference.astype(np.float32))
    return torch.nn.functional.cosine_similarity(a, b, dim=-1).numpy()


# ---------------------------------------------------------------------------------------------- CLIP


@pytest.fixture(scope="module")
def clip(tiny_files):
    return load_clip(tiny_files["clip_config"], tiny_files["clip_ckpt"], device="cpu")


@pytest.fixture(scope="module")
def open_clip_reference(tiny_files):
    """open_clip's own model + eval transform, built by open_clip from the checkpoint file."""
    import open_clip

    open_clip.add_model_config(tiny_files["clip_config"])
    model, _, preprocess = open_clip.create_model_and_transforms("tiny_clip", pretrained=tiny_files["clip_ckpt"])
    return model.eval(), preprocess


def reference_frames(path, upright=lambda rgb: rgb, segment=None) -> tuple[list[np.ndarray], float]:
    """Every frame of the first video stream as players show it, and the stream's average rate. ``segment``:
    seconds from the file's start (``ffmpeg -ss`` counts from the container's start time)."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        file_start = (container.start_time or 0) / 1e6
        for frame in container.decode(stream):
            t = frame.time - file_start
            if segment is None or segment[0] - 1e-3 <= t < segment[1] - 1e-3:
                frames.append(np.ascontiguousarray(upright(frame.to_ndarray(format="rgb24"))))
        return frames, float(stream.average_rate)


def reference_clip(reference, path, num_frames, fps=None, upright=lambda rgb: rgb, segment=None):
    model, preprocess = reference
    frames, rate = reference_frames(path, upright, segment)
    keep = sample_frame_indices(len(frames), num_frames, fps=fps, native_fps=rate)  # by hand in test_extract
    with torch.no_grad():
        return model.encode_image(torch.stack([preprocess(Image.fromarray(frames[i])) for i in keep])).numpy()


def portrait_content(n: int) -> list[np.ndarray]:
    """Upright portrait frames (96 high, 64 wide) with an off-centre mark, so that no turn maps them to themselves."""
    frames = []
    for i in range(n):
        frame = make_frame(i, 64, 96)
        frame[6:30, 4:20] = (255, 0, 0)
        frames.append(frame)
    return frames


VIDEO_CASES = {
    # name: (write_media kwargs, reference upright function, decode kwargs)
    "upright": (dict(frames=[make_frame(i, 96, 64) for i in range(20)]), None, dict(num_frames=6)),
    # a player turns it 90 degrees clockwise (an iPhone held upright: mp4 "rotate" 90)
    "rotate90": (dict(frames=[np.rot90(f, 1) for f in portrait_content(12)], display_rotation=(-90, False, False)),
                 lambda rgb: np.rot90(rgb, -1), dict(num_frames=5)),
    "rotate270": (dict(frames=[np.rot90(f, -1) for f in portrait_content(12)], display_rotation=(90, False, False)),
                  lambda rgb: np.rot90(rgb, 1), dict(num_frames=5)),
    "ntsc_29.97fps": (dict(frames=[make_frame(i, 96, 64) for i in range(40)], fps=Fraction(30000, 1001)), None,
                      dict(num_frames=7)),
    "variable_rate": (dict(frames=[make_frame(i, 96, 64) for i in range(15)],
                           frame_times=[0.0, 0.04, 0.2, 0.25, 0.5, 0.55, 0.6, 1.0, 1.1, 1.15, 1.5, 1.9, 2.0, 2.05, 2.4]),
                      None, dict(num_frames=4)),
    "late_start": (dict(frames=[make_frame(i, 96, 64) for i in range(16)], start_s=0.75), None, dict(num_frames=5)),
    "fps_sampling": (dict(frames=[make_frame(i, 96, 64) for i in range(20)]), None, dict(num_frames=32, fps=2.0)),
    "trim": (dict(frames=[make_frame(i, 96, 64) for i in range(20)]), None, dict(num_frames=3, segment=(0.5, 1.75))),
    "trim_late_start": (dict(frames=[make_frame(i, 96, 64) for i in range(20)], start_s=0.5), None,
                        dict(num_frames=3, segment=(1.0, 2.0))),
}


@pytest.mark.parametrize("case", sorted(VIDEO_CASES))
def test_clip_features_equal_open_clip(case, clip, open_clip_reference, tmp_path):
    media_kwargs, upright, decode_kwargs = VIDEO_CASES[case]
    path = write_media(tmp_path / f"{case}.mp4", **media_kwargs)
    ours = clip.encode_video(path, **decode_kwargs)
    reference = reference_clip(open_clip_reference, path, decode_kwargs["num_frames"], decode_kwargs.get("fps"),
                               upright or (lambda rgb: rgb), decode_kwargs.get("segment"))
    assert ours.dtype == np.float16
    assert cosines(ours, reference).min() >= MIN_COSINE
    # the rows are open_clip's raw encode_image outputs, not L2-normalised (README "What the features are")
    np.testing.assert_allclose(np.linalg.norm(ours.astype(np.float32), axis=-1),
                               np.linalg.norm(reference, axis=-1), rtol=2e-3)


@pytest.mark.parametrize("case", ["rotate90", "rotate270"])
def test_rotated_frames_are_what_a_player_shows(case, tmp_path):
    """The upright frames equal the portrait content written (up to H.264 loss), not its sideways storage."""
    media_kwargs, _, _ = VIDEO_CASES[case]
    path = write_media(tmp_path / f"{case}.mp4", **media_kwargs)
    info = {}
    frames = decode_frames(path, 3, info=info)
    assert info["orientation"] == case
    content = portrait_content(12)
    assert frames.shape == (3, 96, 64, 3)
    for frame, index in zip(frames, sample_frame_indices(12, 3)):
        assert np.abs(frame.astype(int) - content[index]).mean() < 3
    assert decode_frames(write_media(tmp_path / "plain.mp4", content[:4]), 1, info=info).shape == (1, 96, 64, 3)
    assert info["orientation"] is None


def test_display_orientation_by_hand():
    """Display matrices (16.16 fixed point, as mp4 stores them) -> ffmpeg's autorotation."""
    one = 1 << 16

    def matrix(a, b, c, d):
        return [a * one, b * one, 0, c * one, d * one, 0, 0, 0, 1 << 30]

    assert display_orientation(None) is None
    assert display_orientation(matrix(1, 0, 0, 1)) is None
    assert display_orientation(matrix(0, 1, -1, 0)) == "rotate90"  # iPhone portrait: mp4 rotate=90
    assert display_orientation(matrix(-1, 0, 0, -1)) == "rotate180"
    assert display_orientation(matrix(0, -1, 1, 0)) == "rotate270"
    assert display_orientation(matrix(-1, 0, 0, 1)) == "hflip"
    assert display_orientation(matrix(1, 0, 0, -1)) == "vflip"
    assert display_orientation(matrix(0, 1, 1, 0)) == "transpose"
    assert display_orientation(matrix(0, -1, -1, 0)) == "transverse"
    s = int(one * 0.7071)  # 45 degrees: left as stored (ffmpeg would rotate inside the frame, cutting corners)
    assert display_orientation([s, s, 0, -s, s, 0, 0, 0, 1 << 30]) is None


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command (apt-get install ffmpeg)")
@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
@pytest.mark.parametrize("hflip,vflip", [(False, False), (True, False), (False, True), (True, True)])
def test_upright_frames_equal_ffmpeg_autorotate(degrees, hflip, vflip, tmp_path):
    """All 16 display matrices PyAV writes: our frames equal the ``ffmpeg`` command's, bit for bit (lossless RGB)."""
    content = portrait_content(1)[0]
    path = tmp_path / "rgb.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=8)
        stream.width, stream.height, stream.pix_fmt, stream.options = 64, 96, "rgb24", {"qp": "0"}
        stream.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        for packet in stream.encode(av.VideoFrame.from_ndarray(content, format="rgb24")) + stream.encode():
            container.mux(packet)
    ours = decode_frames(path, 1)[0]
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    assert np.array_equal(np.frombuffer(raw, np.uint8).reshape(ours.shape), ours)
    assert set(ORIENTATIONS) >= {"rotate90", "rotate270"}


# ---------------------------------------------------------------------------------------------- CLAP


@pytest.fixture(scope="module")
def parity_clap(tmp_path_factory):
    """A random-weight CLAP on the real 10 s front end (LAION-layout loading: test_extract)."""
    import json

    config = tmp_path_factory.mktemp("parity_clap") / "parity_clap.json"
    config.write_text(json.dumps(PARITY_CLAP_CONFIG))
    torch.manual_seed(1)
    return load_clap(str(config), None, device="cpu")


def laion_embeddings(clap, windows: list[np.ndarray]) -> np.ndarray:
    """laion_clap's ``CLAP_Module.get_audio_embedding_from_data`` itself (its quantisation, repeat padding and
    projection), on the loaded audio tower (CLAP_Module() would download RoBERTa for its text side)."""
    from laion_clap import CLAP_Module

    module = types.SimpleNamespace(model=clap.model, model_cfg=clap.config, enable_fusion=False)
    with torch.no_grad():
        return CLAP_Module.get_audio_embedding_from_data(module, windows)


def documented_windows(wave: np.ndarray, window_s=5.0, hop_s=2.5) -> list[np.ndarray]:
    """5 s windows every 2.5 s plus one flush with the end (window_starts, by hand in test_extract)."""
    return [wave[s : s + int(window_s * 48000)] for s in window_starts(len(wave), int(window_s * 48000),
                                                                          int(hop_s * 48000), 16)]


def librosa_reference_wave(path, true_samples: int, rate: int) -> np.ndarray:
    """What librosa.load(sr=48000) gives: WAV through librosa itself; AAC (librosa would need the ffmpeg
    command) decoded by PyAV at its own rate, cut to the length written, mono, librosa's resampler (the
    steps of librosa.load)."""
    import librosa

    if str(path).endswith(".wav"):
        return librosa.load(str(path), sr=48000)[0]
    with av.open(str(path)) as container:
        wave = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)  # fltp (C, N)
    assert wave.shape[1] > true_samples  # the AAC encoder's padding is really there
    mono = wave[:, :true_samples].mean(axis=0)
    return librosa.resample(mono, orig_sr=rate, target_sr=48000)


AUDIO_CASES = {
    # name: (suffix, channels, layout, rate)
    "wav_stereo": (".wav", 2, "stereo", 44_100),
    "aac_mp4_stereo": (".mp4", 2, "stereo", 44_100),
    "aac_mp4_mono": (".mp4", 1, "mono", 48_000),
    "aac_mp4_5.1": (".mp4", 6, "5.1", 48_000),
    "wav_8khz": (".wav", 1, "mono", 8_000),
}


@pytest.mark.parametrize("case", sorted(AUDIO_CASES))
def test_clap_features_equal_laion_clap(case, parity_clap, tmp_path):
    suffix, channels, layout, rate = AUDIO_CASES[case]
    seconds = 6.0  # windows at 0 and 1 s: the second one flush with the end, where AAC pads
    frames = [make_frame(i, 32, 32) for i in range(12)] if suffix != ".wav" else None
    path = write_media(tmp_path / f"{case}{suffix}", frames, fps=2, wave=chirp_wave(seconds, rate, channels),
                       audio_rate=rate, layout=layout)
    true_samples = int(seconds * rate)
    wave = decode_audio(path)
    assert len(wave) == seconds * 48000  # the declared 6 s, no encoder padding
    reference_wave = librosa_reference_wave(path, true_samples, rate)
    assert len(wave) == len(reference_wave)
    ours = parity_clap.encode_video(path)
    reference = laion_embeddings(parity_clap, documented_windows(reference_wave))
    assert ours.shape == reference.shape == (2, 512)
    assert cosines(ours, reference).min() >= MIN_COSINE
    np.testing.assert_allclose(np.linalg.norm(ours.astype(np.float32), axis=-1), 1.0, atol=1e-3)  # unit norm


# ---------------------------------------------------------------------------------------------- extractors


def test_extractors_record_what_the_features_are(tiny_files, tmp_path, capsys):
    """The summary counts the videos turned upright; meta.json says normalisation, preprocessing, precision."""
    import json

    import videoblip2.features.audio as audio_cli
    import videoblip2.features.video as video_cli

    videos = tmp_path / "videos"
    videos.mkdir()
    write_media(videos / "phone.mp4", **VIDEO_CASES["rotate90"][0])
    write_media(videos / "plain.mp4", [make_frame(i, 96, 64) for i in range(8)], wave=chirp_wave(1.0, 44_100))
    out = tmp_path / "features"
    assert video_cli.main([str(videos), "--out", str(out), "--clip-model", tiny_files["clip_config"],
                           "--clip-pretrained", tiny_files["clip_ckpt"], "--num-frames", "2", "--device", "cpu", "--workers", "0"]) == 0
    assert "2 written, 0 failed, 1 turned upright by their display matrix" in capsys.readouterr().err
    assert audio_cli.main([str(videos), "--out", str(out), "--clap-model", tiny_files["clap_config"],
                           "--clap-pretrained", tiny_files["clap_ckpt"], "--window", "1", "--hop", "0.5", "--device", "cpu",
                           "--workers", "0"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    video, audio = meta["video"], meta["audio"]
    assert video["normalization"].startswith("none: raw open_clip encode_image output")
    assert "upright by the display matrix" in video["preprocessing"] and "CenterCrop" in video["preprocessing"]
    assert "Normalize(mean=" in video["preprocessing"] and video["precision"] == "fp32"
    assert audio["normalization"].startswith("L2: unit-norm") and audio["precision"] == "fp32"
    assert "declared start and duration" in audio["preprocessing"] and "soxr" in audio["preprocessing"]
    assert video["weights_sha256"].startswith("sha256:") and audio["ckpt_sha256"].startswith("sha256:")
