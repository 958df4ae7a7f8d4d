"""Feature extraction core: video file -> CLIP frame features ``[T_v, D]`` and CLAP audio features ``[T_a, 512]``.

Used by the batch extractors (``python -m features.video`` / ``features.audio``, which add worker processes,
cross-video GPU batching, resume and sharding) and by ``videoblip2.caption`` (one video at a time).

Frames: decoded with PyAV (FFmpeg), ``num_frames`` sampled uniformly (the middle frame of equal segments,
:func:`sample_frame_indices`), turned upright by the stream's display matrix as players and ``ffmpeg`` show
them (:func:`display_orientation`), resized and cropped by the CLIP model's own ``preprocess`` (PIL),
normalised on the model's device. Audio: decoded with PyAV, cut to the stream's declared start and duration
(no encoder padding), averaged to mono and resampled to CLAP's 48 kHz as ``librosa.load`` does, quantised to
int16 as CLAP does, cut into windows (:func:`window_starts`) and embedded with LAION CLAP's audio tower.

Needs the ``features`` extra: ``av``, ``open_clip_torch``, ``laion-clap``, ``Pillow``, ``soxr`` (librosa's resampler).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .data import uniform_indices
from .defaults import (  # noqa: F401  (re-exported: the extraction settings' defaults)
    CLAP_SAMPLE_RATE,
    CLIP_LAYERS,
    DEFAULT_CLAP_MODEL,
    DEFAULT_CLIP_MODEL,
    DEFAULT_CLIP_PRETRAINED,
    DEFAULT_HOP_S,
    DEFAULT_MAX_WINDOWS,
    DEFAULT_NUM_FRAMES,
    DEFAULT_SILENCE_THRESHOLD,
    DEFAULT_WINDOW_S,
    VIDEO_EXTENSIONS,
)
from .ids import check_video_id
from .noinit import skip_init

logger = logging.getLogger(__name__)

_CLAP_AUDIO_PREFIXES = ("audio_branch.", "audio_projection.", "audio_transform.")
# Buffers a checkpoint may lack: they are recomputed deterministically from the architecture.
_CLAP_DERIVED_BUFFERS = ("relative_position_index", "attn_mask", "num_batches_tracked")


class ExtractionError(RuntimeError):
    """A video file, or its audio track, cannot be decoded; the message names the file."""


class ExtractorModelError(RuntimeError):
    """A CLIP/CLAP model or checkpoint cannot be built or loaded as asked."""


# ----------------------------------------------------------------------------------------------
# pure helpers


def videos_in(folder: str | os.PathLike) -> list[Path]:
    """The video files (by extension, ``VIDEO_EXTENSIONS``) under ``folder``, searched recursively, sorted.

    Raises:
        UnsafeIdError: a file whose stem (its video id) breaks :func:`videoblip2.ids.check_video_id` (a name
            too long for ``{id}.noaudio.json``; ``...mp4``, whose stem is ``..``).
    """
    files = [f for f in sorted(Path(folder).rglob("*")) if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS]
    for file in files:
        check_video_id(file.stem, f"{file}: file name")
    return files


def sample_frame_indices(
    num_total: int,
    num_frames: int = DEFAULT_NUM_FRAMES,
    *,
    fps: float | None = None,
    native_fps: float | None = None,
) -> list[int]:
    """Indices of the frames to keep from a video of ``num_total`` frames.

    Default: ``num_frames`` frames spread uniformly -- the middle frame of ``num_frames`` equal segments,
    ``floor((i + 0.5) * num_total / num_frames)`` (``videoblip2.data.uniform_indices``); a video with fewer
    frames keeps all of them (no duplicates). E.g. ``sample_frame_indices(10, 4) -> [1, 3, 6, 8]``.

    With ``fps``: one frame every ``1/fps`` seconds, again the middle of each ``native_fps/fps``-frame
    segment, ``floor((i + 0.5) * native_fps / fps)``; if that gives more than ``num_frames`` frames they
    are thinned uniformly to ``num_frames``. E.g. 300 frames at 30 fps with ``fps=1`` -> ``[15, 45, ..., 285]``.

    Returns:
        Strictly increasing list of ``min(num_frames, ...)`` indices in ``[0, num_total)``.
    """
    if num_total <= 0:
        return []
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if fps is None:
        return uniform_indices(num_total, num_frames).tolist()
    if fps <= 0 or not native_fps or native_fps <= 0:
        raise ValueError(f"fps sampling needs fps > 0 and the video's native fps, got {fps}, {native_fps}")
    step = native_fps / fps
    indices: list[int] = []
    i = 0
    while True:
        index = int(math.floor((i + 0.5) * step + 1e-9))
        if index >= num_total:
            break
        if not indices or index > indices[-1]:
            indices.append(index)
        i += 1
    if not indices:  # video shorter than one segment: its middle frame
        indices = [num_total // 2]
    return [indices[j] for j in uniform_indices(len(indices), num_frames).tolist()]


def window_starts(num_samples: int, window: int, hop: int, max_windows: int | None = None) -> list[int]:
    """Start sample of each audio window of ``window`` samples over a track of ``num_samples`` samples.

    Windows start every ``hop`` samples; if the last one stops short of the end, one more window is
    placed flush with the end, so the whole track is covered. A track no longer than one window gives the
    single window ``[0]`` (CLAP repeat-pads it). If that gives more than ``max_windows`` windows, exactly
    ``max_windows`` are spread evenly from the start to the end instead: ``start_i = i * (N - window) //
    (max_windows - 1)``.

    E.g. ``window_starts(10, 4, 2) -> [0, 2, 4, 6]``, ``window_starts(11, 4, 2) -> [0, 2, 4, 6, 7]``,
    ``window_starts(100, 10, 5, max_windows=4) -> [0, 30, 60, 90]``.
    """
    if window < 1 or hop < 1:
        raise ValueError(f"window and hop must be >= 1 sample, got {window}, {hop}")
    if max_windows is not None and max_windows < 1:
        raise ValueError(f"max_windows must be >= 1, got {max_windows}")
    if num_samples <= 0:
        return []
    if num_samples <= window:
        return [0]
    last = num_samples - window
    starts = list(range(0, last + 1, hop))
    if starts[-1] < last:
        starts.append(last)
    if max_windows is not None and len(starts) > max_windows:
        if max_windows == 1:
            return [last // 2]
        starts = [i * last // (max_windows - 1) for i in range(max_windows)]
    return starts


def quantize_int16(wave: np.ndarray) -> np.ndarray:
    """CLAP's input quantisation (``laion_clap ... float32_to_int16``): clip to [-1, 1], scale, truncate."""
    return (np.clip(wave, -1.0, 1.0) * 32767.0).astype(np.int16)


