"""videoblip2.extract: frame sampling and window cutting by hand, PyAV decoding of real files, and the CLIP/CLAP
encoders against the reference implementations (open_clip's preprocess + encode_image, laion_clap's
get_audio_embedding)."""

import numpy as np
import pytest
import torch
from PIL import Image

from media import level_to_index, write_truncated
from videoblip2.extract import (
    ExtractionError,
    ExtractorModelError,
    audio_windows,
    decode_audio,
    decode_frames,
    is_silent,
    load_clap,
    load_clip,
    probe_video,
    quantize_int16,
    repeat_pad,
    sample_frame_indices,
    window_starts,
)


@pytest.fixture(scope="module")
def clip(tiny_files):
    return load_clip(tiny_files["clip_config"], tiny_files["clip_ckpt"], device="cpu")


@pytest.fixture(scope="module")
def clap(tiny_files):
    return load_clap(tiny_files["clap_config"], tiny_files["clap_ckpt"], device="cpu")


def sampled_indices(frames: np.ndarray) -> list[int]:
    """Frame indices written into the test videos' grey background (top-left corner)."""
    return [level_to_index(frame[:8, :8].mean()) for frame in frames]


# ---------------------------------------------------------------------------------------------- pure


def test_sample_frame_indices_by_hand():
    assert sample_frame_indices(10, 4) == [1, 3, 6, 8]  # middles of [0,2.5) [2.5,5) [5,7.5) [7.5,10)
    assert sample_frame_indices(300, 3) == [50, 150, 250]
    assert sample_frame_indices(32, 32) == list(range(32))
    assert sample_frame_indices(4, 8) == [0, 1, 2, 3]  # short video: every frame once, no repeats
    assert sample_frame_indices(0, 8) == []
    # fps mode: 30 fps video, 1 frame per second -> middle of each second
    assert sample_frame_indices(300, 32, fps=1, native_fps=30) == list(range(15, 300, 30))
    # ... capped at num_frames by uniform thinning of those 10: positions [1, 3, 6, 8]
    assert sample_frame_indices(300, 4, fps=1, native_fps=30) == [45, 105, 195, 255]
    assert sample_frame_indices(5, 32, fps=1, native_fps=30) == [2]  # shorter than one segment: its middle
    with pytest.raises(ValueError):
        sample_frame_indices(10, 4, fps=1, native_fps=None)


def test_sample_frame_indices_fps_step_not_integer():
    # 10 fps -> 4 fps: segments of 2.5 frames, middles at 1.25, 3.75, 6.25, ... -> floor
    assert sample_frame_indices(10, 32, fps=4, native_fps=10) == [1, 3, 6, 8]


def test_window_starts_by_hand():
    assert window_starts(10, 4, 2) == [0, 2, 4, 6]  # 6 + 4 = 10 reaches the end
    assert window_starts(11, 4, 2) == [0, 2, 4, 6, 7]  # one more window flush with the end
    assert window_starts(4, 4, 2) == [0]
    assert window_starts(3, 4, 2) == [0]  # shorter than a window: one (repeat-padded) window
    assert window_starts(0, 4, 2) == []
    assert window_starts(20, 5, 10) == [0, 10, 15]  # hop > window leaves gaps, the end is still covered
    assert window_starts(100, 10, 5, max_windows=4) == [0, 30, 60, 90]  # 19 windows -> 4 spread evenly
    assert window_starts(100, 10, 5, max_windows=19) == list(range(0, 91, 5))  # exactly at the cap: unchanged
    assert window_starts(100, 10, 5, max_windows=1) == [45]
    # defaults at 48 kHz: a 30 s clip -> 11 windows of 5 s every 2.5 s; a 60 s clip -> 16 spread windows
    assert len(window_starts(30 * 48000, 5 * 48000, 120000, 16)) == 11
    assert window_starts(60 * 48000, 5 * 48000, 120000, 16)[-1] == 55 * 48000
    with pytest.raises(ValueError):
        window_starts(10, 0, 2)


def test_quantize_and_repeat_pad_match_laion():
    from laion_clap.training.data import float32_to_int16  # imported by the clap fixture offline

    wave = np.array([0.0, 0.5, -0.5, 1.5, -2.0, 0.99999], dtype=np.float32)
    np.testing.assert_array_equal(quantize_int16(wave), float32_to_int16(wave))
    padded = repeat_pad(torch.tensor([1.0, 2.0, 3.0]), 8)
    assert padded.tolist() == [1, 2, 3, 1, 2, 3, 0, 0]


# ---------------------------------------------------------------------------------------------- decoding


