"""Small real media files for the extractor tests, written with PyAV (FFmpeg encoders).

Every frame carries its own index: the background grey level is ``frame_level(i)``, so a test can read
back which frames a decoder sampled. A white square moves across it (the "moving shape").
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

LEVEL_STEP = 12  # grey level per frame index: survives lossy coding with a wide margin


def frame_level(index: int) -> int:
    return 16 + LEVEL_STEP * index


def level_to_index(level: float) -> int:
    return int(round((level - 16) / LEVEL_STEP))


def make_frame(index: int, width: int, height: int) -> np.ndarray:
    """RGB uint8 (H, W, 3): flat grey ``frame_level(index)`` with a white 16x16 square moving right."""
    frame = np.full((height, width, 3), frame_level(index), dtype=np.uint8)
    x = (4 * index) % max(1, width - 16)
    frame[height // 2 - 8 : height // 2 + 8, x : x + 16] = 255
    return frame


def sine(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_video(
    path: str | Path,
    num_frames: int = 16,
    fps: int = 8,
    size: tuple[int, int] = (96, 64),
    audio: str | None = "sine",
    audio_rate: int = 44_100,
    channels: int = 2,
    freq: float = 440.0,
    video_codec: str | None = None,
    audio_codec: str | None = None,
    faststart: bool = False,
    tone_span: tuple[float, float] | None = None,
) -> Path:
    """Write ``num_frames`` frames at ``fps`` (+ an audio track: "sine", "silent" or None for none).

    ``tone_span=(start, end)``: the sine sounds in those seconds only, silence elsewhere (clip trimming tests).

    The container follows the suffix (.mp4 -> H.264 + AAC, .webm -> VP9 + Opus, .mkv -> H.264 + AAC).
    ``faststart`` puts the mp4 index (with the frame count) before the data.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    video_codec = video_codec or {".webm": "libvpx-vp9"}.get(suffix, "libx264")
    audio_codec = audio_codec or {".webm": "libopus"}.get(suffix, "aac")
    if audio_codec == "libopus":
        audio_rate = 48_000  # Opus only codes 48 kHz
    width, height = size
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        vstream = container.add_stream(video_codec, rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        if video_codec == "libx264":
            vstream.options = {"preset": "ultrafast", "crf": "18", "g": "4"}
        astream = None
        if audio is not None:
            layout = "stereo" if channels == 2 else "mono"
            astream = container.add_stream(audio_codec, rate=audio_rate, layout=layout)
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(make_frame(i, width, height), format="rgb24")
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            seconds = num_frames / fps
            wave = sine(seconds, audio_rate, freq) if audio == "sine" else np.zeros(int(seconds * audio_rate), np.float32)
            if tone_span is not None:
                t = np.arange(len(wave)) / audio_rate
                wave = np.where((t >= tone_span[0]) & (t < tone_span[1]), wave, 0).astype(np.float32)
            planes = np.stack([wave] * channels)  # (channels, samples), planar float
            chunk = 1024
            for start in range(0, planes.shape[1], chunk):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes[:, start : start + chunk]),
                                                   format="fltp", layout=layout)
                frame.sample_rate = audio_rate
                frame.pts = start
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path