def repeat_pad(wave: torch.Tensor, length: int) -> torch.Tensor:
    """CLAP's ``repeatpad`` filling: repeat a short 1-D wave whole as often as fits, then zero-pad to ``length``."""
    n = wave.shape[-1]
    if n == 0 or n > length:
        raise ValueError(f"repeat_pad needs 0 < len(wave) <= {length}, got {n}")
    wave = wave.repeat(length // n)
    return F.pad(wave, (0, length - wave.shape[-1]))


# ----------------------------------------------------------------------------------------------
# decoding


def _av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("video decoding needs PyAV: pip install 'videoblip2[features]'") from e
    return av


@contextlib.contextmanager
def _open_media(path: str | os.PathLike):
    av = _av()
    path = str(path)
    if not os.path.isfile(path):
        raise ExtractionError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise ExtractionError(f"{path}: empty file")
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError) as e:
        raise ExtractionError(f"{path}: cannot open ({e})") from None
    try:
        yield container
    finally:
        container.close()


Segment = tuple[float, float]  # (start, end) in seconds from the file's start; end excluded
_SEGMENT_TOLERANCE = 1e-3  # seconds: a frame stamped 1.9999 belongs to a segment starting at 2


def in_segment(time: float, segment: Segment) -> bool:
    """True if a frame (or sample) stamped ``time`` seconds lies in ``[start, end)`` (1 ms tolerance)."""
    start, end = segment
    return start - _SEGMENT_TOLERANCE <= time < end - _SEGMENT_TOLERANCE


def check_segment(segment: Segment | None) -> Segment | None:
    if segment is not None and not (0 <= segment[0] < segment[1] and math.isfinite(segment[1])):
        raise ValueError(f"a segment needs 0 <= start < end, got {segment}")
    return segment


def segment_in_video(path: str | os.PathLike, segment: Segment) -> tuple[Segment, str | None]:
    """The part of a clip's ``segment`` (seconds) that the video at ``path`` holds, and a note if it was cut.

    Both extractors use it, so they agree: a segment starting at or after the end of the video is an
    ExtractionError (a failure, not silence); one that runs past the end is cut to the end, and the note
    (``"segment 5-15 s runs past the end of the video (12.0 s): features of 5-12 s"``) says so. A container
    that does not record its duration is taken at its word (the segment as given).

    Raises:
        ExtractionError: the file cannot be opened, or the segment lies outside the video.
    """
    check_segment(segment)
    with _open_media(path) as container:
        duration = container.duration / 1_000_000 if container.duration else None  # AV_TIME_BASE units
        if duration is None and container.streams.video:
            stream = container.streams.video[0]
            if stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
    start, end = segment
    if duration is None or end <= duration + _SEGMENT_TOLERANCE:
        return segment, None
    if start >= duration - _SEGMENT_TOLERANCE:
        raise ExtractionError(f"{path}: the segment {start:g}-{end:g} s starts after the end of the video "
                              f"({duration:.2f} s)")
    return (start, duration), (f"segment {start:g}-{end:g} s runs past the end of the video ({duration:.2f} s): "
                               f"features of {start:g}-{duration:.2f} s")


def _file_start(container) -> float:
    """Seconds at which the file starts (its earliest stream): 0 for most mp4s, e.g. 1.4 for MPEG-TS."""
    start = container.start_time
    return float(start) / 1_000_000 if start is not None and start > 0 else 0.0  # AV_TIME_BASE units


def _absolute(container, segment: Segment | None) -> Segment | None:
    """A segment (seconds from the file's start, as players and ``ffmpeg -ss`` count) in presentation time."""
    if segment is None:
        return None
    start = _file_start(container)
    return segment[0] + start, segment[1] + start


def probe_video(path: str | os.PathLike, segment: Segment | None = None) -> tuple[int, float | None]:
    """(frame count, native fps) of the first video stream; the count is the container's, else one per packet.

    With ``segment``: the count of frames whose timestamps lie in it (packets are counted, nothing decoded).
    """
    av = _av()
    check_segment(segment)
    with _open_media(path) as container:
        if not container.streams.video:
            raise ExtractionError(f"{path}: no video stream")
        stream = container.streams.video[0]
        native_fps = float(stream.average_rate) if stream.average_rate else None
        segment = _absolute(container, segment)
        if segment is None and stream.frames and stream.frames > 0:
            return int(stream.frames), native_fps
        try:  # webm/mkv headers carry no count: demux (no decoding) and count the packets
            packets = (p for p in container.demux(stream) if p.size > 0)
            if segment is None:
                return sum(1 for _ in packets), native_fps
            return sum(1 for p in packets if p.pts is not None and in_segment(float(p.pts * p.time_base), segment)), \
                native_fps
        except av.FFmpegError as e:
            raise ExtractionError(f"{path}: cannot read ({e})") from None


def _seek(container, stream, start: float) -> None:
    """Seek to the keyframe at or before ``start`` seconds (decoding then runs forward to it)."""
    if start > 0 and stream.time_base:
        container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)