def test_decode_frames_reads_the_sampled_frames(media):
    assert probe_video(media["tone"]) == (20, 8.0)
    frames = decode_frames(media["tone"], 4)
    assert frames.shape == (4, 64, 96, 3) and frames.dtype == np.uint8
    assert sampled_indices(frames) == sample_frame_indices(20, 4) == [2, 7, 12, 17]
    # webm (VP9): the header has no frame count, packets are counted
    assert probe_video(media["webm"])[0] == 12
    assert sampled_indices(decode_frames(media["webm"], 4)) == [1, 4, 7, 10]
    # fewer frames than asked: all of them, once
    assert sampled_indices(decode_frames(media["mute"], 32)) == list(range(10))
    # --fps: 8 fps video at 2 fps -> middles of 4-frame segments
    assert sampled_indices(decode_frames(media["tone"], 32, fps=2)) == [2, 6, 10, 14, 18]


def test_decode_frames_truncated_file_samples_what_decodes(tmp_path):
    import av

    path = write_truncated(tmp_path / "cut.mp4", num_frames=40)
    assert probe_video(path)[0] == 40  # the header still promises 40 frames
    decodable = 0
    with av.open(str(path)) as container:  # reference: count what FFmpeg really decodes
        try:
            for _ in container.decode(video=0):
                decodable += 1
        except av.FFmpegError:
            pass
    assert 0 < decodable < 40
    assert sampled_indices(decode_frames(path, 4)) == sample_frame_indices(decodable, 4)


def test_decode_errors_name_the_file(media, tmp_path):
    with pytest.raises(ExtractionError, match="broken.mp4: cannot open"):
        decode_frames(media["broken"])
    with pytest.raises(ExtractionError, match="no such file"):
        decode_frames(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ExtractionError, match="empty file"):
        decode_audio(tmp_path / "empty.mp4")


def test_decode_audio_mono_48k(media):
    wave = decode_audio(media["tone"])  # stereo 44.1 kHz AAC, 440 Hz at amplitude 0.5, 2.5 s
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 2.5 * 48000) < 4096  # AAC adds a few priming/padding samples
    middle = wave[24000:96000]
    spectrum = np.abs(np.fft.rfft(middle))
    assert np.fft.rfftfreq(len(middle), 1 / 48000)[spectrum.argmax()] == pytest.approx(440, abs=2)
    assert np.abs(middle).max() == pytest.approx(0.5, abs=0.05)  # (L+R)/2, not a -3 dB/+3 dB matrix
    webm = decode_audio(media["webm"])  # Opus, 880 Hz
    spectrum = np.abs(np.fft.rfft(webm[12000:84000]))
    assert np.fft.rfftfreq(72000, 1 / 48000)[spectrum.argmax()] == pytest.approx(880, abs=2)
    assert decode_audio(media["mute"]) is None  # no audio stream
    assert is_silent(decode_audio(media["silent"])) and not is_silent(wave)


def test_audio_windows_are_quantised_views(media):
    wave = decode_audio(media["tone"])
    windows = audio_windows(wave, window_s=1.0, hop_s=0.5, max_windows=16)
    starts = window_starts(len(wave), 48000, 24000, 16)
    assert len(windows) == len(starts)
    q = quantize_int16(wave)
    for start, window in zip(starts, windows):
        assert window.dtype == np.int16
        np.testing.assert_array_equal(window, q[start : start + 48000])


# ---------------------------------------------------------------------------------------------- CLIP


def test_clip_preprocessing_equals_open_clip_transform(clip, media):
    frame = decode_frames(media["tone"], 1)[0]  # full resolution RGB, as PyAV decodes it
    image = Image.fromarray(frame)
    reference = clip.preprocess(image)  # open_clip's own eval transform: (3, 224, 224)
    ours = clip.normalize(torch.from_numpy(np.array(clip.prepare(image)))[None])[0]
    assert ours.shape == reference.shape == (3, 224, 224)
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=0)
    # the decode path with transform gives the same uint8 pixels
    prepared = decode_frames(media["tone"], 1, transform=clip.prepare)[0]
    np.testing.assert_array_equal(prepared, np.asarray(clip.prepare(image)))


def test_clip_video_features_equal_encode_image(clip, media):
    features = clip.encode_video(media["tone"], 4)
    assert features.shape == (4, 768) and features.dtype == np.float16
    frames = decode_frames(media["tone"], 4)
    with torch.no_grad():
        reference = clip.model.encode_image(torch.stack([clip.preprocess(Image.fromarray(f)) for f in frames]))
    np.testing.assert_allclose(features.astype(np.float32), reference.numpy(), atol=2e-3, rtol=1e-2)
    assert not np.allclose(features[0], features[-1])  # different frames, different features


def test_clip_pooled_layer_is_pre_projection(tiny_files, clip, media):
    pooled = load_clip(tiny_files["clip_config"], tiny_files["clip_ckpt"], layer="pooled", device="cpu")
    assert pooled.dim == 64  # ViT width, before the 64 -> 768 projection
    frames = decode_frames(media["tone"], 3, transform=clip.prepare)
    torch.testing.assert_close(pooled.encode(frames) @ clip.model.visual.proj, clip.encode(frames),
                               atol=1e-4, rtol=1e-4)


