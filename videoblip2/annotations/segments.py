"""Clip segments, for trimming full-length videos in the extractors (``--trim name|ann``)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from .common import AnnotationError, _read_json, _safe_id, _video_id
from .registry import detect_format, load_annotations


def parse_clip_name(clip: str) -> tuple[str, float, float]:
    """``"{youtube_id}_{start}_{end}"`` -> ``(youtube_id, start_s, end_s)``, times in seconds.

    VATEX writes zero-padded whole seconds (``Ptf_2VRj-V0_000122_000132`` -> 122-132 s), MSVD plain whole
    seconds (``-4wsuPCjDBc_5_15`` -> 5-15 s); decimals are accepted. The YouTube id may hold ``_`` itself:
    the last two fields are the times.

    Raises:
        ValueError: the name does not end in two times, or end <= start.
    """
    parts = clip.rsplit("_", 2)
    try:
        if len(parts) != 3 or not parts[0]:
            raise ValueError
        start, end = float(parts[1]), float(parts[2])
    except ValueError:
        raise ValueError(f"{clip!r}: not a clip name of the form {{youtube_id}}_{{start}}_{{end}} (seconds)") from None
    if not (0 <= start < end) or not math.isfinite(end):
        raise ValueError(f"{clip!r}: segment {start:g}-{end:g} s is empty or negative")
    return parts[0], start, end


def load_segments(path: str | os.PathLike, split: str | None = None,
                  format: str = "auto") -> dict[str, tuple[str, float, float]]:
    """``{video_id: (source_id, start_s, end_s)}`` from an annotation's own start/end fields.

    The official MSR-VTT file (``videos[*]["start time"]``/``["end time"]``; source id: the YouTube id of the
    video's ``url`` (``watch?v=ID``), else the ``video_id``) and MSVD's corpus CSV (``VideoID``, ``Start``,
    ``End``). The source id names the full-length video file (``{source_id}.mp4``).

    Raises:
        AnnotationError: the format has no start/end fields, or a record's times are missing or invalid.
    """
    path = os.fspath(path)
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "msvd" and path.lower().endswith(".csv"):
        clips = load_annotations(path, split, "msvd")
        segments = {clip: parse_clip_name(clip) for clip in clips}  # the clip names are built from Start/End
        for clip, (source, _, _) in segments.items():  # names the full video: '..' from VideoID '..'
            _safe_id(path, f"clip {clip!r} (its VideoID, the full video's name)", source)
        return segments
    data = _read_json(path) if fmt == "msrvtt" and not os.path.isdir(path) else None
    if not (isinstance(data, Mapping) and "videos" in data):
        raise AnnotationError(f"{path}: this {fmt} annotation has no start/end fields (the official MSR-VTT JSON "
                              "and MSVD's corpus CSV have); use the times in the clip names (--trim name)")
    wanted = set(load_annotations(path, split, "msrvtt"))
    segments: dict[str, tuple[str, float, float]] = {}
    for i, video in enumerate(data["videos"]):
        video_id = _video_id(path, f"videos[{i}]", video)
        if video_id not in wanted:
            continue
        start, end = video.get("start time"), video.get("end time")
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in (start, end)) \
                or not 0 <= start < end:
            raise AnnotationError(f"{path}: videos[{i}] ({video_id}): need numeric 'start time' < 'end time', "
                                  f"got {start!r}, {end!r}")
        source = video_id
        url = video.get("url")
        if isinstance(url, str) and "v=" in url:
            source = url.split("v=", 1)[1].split("&", 1)[0] or video_id
            _safe_id(path, f"videos[{i}] ({video_id}) url's YouTube id", source)
        segments[video_id] = (source, float(start), float(end))
    return segments