def _decode_at(path: str | os.PathLike, indices: Sequence[int], convert: Callable,
               threads: int = 0, segment: Segment | None = None) -> tuple[list, int]:
    """Decode frames up to ``max(indices)``; returns (converted frames at ``indices``, frames decoded).

    With ``segment`` the frames are counted from the first one in the segment, and those after it are not
    reached.

    Decoding stops at the first error once some frames came out (a truncated file) and reports how far it
    got; a file where nothing decodes raises ExtractionError.
    """
    av = _av()
    wanted = {index: slot for slot, index in enumerate(indices)}
    out: list = [None] * len(indices)
    decoded = 0
    with _open_media(path) as container:
        if not container.streams.video:
            raise ExtractionError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads inside FFmpeg
        if threads > 0:
            stream.thread_count = threads
        segment = _absolute(container, segment)
        try:
            if segment is not None:
                _seek(container, stream, segment[0])
            for frame in container.decode(stream):
                if segment is not None and frame.time is not None and not in_segment(frame.time, segment):
                    if frame.time >= segment[1] - _SEGMENT_TOLERANCE:
                        break
                    continue  # before the segment: decoded from the keyframe on, not kept
                if decoded in wanted:
                    out[wanted[decoded]] = convert(frame)
                decoded += 1
                if decoded > indices[-1]:
                    break
        except av.FFmpegError as e:
            if decoded == 0:
                raise ExtractionError(f"{path}: cannot decode video ({e})") from None
            logger.warning("%s: decoding stopped after %d frames (%s)", path, decoded, e)
    return out, decoded


# ----------------------------------------------------------------------------------------------
# display matrix (rotated phone videos)

# How to turn a stored frame upright, by name: clockwise rotations (as the old mp4 ``rotate`` tag counts) and
# mirrorings; ``transpose`` mirrors over the main diagonal, ``transverse`` over the other one. The PIL
# operation of each is a lossless pixel permutation.
ORIENTATIONS = ("rotate90", "rotate180", "rotate270", "hflip", "vflip", "transpose", "transverse")


def _pil_transpose(orientation: str):
    from PIL import Image

    T = Image.Transpose
    return {"rotate90": T.ROTATE_270, "rotate180": T.ROTATE_180, "rotate270": T.ROTATE_90,  # PIL: anticlockwise
            "hflip": T.FLIP_LEFT_RIGHT, "vflip": T.FLIP_TOP_BOTTOM, "transpose": T.TRANSPOSE,
            "transverse": T.TRANSVERSE}[orientation]


def display_orientation(matrix: Sequence[int] | None) -> str | None:
    """What turns a frame upright, from its 3x3 display matrix (FFmpeg's ``AV_FRAME_DATA_DISPLAYMATRIX``: nine
    int32, 16.16 fixed point): one of :data:`ORIENTATIONS`, or None for none / no matrix.

    The same decision as ``ffmpeg``'s and ``ffplay``'s autorotation (``fftools``: ``get_rotation`` then
    ``transpose`` / ``hflip`` / ``vflip`` filters), so frames come out as players show them. A rotation that
    is not a multiple of 90 degrees (never written by cameras) is left as it is, with a warning.
    """
    if matrix is None:
        return None
    a, b, c, d = (float(matrix[i]) / 65536.0 for i in (0, 1, 3, 4))
    scale_x, scale_y = math.hypot(a, c), math.hypot(b, d)
    if scale_x == 0 or scale_y == 0:
        return None
    # av_display_rotation_get: the anticlockwise angle; fftools' get_rotation: clockwise, rounded, in [0, 360)
    theta = float(-round(-math.degrees(math.atan2(b / scale_y, a / scale_x))))
    theta -= 360.0 * math.floor(theta / 360.0 + 0.9 / 360.0)
    if abs(theta - 90) < 1.0:
        return "transpose" if matrix[3] > 0 else "rotate90"
    if abs(theta - 270) < 1.0:
        return "transverse" if matrix[3] < 0 else "rotate270"
    if abs(theta - 180) < 1.0:
        return {(True, True): "rotate180", (True, False): "hflip", (False, True): "vflip"}.get(
            (matrix[0] < 0, matrix[4] < 0))
    if abs(theta) < 1.0:
        return "vflip" if matrix[4] < 0 else None
    logger.warning("display matrix rotates by %g degrees: not a multiple of 90, frames kept as stored", theta)
    return None


def frame_orientation(frame) -> str | None:
    """:func:`display_orientation` of a decoded PyAV video frame (its display-matrix side data, which FFmpeg
    copies from the stream: the mp4/mov track matrix, Matroska's projection, an H.264/HEVC SEI)."""
    from av.sidedata.sidedata import Type

    data = frame.side_data.get(Type.DISPLAYMATRIX)
    if data is None:
        return None
    return display_orientation(np.frombuffer(bytes(data), dtype=np.int32)[:9].tolist())


def orient(image, orientation: str | None):
    """A PIL image turned by one of :data:`ORIENTATIONS` (None: unchanged)."""
    return image if orientation is None else image.transpose(_pil_transpose(orientation))


def upright_image(frame):
    """A decoded PyAV video frame as an RGB PIL image, the way players show it (display matrix applied)."""
    return orient(frame.to_image(), frame_orientation(frame))


class SampledFrames(NamedTuple):
    """What :func:`decode_sampled_frames` returns: the kept frames and where they were in the video."""

    frames: np.ndarray  # uint8 (T, H, W, 3), or the stacked outputs of `transform`
    indices: np.ndarray  # int64 (T,): frame numbers, counted from the first frame (of the segment)
    times: np.ndarray  # float64 (T,): presentation times in seconds (index / fps where the file gives none)