def test_load_clip_errors(tiny_files, tmp_path):
    with pytest.raises(ExtractorModelError, match="unknown open_clip model"):
        load_clip("ViT-Nope-1", None)
    with pytest.raises(ExtractorModelError, match="neither a file nor an open_clip tag"):
        load_clip(tiny_files["clip_config"], str(tmp_path / "missing.pt"))


# ---------------------------------------------------------------------------------------------- CLAP


def test_clap_windows_equal_laion_get_audio_embedding(clap, media):
    from laion_clap.training.data import float32_to_int16, get_audio_features, int16_to_float32

    wave = decode_audio(media["tone"])
    windows = [wave[:48000], wave[30000:54000], wave[:96000]]  # 1 s, a short 0.5 s one, 2 s (repeat-padded to 10 s)
    ours = clap.encode([quantize_int16(w) for w in windows])
    assert ours.shape == (3, 512)
    torch.testing.assert_close(ours.norm(dim=-1), torch.ones(3))
    reference = []
    with torch.no_grad():
        for w in windows:  # CLAP_Module.get_audio_embedding_from_data, one window at a time
            x = torch.from_numpy(int16_to_float32(float32_to_int16(w))).float()
            sample = get_audio_features({}, x, clap.clip_samples, data_truncating="rand_trunc",
                                        data_filling="repeatpad", audio_cfg=clap.config["audio_cfg"])
            reference.append(clap.model.get_audio_embedding([sample])[0])
    torch.testing.assert_close(ours, torch.stack(reference), atol=1e-5, rtol=1e-4)
    # float windows are quantised the same way
    torch.testing.assert_close(clap.encode(windows), ours)


def test_clap_encode_video(clap, media):
    features = clap.encode_video(media["tone"], window_s=1.0, hop_s=0.5, max_windows=16)
    n = len(window_starts(len(decode_audio(media["tone"])), 48000, 24000, 16))
    assert features.shape == (n, 512) and features.dtype == np.float16
    assert clap.encode_video(media["mute"]) is None and clap.encode_video(media["silent"]) is None
    with pytest.raises(ValueError, match="longer than CLAP"):  # the tiny model's input is CLAP's 10 s
        clap.encode([np.zeros(clap.clip_samples + 1, dtype=np.float32)])
    assert clap.clip_samples == 10 * 48000


def test_clap_checkpoint_round_trip_and_errors(clap, tiny_files, tmp_path, media):
    windows = audio_windows(decode_audio(media["webm"]), 1.0, 1.0, None)
    again = load_clap(tiny_files["clap_config"], tiny_files["clap_ckpt"], device="cpu")
    torch.testing.assert_close(again.encode(windows), clap.encode(windows))

    state = torch.load(tiny_files["clap_ckpt"])["state_dict"]
    key = next(k for k in state if "audio_projection" in k)
    torch.save({"state_dict": {k: v for k, v in state.items() if k != key}}, tmp_path / "missing.pt")
    with pytest.raises(ExtractorModelError, match="1 missing"):
        load_clap(tiny_files["clap_config"], str(tmp_path / "missing.pt"))
    torch.save({"text_branch.x": torch.zeros(1)}, tmp_path / "text_only.pt")
    with pytest.raises(ExtractorModelError, match="no CLAP audio weights"):
        load_clap(tiny_files["clap_config"], str(tmp_path / "text_only.pt"))
    with pytest.raises(ExtractorModelError, match="unknown CLAP audio model"):
        load_clap("HTSAT-huge")


class _RunsCode:
    """Unpickling this calls os.system: what a crafted .pt file would do if it were loaded with plain pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_clap_checkpoint_never_runs_code_and_laion_layout_loads(clap, tiny_files, tmp_path, media):
    """A LAION-style file (epoch, name, state_dict, optimizer with numpy learning rates, scaler) loads with the
    two allowed numpy globals; a crafted file is refused, one line naming the file and the global, and its
    payload never runs (issue 19: the old code retried such files with weights_only=False)."""
    state = torch.load(tiny_files["clap_ckpt"], weights_only=True)["state_dict"]
    laion = {"epoch": 45, "name": "630k-audioset", "state_dict": state,
             "optimizer": {"state": {}, "param_groups": [{"lr": np.float64(1e-4) * 0.5, "betas": (0.9, 0.99),
                                                          "eps": 1e-9, "params": [0, 1]}]},
             "scaler": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 0}}
    torch.save(laion, tmp_path / "laion.pt")
    windows = audio_windows(decode_audio(media["webm"]), 1.0, 1.0, None)
    again = load_clap(tiny_files["clap_config"], str(tmp_path / "laion.pt"), device="cpu")
    torch.testing.assert_close(again.encode(windows), clap.encode(windows))

    marker = tmp_path / "ran"
    torch.save({"state_dict": state, "epoch": 1, "extra": _RunsCode(marker)}, tmp_path / "crafted.pt")
    with pytest.raises(ExtractorModelError) as error:
        load_clap(tiny_files["clap_config"], str(tmp_path / "crafted.pt"))
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "crafted.pt") in message and "system" in message
    assert not marker.exists()
