"""MSR-VTT (``--ann-format msrvtt``): the official file (``train_val_videodatainfo.json``,
``test_videodatainfo.json``: ``videos`` + ``sentences``, with splits), a list of
``{"video_id", "caption"}`` records and a ``{video_id: [captions]}`` mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import AnnotationError, _canonical_split, _caption, _safe_id, _video_id
from .qa import _looks_like_qa


def _load_official(path: str, data: Mapping[str, Any], split: str | None) -> dict[str, list[str]]:
    videos, sentences = data["videos"], data["sentences"]
    if not isinstance(videos, list) or not isinstance(sentences, list):
        raise AnnotationError(f"{path}: 'videos' and 'sentences' must be lists")

    split_of: dict[str, str] = {}
    for i, video in enumerate(videos):
        video_id = _video_id(path, f"videos[{i}]", video)
        if video_id in split_of:
            raise AnnotationError(f"{path}: videos[{i}]: duplicate video_id {video_id!r}")
        video_split = video.get("split")
        if not isinstance(video_split, str):
            raise AnnotationError(f"{path}: videos[{i}] ({video_id}): missing or invalid 'split'")
        split_of[video_id] = video_split

    if split is not None:
        split = _canonical_split(path, split, split_of.values())
    annotations: dict[str, list[str]] = {v: [] for v, s in split_of.items() if split is None or s == split}

    seen_sen_ids: set[Any] = set()
    for i, sentence in enumerate(sentences):
        video_id = _video_id(path, f"sentences[{i}]", sentence)
        where = f"sentences[{i}] (video_id {video_id!r})"
        if "sen_id" in sentence:
            sen_id = sentence["sen_id"]
            if sen_id in seen_sen_ids:
                raise AnnotationError(f"{path}: {where}: duplicate sen_id {sen_id!r}")
            seen_sen_ids.add(sen_id)
        if video_id not in split_of:
            raise AnnotationError(f"{path}: {where}: video_id is not listed in 'videos'")
        if "caption" not in sentence:
            raise AnnotationError(f"{path}: {where}: missing 'caption'")
        caption = _caption(path, where, sentence["caption"])
        if video_id in annotations:
            annotations[video_id].append(caption)

    without = [v for v, caps in annotations.items() if not caps]
    if without:
        raise AnnotationError(
            f"{path}: {len(without)} video(s) have no caption, e.g. {', '.join(without[:5])}"
        )
    return annotations


def _load_records(path: str, records: list[Any]) -> dict[str, list[str]]:
    if _looks_like_qa(records):
        raise AnnotationError(f"{path}: a question-answer file (records with a question), not captions: "
                              "load_qa_annotations reads it (eval.evaluate detects it)")
    annotations: dict[str, list[str]] = {}
    seen_sen_ids: set[Any] = set()
    for i, record in enumerate(records):
        video_id = _video_id(path, f"record {i}", record)
        where = f"record {i} (video_id {video_id!r})"
        if "sen_id" in record:
            if record["sen_id"] in seen_sen_ids:
                raise AnnotationError(f"{path}: {where}: duplicate sen_id {record['sen_id']!r}")
            seen_sen_ids.add(record["sen_id"])
        if "caption" not in record:
            raise AnnotationError(f"{path}: {where}: missing 'caption'")
        annotations.setdefault(video_id, []).append(_caption(path, where, record["caption"]))
    return annotations


def _load_mapping(path: str, mapping: Mapping[str, Any]) -> dict[str, list[str]]:
    annotations: dict[str, list[str]] = {}
    for video_id, captions in mapping.items():
        if not video_id.strip():
            raise AnnotationError(f"{path}: empty video_id key")
        _safe_id(path, "key", video_id)
        if not isinstance(captions, list) or not captions:
            raise AnnotationError(f"{path}: video {video_id!r}: expected a non-empty list of captions")
        annotations[video_id] = [
            _caption(path, f"video {video_id!r} caption {j}", c) for j, c in enumerate(captions)
        ]
    return annotations