def decode_frames(
    path: str | os.PathLike,
    num_frames: int = DEFAULT_NUM_FRAMES,
    *,
    fps: float | None = None,
    transform: Callable[[Any], Any] | None = None,
    threads: int = 0,
    segment: Segment | None = None,
    info: dict[str, Any] | None = None,
) -> np.ndarray:
    """Decode the sampled frames of a video as RGB: uint8 ``(T, H, W, 3)``, ``T = len(sample_frame_indices)``.

    Frames come out upright, as players show them: a rotated or mirrored stream (phones store portrait video
    as landscape frames plus a display matrix) is turned by its display matrix (:func:`upright_image`), so a
    portrait video gives portrait frames.

    With ``segment=(start, end)`` (seconds from the file's start, as ``ffmpeg -ss`` counts) only the frames
    in ``[start, end)`` are sampled from: a clip cut out of a longer video (VATEX, MSVD and MSR-VTT clips are
    segments of YouTube videos).

    Args:
        path: the video file.
        num_frames: frames to keep (see :func:`sample_frame_indices`).
        fps: sample at this rate instead (at most ``num_frames`` frames).
        transform: applied to each kept frame as a PIL image (e.g. CLIP's resize + centre crop, see
            :meth:`ClipFrameEncoder.prepare`); its output must be a PIL image or an ``(H, W, 3)`` array.
        threads: FFmpeg decoding threads (0: FFmpeg's choice, one per core; give less in worker processes).
        segment: ``(start_s, end_s)`` to sample from instead of the whole video.
        info: if given, filled with ``{"orientation": ...}``: the :data:`ORIENTATIONS` name that turned the
            frames upright, None for an upright stream.

    Raises:
        ExtractionError: the file cannot be opened, has no video stream or no decodable frame (in the segment).
    """
    return decode_sampled_frames(path, num_frames, fps=fps, transform=transform, threads=threads,
                                 segment=segment, info=info).frames


def decode_sampled_frames(
    path: str | os.PathLike,
    num_frames: int = DEFAULT_NUM_FRAMES,
    *,
    fps: float | None = None,
    transform: Callable[[Any], Any] | None = None,
    threads: int = 0,
    segment: Segment | None = None,
    info: dict[str, Any] | None = None,
) -> SampledFrames:
    """:func:`decode_frames` with the sampled frames' indices and presentation times (same arguments)."""
    total, native_fps = probe_video(path, segment)
    if fps is not None and native_fps is None:
        raise ExtractionError(f"{path}: unknown frame rate, cannot sample at --fps {fps}")

    orientations: set[str | None] = set()

    def convert(frame):
        orientation = frame_orientation(frame)
        orientations.add(orientation)
        image = orient(frame.to_image(), orientation)
        if transform is not None:
            image = transform(image)
        return np.asarray(image, dtype=np.uint8), frame.time

    indices = sample_frame_indices(total, num_frames, fps=fps, native_fps=native_fps)
    if not indices:
        where = f" in the segment {segment[0]:g}-{segment[1]:g} s" if segment is not None else ""
        raise ExtractionError(f"{path}: the video stream has no frames{where}")
    frames, decoded = _decode_at(path, indices, convert, threads, segment)
    if any(frame is None for frame in frames):
        # The header promised more frames than the file holds (truncated file, wrong metadata):
        # sample again over the frames that really decode.
        indices = sample_frame_indices(decoded, num_frames, fps=fps, native_fps=native_fps)
        frames, _ = _decode_at(path, indices, convert, threads, segment)
        if any(frame is None for frame in frames):
            raise ExtractionError(f"{path}: frames disappeared between two decodes")
    if info is not None:
        info["orientation"] = next(iter(orientations)) if len(orientations) == 1 else \
            ",".join(sorted(str(o) for o in orientations))
    times = [t if t is not None else i / (native_fps or 1.0) for (_, t), i in zip(frames, indices)]
    return SampledFrames(np.stack([image for image, _ in frames]), np.asarray(indices, dtype=np.int64),
                         np.asarray(times, dtype=np.float64))


def media_duration(path: str | os.PathLike) -> float | None:
    """The file's duration in seconds as its container (else its first video stream) states it; None if unknown."""
    av = _av()
    with _open_media(path) as container:
        if container.duration:
            return float(container.duration / av.time_base)
        for stream in container.streams.video:
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
    return None


def _declared_span(stream) -> tuple[float | None, float | None]:
    """(start, end) seconds of an audio stream as its container declares them (mp4/mov: the edit list and the
    track duration; None where it says nothing, e.g. Matroska's tracks have no duration)."""
    base = stream.time_base
    if not base or stream.start_time is None:
        return None, None
    start = float(stream.start_time * base)
    return start, (start + float(stream.duration * base) if stream.duration and stream.duration > 0 else None)