def write_media(
    path: str | Path,
    frames: list[np.ndarray] | None = None,
    *,
    fps: float | Fraction = 8,
    frame_times: list[float] | None = None,
    start_s: float = 0.0,
    display_rotation: tuple[int, bool, bool] | None = None,
    wave: np.ndarray | None = None,
    audio_rate: int = 44_100,
    layout: str = "stereo",
    audio_codec: str | None = None,
) -> Path:
    """A file of any kind the parity tests need: the RGB ``frames`` (None: no video stream) at ``fps`` or stamped
    ``frame_times`` (seconds; variable frame rate), every stream starting ``start_s`` seconds late, with a
    display matrix ``(anticlockwise degrees, hflip, vflip)`` (PyAV ``set_display_rotation``: a player turns
    the stored frames by it), and the audio ``wave`` ``(channels, samples)`` in ``layout`` ("mono", "stereo",
    "5.1"). A .wav file holds only the wave (16-bit PCM); mp4/mov/mkv get H.264 + AAC.
    """
    path = Path(path)
    wav = path.suffix.lower() == ".wav"
    audio_codec = audio_codec or ("pcm_s16le" if wav else "aac")
    with av.open(str(path), "w") as container:
        vstream = None
        if frames is not None:
            vstream = container.add_stream("libx264", rate=fps)
            height, width = frames[0].shape[:2]
            vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
            vstream.options = {"preset": "ultrafast", "crf": "18", "g": "4"}
            if frame_times is not None:
                vstream.codec_context.time_base = Fraction(1, 1000)
            if display_rotation is not None:
                degrees, hflip, vflip = display_rotation
                vstream.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        astream = container.add_stream(audio_codec, rate=audio_rate, layout=layout) if wave is not None else None
        for i, image in enumerate(frames or []):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if frame_times is not None:
                frame.time_base = Fraction(1, 1000)
                frame.pts = int(round((start_s + frame_times[i]) * 1000))
            else:
                frame.time_base = 1 / Fraction(fps)
                frame.pts = i + int(round(start_s * fps))
            for packet in vstream.encode(frame):
                container.mux(packet)
        if vstream is not None:
            for packet in vstream.encode():
                container.mux(packet)
        if astream is not None:
            fmt = "s16p" if audio_codec == "pcm_s16le" else "fltp"
            data = np.clip(wave, -1, 1)
            data = (data * 32767).astype(np.int16) if fmt == "s16p" else data.astype(np.float32)
            offset = int(round(start_s * audio_rate))
            for begin in range(0, data.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, begin : begin + 1024]), format=fmt,
                                                   layout=layout)
                frame.sample_rate, frame.pts = audio_rate, offset + begin
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path


def chirp_wave(seconds: float, rate: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    """``(channels, samples)`` float32: a 200 Hz -> 3 kHz chirp plus noise, different in every channel and
    second (so moved windows give other features)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    chirp = 0.4 * np.sin(2 * np.pi * (200 * t + (2800 / (2 * seconds)) * t**2))
    rows = [chirp * (0.5 + 0.5 * np.cos(2 * np.pi * (c + 1) * t / seconds)) + 0.05 * rng.standard_normal(len(t))
            for c in range(channels)]
    return np.stack(rows).astype(np.float32)


def write_corrupt(path: str | Path, keep: float = 0.3) -> Path:
    """A truncated mp4: the first ``keep`` of a valid file (the index, written last, is lost)."""
    path = Path(path)
    write_video(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_truncated(path: str | Path, num_frames: int = 40, keep: float = 0.5) -> Path:
    """An mp4 whose header (written first) promises ``num_frames`` frames but whose data stops halfway."""
    path = Path(path)
    write_video(path, num_frames=num_frames, audio=None, faststart=True)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_media_set(folder: str | Path) -> dict[str, Path]:
    """The standard test set: two sounding videos, one without an audio stream, one silent, one corrupt."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "tone": write_video(folder / "tone.mp4", num_frames=20, fps=8),  # 2.5 s, 440 Hz stereo 44.1 kHz
        "webm": write_video(folder / "webm.webm", num_frames=12, fps=6, freq=880.0),  # 2 s, VP9 + Opus
        "mute": write_video(folder / "mute.mp4", num_frames=10, fps=5, audio=None),  # no audio stream
        "silent": write_video(folder / "silent.mkv", num_frames=10, fps=5, audio="silent"),
        "broken": write_corrupt(folder / "broken.mp4"),
    }


# ----------------------------------------------------------------------------------------------
# tiny extractor models (random weights, offline): now in the library


def tiny_extractor_files(root: str | Path) -> dict[str, str]:
    """``videoblip2.tiny.make_tiny_extractors(root)`` (kept for the tests and benchmarks that import it here)."""
    from videoblip2.tiny import make_tiny_extractors

    return make_tiny_extractors(root)
