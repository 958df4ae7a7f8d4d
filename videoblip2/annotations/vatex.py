"""VATEX (``vatex``): ``[{"videoID", "enCap", "chCap"}]``, English captions only; one file per split
(the folder of the files holds the splits: ``registry.SPLIT_FILES``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import AnnotationError, _caption, _safe_id


def _load_vatex(path: str, records: Any) -> dict[str, list[str]]:
    """VATEX: ``[{"videoID", "enCap": [...], "chCap": [...]}]``; English only; no ``enCap``: no captions."""
    if not isinstance(records, list):
        raise AnnotationError(f"{path}: VATEX annotations must be a JSON list, got {type(records).__name__}")
    annotations: dict[str, list[str]] = {}
    for i, record in enumerate(records):
        if not isinstance(record, Mapping) or not isinstance(record.get("videoID"), str) \
                or not record["videoID"].strip():
            raise AnnotationError(f"{path}: record {i}: expected an object with a non-empty string 'videoID'")
        video_id = _safe_id(path, f"record {i} (videoID)", record["videoID"])
        where = f"record {i} (videoID {video_id!r})"
        if video_id in annotations:
            raise AnnotationError(f"{path}: {where}: duplicate videoID")
        captions = record.get("enCap", [])
        if not isinstance(captions, list):
            raise AnnotationError(f"{path}: {where}: 'enCap' must be a list of captions")
        annotations[video_id] = [_caption(path, f"{where} enCap {j}", c) for j, c in enumerate(captions)]
    return annotations