def decode_audio(path: str | os.PathLike, sample_rate: int = CLAP_SAMPLE_RATE,
                 segment: Segment | None = None) -> np.ndarray | None:
    """The first audio track as float32 mono at ``sample_rate``: ``(N,)``; None if the file has no audio stream.

    The track is what the container declares: from the stream's start to its start + duration (an mp4's edit
    list and track duration), so the AAC encoder's end padding (up to 1023 samples of not-quite-silence that
    FFmpeg decodes) and samples before the start are cut, as ``ffmpeg`` and players do. A container that
    declares no duration (Matroska, WebM: Opus trims itself) keeps every decoded sample.

    With ``segment=(start, end)`` (seconds from the file's start) only the samples of ``[start, end)`` are
    returned (decoding seeks to the start and stops after the end).

    The samples are what ``librosa.load(path, sr=sample_rate)`` gives (what laion_clap's own file loader
    uses): the channels averaged (a plain mean, whatever FFmpeg's downmix matrix would be), then resampled
    by soxr at librosa's default quality ("soxr_hq") to ``ceil(n * sample_rate / rate)`` samples.

    Raises:
        ExtractionError: the file cannot be opened, or its audio stream cannot be decoded at all.
    """
    av = _av()
    check_segment(segment)
    chunks: list[np.ndarray] = []
    first_time: float | None = None  # seconds of the first decoded sample
    with _open_media(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = int(stream.rate or stream.sample_rate or sample_rate)
        resampler = av.AudioResampler(format="fltp", rate=rate)  # float planes; keeps the rate and the layout
        lo, hi = _declared_span(stream)  # presentation times to keep; None: unbounded
        window = _absolute(container, segment)
        if window is not None:
            lo = window[0] if lo is None else max(lo, window[0])
            hi = window[1] if hi is None else min(hi, window[1])

        def take(frames) -> None:
            for out in frames:
                chunks.append(out.to_ndarray().reshape(out.layout.nb_channels, -1).mean(axis=0))

        try:
            if window is not None:
                _seek(container, stream, window[0])
            for frame in container.decode(stream):
                if first_time is None:
                    first_time = frame.time if frame.time is not None else (lo or 0.0)
                elif hi is not None and frame.time is not None and frame.time >= hi:
                    break
                take(resampler.resample(frame))
        except av.FFmpegError as e:
            if not chunks:
                raise ExtractionError(f"{path}: cannot decode audio ({e})") from None
            logger.warning("%s: audio decoding stopped early (%s)", path, e)
        take(resampler.resample(None))  # flush the format converter
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    wave = np.concatenate(chunks).astype(np.float32, copy=False)
    origin = first_time or 0.0
    begin = 0 if lo is None else max(0, int(round((lo - origin) * rate)))
    stop = len(wave) if hi is None else max(begin, int(round((hi - origin) * rate)))
    return resample(wave[begin:stop], rate, sample_rate)


def resample(wave: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """``librosa.resample(wave, orig_sr=rate, target_sr=target_rate)`` at its default quality, without
    importing librosa: soxr "HQ", then cut or zero-padded to ``ceil(len * target_rate / rate)`` samples."""
    if rate == target_rate or wave.size == 0:
        return wave
    import soxr

    out = soxr.resample(wave, rate, target_rate, quality="soxr_hq")
    size = int(np.ceil(wave.shape[-1] * float(target_rate) / rate))
    return np.asarray(out[:size] if len(out) >= size else np.pad(out, (0, size - len(out))), dtype=np.float32)


def is_silent(wave: np.ndarray | None, threshold: float = DEFAULT_SILENCE_THRESHOLD) -> bool:
    """True for a missing/empty track or one whose peak amplitude is below ``threshold``."""
    return wave is None or wave.size == 0 or float(np.abs(wave).max()) < threshold


def audio_windows(
    wave: np.ndarray,
    window_s: float = DEFAULT_WINDOW_S,
    hop_s: float = DEFAULT_HOP_S,
    max_windows: int | None = DEFAULT_MAX_WINDOWS,
    sample_rate: int = CLAP_SAMPLE_RATE,
) -> list[np.ndarray]:
    """Cut a mono wave into CLAP-quantised int16 windows (views; see :func:`window_starts`)."""
    window = int(round(window_s * sample_rate))
    hop = int(round(hop_s * sample_rate))
    q = quantize_int16(wave)
    return [q[s : s + window] for s in window_starts(len(q), window, hop, max_windows)]


def audio_window_times(
    num_samples: int,
    window_s: float = DEFAULT_WINDOW_S,
    hop_s: float = DEFAULT_HOP_S,
    max_windows: int | None = DEFAULT_MAX_WINDOWS,
    sample_rate: int = CLAP_SAMPLE_RATE,
) -> np.ndarray:
    """float64 ``(T_a, 2)``: start and end (seconds from the track's start) of each window :func:`audio_windows`
    cuts from a track of ``num_samples`` samples; a window reaching past the end ends with the track."""
    window = int(round(window_s * sample_rate))
    hop = int(round(hop_s * sample_rate))
    starts = np.asarray(window_starts(num_samples, window, hop, max_windows), dtype=np.float64)
    return np.stack([starts, np.minimum(starts + window, num_samples)], axis=-1).reshape(-1, 2) / sample_rate


# ----------------------------------------------------------------------------------------------
# CLIP frames


def auto_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto" -> cuda if available else cpu."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def split_clip_transform(preprocess: Callable) -> tuple[Callable, tuple[float, ...], tuple[float, ...]]:
    """Split open_clip's eval ``preprocess`` into (PIL resize/crop part, mean, std).

    The PIL part runs in decoding workers (uint8 output, 4x less to ship than float); ``ToTensor`` +
    ``Normalize`` are then re-done on the model's device by :meth:`ClipFrameEncoder.normalize`.
    """
    from torchvision import transforms as T

    steps = list(getattr(preprocess, "transforms", []))
    to_tensor = [i for i, step in enumerate(steps) if isinstance(step, T.ToTensor)]  # open_clip: MaybeToTensor
    if len(steps) < 2 or to_tensor != [len(steps) - 2] or not isinstance(steps[-1], T.Normalize):
        raise ExtractorModelError(
            f"unexpected CLIP preprocess (want [...PIL steps, ToTensor, Normalize]): {preprocess}")
    cut = to_tensor[0]
    normalize = steps[-1]
    return T.Compose(steps[:cut]), tuple(float(m) for m in normalize.mean), tuple(float(s) for s in normalize.std)


class ClipFrameEncoder:
    """An open_clip model + its preprocessing: uint8 frames ``(N, S, S, 3)`` -> features ``(N, dim)``.

    Args:
        model: an open_clip ``CLIP`` model (eval mode, on ``device``).
        preprocess: its eval transform (``create_model_and_transforms(...)[2]``).
        layer: "embed" = the image embedding (``encode_image``, 768 for ViT-L-14); "pooled" = the ViT's
            pooled output before the projection (1024 for ViT-L-14).
        input_dtype: dtype of the pixels fed to the model (bf16/fp16 for a low-precision model).
    """

    def __init__(self, model: torch.nn.Module, preprocess: Callable, layer: str = "embed",
                 input_dtype: torch.dtype | None = None, name: str = "", pretrained: str = "",
                 precision: str | None = None):
        if layer not in CLIP_LAYERS:
            raise ValueError(f"layer must be one of {CLIP_LAYERS}, got {layer!r}")
        if layer == "pooled" and not all(hasattr(model.visual, a) for a in ("_embeds", "transformer", "_pool")):
            raise ExtractorModelError(f"--layer pooled needs a ViT image tower, got {type(model.visual).__name__}")
        self.model = model.eval()
        self.preprocess = preprocess
        self.prepare, mean, std = split_clip_transform(preprocess)
        self.layer = layer
        self.device = next(model.parameters()).device
        self.input_dtype = input_dtype or torch.float32
        self.name, self.pretrained = name, pretrained
        self.precision = precision or {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.input_dtype, "fp32")
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)
        size = model.visual.image_size
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        self.dim = int(self.encode(torch.zeros(1, *self.image_size, 3, dtype=torch.uint8)).shape[-1])

    def describe(self) -> dict[str, Any]:
        """What the features are, for ``meta.json``: normalisation, preprocessing and precision."""
        steps = ", ".join(repr(step).replace("\n", " ") for step in getattr(self.preprocess, "transforms", []))
        return {
            "normalization": (
                "none: raw open_clip encode_image output, not L2-normalised (ViT-L-14 openai rows have norm ~22); "
                "normalise before cosine similarities" if self.layer == "embed" else
                "none: the ViT's pooled output before the projection, not L2-normalised"),
            "preprocessing": ("frames turned upright by the display matrix (as ffmpeg autorotates), "
                              f"RGB from PyAV, then open_clip's eval transform: {steps}"),
            "precision": self.precision,
        }

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` -> float32 ``(N, 3, H, W)``, exactly ``ToTensor`` then ``Normalize``."""
        x = frames.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div(255)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def encode(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 frames ``(N, S, S, 3)`` (output of :attr:`prepare`) -> float32 ``(N, dim)`` on the CPU."""
        frames = torch.as_tensor(frames)
        x = self.normalize(frames).to(self.input_dtype)  # (N, 3, S, S)
        if self.layer == "embed":
            out = self.model.encode_image(x)  # (N, embed_dim)
        else:
            visual = self.model.visual
            pooled, _ = visual._pool(visual.transformer(visual._embeds(x)))  # (N, width)
            out = pooled
        return out.float().cpu()

    def encode_video(self, path: str | os.PathLike, num_frames: int = DEFAULT_NUM_FRAMES,
                     fps: float | None = None, segment: Segment | None = None) -> np.ndarray:
        """One video file (or its ``segment``, seconds) -> float16 ``(T, dim)``."""
        frames = decode_frames(path, num_frames, fps=fps, transform=self.prepare, segment=segment)
        return self.encode(frames).numpy().astype(np.float16)


def load_clip(
    model_name: str = DEFAULT_CLIP_MODEL,
    pretrained: str | None = DEFAULT_CLIP_PRETRAINED,
    *,
    layer: str = "embed",
    device: str | torch.device | None = None,
    precision: str = "auto",
    quick_gelu: bool = False,
) -> ClipFrameEncoder:
    """Build an open_clip model for frame features.

    Args:
        model_name: an open_clip architecture ("ViT-L-14") or a model-config JSON file
            (``{"embed_dim", "vision_cfg", "text_cfg"}``; registered with ``open_clip.add_model_config``).
        pretrained: an open_clip tag ("openai", needs the network once), a local checkpoint file
            (offline), or None/"" for random weights (benchmarks).
        layer: "embed" or "pooled" (see :class:`ClipFrameEncoder`).
        device: "cuda", "cpu" or None/"auto".
        precision: "fp32", "fp16", "bf16" or "auto" (bf16/fp16 on a GPU, fp32 on the CPU).
        quick_gelu: use QuickGELU (OpenAI's weights need it; implied by the "openai" tag). Set it when
            ``pretrained`` is a local copy of OpenAI's weights, or use the "ViT-L-14-quickgelu" config.
    """
    import open_clip

    device = auto_device(device)
    if precision == "auto":
        precision = "fp32" if device.type != "cuda" else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    if precision not in ("fp32", "fp16", "bf16"):
        raise ValueError(f"precision must be fp32, fp16, bf16 or auto, got {precision!r}")
    name = model_name
    if model_name.endswith(".json"):
        if not os.path.isfile(model_name):
            raise ExtractorModelError(f"{model_name}: no such CLIP model config file")
        open_clip.add_model_config(model_name)
        name = Path(model_name).stem
    if name.replace("/", "-") not in open_clip.list_models():
        raise ExtractorModelError(f"unknown open_clip model {model_name!r} (see open_clip.list_models())")
    pretrained = pretrained or None
    if pretrained and pretrained.lower() == "none":
        pretrained = None
    if pretrained and not os.path.isfile(pretrained):
        tag = open_clip.get_pretrained_cfg(name, pretrained)
        if not tag:
            raise ExtractorModelError(
                f"--clip-pretrained {pretrained!r} is neither a file nor an open_clip tag of {name} "
                f"({', '.join(open_clip.list_pretrained_tags_by_model(name)) or 'none'})")
        quick_gelu = quick_gelu or bool(tag.get("quick_gelu", False))
    if pretrained is None:
        logger.warning("CLIP %s with RANDOM weights (no --pretrained): features are only good for benchmarks", name)
    # With a checkpoint open_clip loads it strictly (every weight), so the random init is skipped (`skip_init`).
    build = skip_init() if pretrained else contextlib.nullcontext()
    try:
        with build:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, precision=precision, device=device, force_quick_gelu=quick_gelu)
    except Exception as e:  # open_clip reports weights of another architecture as AssertionError/RuntimeError
        reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        if pretrained and os.path.isfile(pretrained):
            raise ExtractorModelError(
                f"--clip-pretrained {pretrained}: these weights do not fit the CLIP architecture {model_name} "
                f"({reason[:300]}); pass the --clip-model they were trained with") from None
        hint = "; offline? pass a local checkpoint file with --clip-pretrained FILE" if pretrained else ""
        raise ExtractorModelError(f"cannot build CLIP {name} with --clip-pretrained {pretrained!r} ({reason[:300]})"
                                  f"{hint}") from None
    input_dtype = open_clip.get_input_dtype(precision)
    return ClipFrameEncoder(model, preprocess, layer=layer, input_dtype=input_dtype, precision=precision,
                            name=model_name, pretrained=pretrained or "")


# ----------------------------------------------------------------------------------------------
# CLAP audio


@contextlib.contextmanager
def _hub_offline():
    """laion_clap downloads three text tokenizers at import time; we only use its audio tower."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import huggingface_hub.constants as hub_constants
    except ImportError:  # pragma: no cover
        yield
        return
    before = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = True  # the env var is read once, when huggingface_hub is imported
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = before


def _import_clap_model_class():
    with _hub_offline(), warnings.catch_warnings():
        # laion_clap 1.1.7 imports timm.models.layers, deprecated since timm 0.9: a FutureWarning about
        # laion_clap's code, raised once at this import; only here, not as a global filter
        warnings.filterwarnings("ignore", message="Importing from timm.models.layers is deprecated",
                                category=FutureWarning)
        import laion_clap  # noqa: F401  (puts clap_module on sys.path, as laion_clap itself needs)
        from laion_clap.clap_module.model import CLAP
    return CLAP


def clap_model_config(amodel: str = DEFAULT_CLAP_MODEL) -> dict[str, Any]:
    """A laion_clap model config (``HTSAT-tiny``, ``HTSAT-base``, ...) or a JSON file of the same form."""
    if amodel.endswith(".json"):
        path = Path(amodel)
        if not path.is_file():
            raise ExtractorModelError(f"{amodel}: no such CLAP model config file")
    else:
        _import_clap_model_class()
        import laion_clap.clap_module as clap_module

        path = Path(clap_module.__file__).parent / "model_configs" / f"{amodel}.json"
        if not path.is_file():
            known = sorted(p.stem for p in path.parent.glob("HTSAT*.json"))
            raise ExtractorModelError(f"unknown CLAP audio model {amodel!r}; known: {', '.join(known)}")
    config = json.loads(path.read_text())
    if not all(k in config for k in ("embed_dim", "audio_cfg")):
        raise ExtractorModelError(f"{path}: not a CLAP model config (needs embed_dim, audio_cfg)")
    if config["audio_cfg"].get("model_type") != "HTSAT":
        raise ExtractorModelError(
            f"{amodel}: only HTSAT audio towers are supported (laion_clap 1.1.7 cannot run its PANN towers "
            "through get_audio_embedding)")
    return config


@contextlib.contextmanager
def _htsat_size(sizes: dict[str, Any] | None, embed_dim: int, amodel: str):
    """Build HTSAT with custom sizes (a config's optional "htsat" block; laion_clap only knows tiny/base/large).

    Used for small test/benchmark towers, e.g. ``{"embed_dim": 8, "depths": [1, 1, 1, 1],
    "num_heads": [1, 1, 1, 1]}``; the config's top-level ``embed_dim`` must be ``embed_dim * 2**(len(depths)-1)``.
    """
    if not sizes:
        yield
        return
    import laion_clap.clap_module.model as clap_model
    from laion_clap.clap_module.htsat import HTSAT_Swin_Transformer

    kwargs = dict(spec_size=256, patch_size=4, patch_stride=(4, 4), embed_dim=96, depths=[2, 2, 6, 2],
                  num_heads=[4, 8, 16, 32], window_size=8)
    unknown = set(sizes) - set(kwargs) - {"mlp_ratio"}
    if unknown:
        raise ExtractorModelError(f"{amodel}: unknown keys in the \"htsat\" block: {sorted(unknown)}")
    kwargs.update(sizes)
    features = kwargs["embed_dim"] * 2 ** (len(kwargs["depths"]) - 1)
    if features != embed_dim:
        raise ExtractorModelError(f"{amodel}: embed_dim is {embed_dim} but the htsat block gives {features} features")

    def create_htsat_model(audio_cfg, enable_fusion=False, fusion_type="None"):
        return HTSAT_Swin_Transformer(num_classes=audio_cfg.class_num, config=audio_cfg,
                                      enable_fusion=enable_fusion, fusion_type=fusion_type, **kwargs)

    original = clap_model.create_htsat_model
    clap_model.create_htsat_model = create_htsat_model  # CLAP.__init__ looks it up in its module
    try:
        yield
    finally:
        clap_model.create_htsat_model = original


def _read_checkpoint(path: str) -> dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise ExtractorModelError(f"{path}: no such CLAP checkpoint")
    from .safe_load import CLAP_CHECKPOINT_GLOBALS, UnsafeCheckpointError, load_torch_file

    try:  # never unrestricted pickle: LAION's files need only numpy float64 scalars (their optimizer state)
        obj = load_torch_file(path, CLAP_CHECKPOINT_GLOBALS)
    except UnsafeCheckpointError as error:
        raise ExtractorModelError(str(error)) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ExtractorModelError(f"{path}: not a state dict (got {type(obj).__name__})")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_clap_audio_weights(model: torch.nn.Module, path: str) -> None:
    """Load the audio tower + projection of a CLAP checkpoint (e.g. ``630k-audioset-best.pt``) into ``model``.

    The text tower's weights are ignored. Every audio parameter must be present with the right shape.
    """
    state = {k: v for k, v in _read_checkpoint(path).items() if k.startswith(_CLAP_AUDIO_PREFIXES)}
    if not state:
        raise ExtractorModelError(f"{path}: no CLAP audio weights (audio_branch.*) in this file")
    expected = {k: v for k, v in model.state_dict().items() if k.startswith(_CLAP_AUDIO_PREFIXES)}
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith(_CLAP_DERIVED_BUFFERS))
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
             for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    if unexpected or missing or wrong:
        raise ExtractorModelError(
            f"{path} does not fit this CLAP audio model (wrong --clap-model, or a fusion checkpoint?): "
            f"{len(missing)} missing {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, "
            f"{len(wrong)} shape mismatches {wrong[:3]}")
    model.load_state_dict(state, strict=False)


class ClapWindowEncoder:
    """LAION CLAP's audio tower: int16-quantised windows -> unit-norm audio embeddings ``(N, 512)``.

    Same computation as ``CLAP_Module.get_audio_embedding_from_data`` on each window (non-fusion model:
    quantise, repeat-pad to the model's 10 s input, HTSAT, projection, L2 norm), batched.
    """

    def __init__(self, model: torch.nn.Module, config: dict[str, Any], precision: str = "fp32",
                 name: str = "", ckpt: str = ""):
        self.model = model.eval()
        self.config = config
        self.device = next(model.parameters()).device
        self.sample_rate = int(config["audio_cfg"]["sample_rate"])
        self.clip_samples = int(config["audio_cfg"]["clip_samples"])
        self.dim = int(config.get("joint_embed_shape", 512))
        if precision not in ("fp32", "fp16", "bf16"):
            raise ValueError(f"precision must be fp32, fp16 or bf16, got {precision!r}")
        self.autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        self.name, self.ckpt = name, ckpt
        self.precision = precision

    def describe(self) -> dict[str, Any]:
        """What the features are, for ``meta.json``: normalisation, preprocessing and precision."""
        return {
            "normalization": "L2: unit-norm rows, as laion_clap's get_audio_embedding_from_data",
            "preprocessing": (
                "first audio stream cut to its declared start and duration (no encoder padding), resampled to "
                f"{self.sample_rate} Hz as librosa.load does (channel mean, soxr HQ), quantised to int16 as "
                f"laion_clap does, each window repeat-padded to {self.clip_samples} samples (non-fusion model)"),
            "precision": f"{self.precision} autocast" if self.autocast_dtype else "fp32",
        }

    def batch(self, windows: Sequence[np.ndarray | torch.Tensor]) -> torch.Tensor:
        """int16 (or float) windows of <= 10 s -> float32 ``(N, clip_samples)`` model input."""
        rows = []
        for w in windows:
            w = torch.as_tensor(w)
            if w.dtype != torch.int16:
                w = torch.from_numpy(quantize_int16(w.float().numpy()))
            if w.shape[-1] > self.clip_samples:
                raise ValueError(f"an audio window of {w.shape[-1]} samples is longer than CLAP's "
                                 f"{self.clip_samples}-sample input; use a shorter window")
            rows.append(repeat_pad(w.double().div(32767.0).float(), self.clip_samples))
        return torch.stack(rows)

    @torch.no_grad()
    def encode(self, windows: Sequence[np.ndarray | torch.Tensor]) -> torch.Tensor:
        """Windows (int16 from :func:`audio_windows`, or float waves in [-1, 1]) -> float32 ``(N, dim)`` on the CPU."""
        waveform = self.batch(windows).to(self.device, non_blocking=True)  # (N, clip_samples)
        longer = torch.zeros(waveform.shape[0], dtype=torch.bool, device=self.device)
        autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype
                    else contextlib.nullcontext())
        with autocast:
            out = self.model.encode_audio({"waveform": waveform, "longer": longer}, device=self.device)
            embedding = self.model.audio_projection(out["embedding"])  # (N, dim)
        return F.normalize(embedding.float(), dim=-1).cpu()

    def encode_video(self, path: str | os.PathLike, window_s: float = DEFAULT_WINDOW_S,
                     hop_s: float = DEFAULT_HOP_S, max_windows: int | None = DEFAULT_MAX_WINDOWS,
                     silence_threshold: float = DEFAULT_SILENCE_THRESHOLD,
                     segment: Segment | None = None) -> np.ndarray | None:
        """One video file (or its ``segment``, seconds) -> float16 ``(T_a, dim)``, or None if it has no audio
        stream or only silence."""
        wave = decode_audio(path, self.sample_rate, segment)
        if is_silent(wave, silence_threshold):
            return None
        windows = audio_windows(wave, window_s, hop_s, max_windows, self.sample_rate)
        return self.encode(windows).numpy().astype(np.float16)


def load_clap(
    amodel: str = DEFAULT_CLAP_MODEL,
    ckpt: str | None = None,
    *,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> ClapWindowEncoder:
    """Build LAION CLAP's audio side, offline.

    Args:
        amodel: laion_clap audio config ("HTSAT-tiny" for ``630k-audioset-best.pt`` / ``630k-best.pt``,
            "HTSAT-base" for the music/speech checkpoints) or a JSON config file of the same form, which may
            add an "htsat" block of tower sizes (small test/benchmark models, see :func:`_htsat_size`).
        ckpt: a local CLAP checkpoint file (``{"state_dict": ...}``, "module." prefixes allowed); None
            gives random weights (benchmarks only).
        device: "cuda", "cpu" or None/"auto".
        precision: "fp32" (default: the spectrogram front end wants it), "bf16" or "fp16" (autocast).
    """
    CLAP = _import_clap_model_class()
    config = clap_model_config(amodel)
    build_config = copy.deepcopy(config)
    # The text tower is never used here: a 1-layer stand-in instead of RoBERTa (which would download).
    build_config["text_cfg"] = dict(context_length=77, vocab_size=8, width=8, heads=1, layers=1,
                                    model_type="transformer")
    # With a checkpoint every audio weight is loaded (load_clap_audio_weights checks), so nothing is initialised
    # (`skip_init`); the unused text side is then zeroed so that no uninitialised memory is left in the model.
    with _htsat_size(build_config.pop("htsat", None), build_config["embed_dim"], amodel), \
            (skip_init() if ckpt else contextlib.nullcontext()), warnings.catch_warnings():
        # HTSAT's window attention calls torch.meshgrid without indexing= while it is built (the "ij" it means
        # is today's default); the UserWarning is about laion_clap's code and silenced for this call only
        warnings.filterwarnings("ignore", message="torch.meshgrid: in an upcoming release", category=UserWarning)
        model = CLAP(**build_config, enable_fusion=False)
    if ckpt:
        load_clap_audio_weights(model, ckpt)
        with torch.no_grad():
            for name, tensor in model.state_dict(keep_vars=True).items():
                if not name.startswith(_CLAP_AUDIO_PREFIXES) and tensor.is_floating_point():
                    tensor.zero_()
    else:
        logger.warning("CLAP %s with RANDOM weights (no --clap-pretrained): features are only good for benchmarks",
                       amodel)
    model.to(auto_device(device))
    return ClapWindowEncoder(model, config, precision=precision, name=amodel, ckpt=ckpt or "")
