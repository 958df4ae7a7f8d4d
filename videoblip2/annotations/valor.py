"""VALOR-32K (``valor``): ``desc_{train,val,test}.json``, ``[{"video_id", "desc"}]``; one file per split
(the folder of the files holds the splits: ``registry.SPLIT_FILES``)."""

from __future__ import annotations

from typing import Any

from .common import AnnotationError, _caption, _video_id


def _load_valor(path: str, records: Any) -> dict[str, list[str]]:
    """VALOR-32K: ``[{"video_id", "desc"}]``, one audio-visual caption (a list of them is accepted too)."""
    if not isinstance(records, list):
        raise AnnotationError(f"{path}: VALOR annotations must be a JSON list, got {type(records).__name__}")
    annotations: dict[str, list[str]] = {}
    for i, record in enumerate(records):
        video_id = _video_id(path, f"record {i}", record)
        where = f"record {i} (video_id {video_id!r})"
        if "desc" not in record:
            raise AnnotationError(f"{path}: {where}: missing 'desc'")
        descs = record["desc"] if isinstance(record["desc"], list) else [record["desc"]]
        annotations.setdefault(video_id, []).extend(_caption(path, where, d) for d in descs)
    return annotations
