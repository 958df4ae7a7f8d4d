"""Caption annotations: one loader for the MSR-VTT formats, caption normalisation, prediction files.

Three annotation formats are detected automatically:

1. The official MSR-VTT file (``train_val_videodatainfo.json``, ``test_videodatainfo.json``)::

       {"info": ..., "videos": [{"video_id": "video0", "split": "train", ...}, ...],
        "sentences": [{"sen_id": 0, "video_id": "video0", "caption": "..."}, ...]}

   ``split`` selects ``"train"``, ``"validate"`` (alias ``"val"``) or ``"test"``.
2. A list of records ``[{"video_id": ..., "caption": ...}, ...]`` (``train.json``-style files).
3. A mapping ``{video_id: [caption, ...]}``.

Every caption goes through :func:`normalize_caption`, the form the metrics (``eval/``) and the SCST
reward expect. Bad input raises :class:`AnnotationError` naming the file and the offending record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from .fileio import atomic_write_json

__all__ = [
    "AnnotationError",
    "SPLITS",
    "load_annotations",
    "load_predictions",
    "normalize_caption",
    "save_predictions",
]

SPLITS = ("train", "validate", "test")
_SPLIT_ALIASES = {"val": "validate", "valid": "validate", "validation": "validate"}


class AnnotationError(ValueError):
    """An annotation or prediction file is malformed; the message names the file and the record."""


def normalize_caption(caption: str) -> str:
    """Return the canonical form of a caption: the form references and predictions are scored in.

    Lowercase, strip, collapse every run of whitespace (spaces, tabs, newlines) to one space, and drop
    trailing periods (``"A man is cooking. "`` -> ``"a man is cooking"``). Nothing else is touched:
    inner punctuation stays, and the PTB tokenizer of ``eval.coco`` removes it later for the COCO metrics.
    """
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a str, got {type(caption).__name__}")
    return " ".join(caption.lower().split()).rstrip(". ")


def _read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; a duplicated key in any object is an error (json.load would keep the last one)."""
    path = os.fspath(path)

    def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                raise AnnotationError(f"{path}: duplicate key {key!r} in a JSON object")
            obj[key] = value
        return obj

    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, object_pairs_hook=no_duplicate_keys)
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not UTF-8 text ({e.reason})") from None


def _caption(path: str, where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise AnnotationError(f"{path}: {where}: caption must be a string, got {type(value).__name__}")
    caption = normalize_caption(value)
    if not caption:
        raise AnnotationError(f"{path}: {where}: empty caption")
    return caption


def _video_id(path: str, where: str, record: Any) -> str:
    if not isinstance(record, Mapping):
        raise AnnotationError(f"{path}: {where}: expected an object, got {type(record).__name__}")
    if "video_id" not in record:
        raise AnnotationError(f"{path}: {where}: missing 'video_id'")
    video_id = record["video_id"]
    if not isinstance(video_id, str) or not video_id.strip():
        raise AnnotationError(f"{path}: {where}: 'video_id' must be a non-empty string, got {video_id!r}")
    return video_id


def _canonical_split(path: str, split: str, existing: Iterable[str]) -> str:
    name = _SPLIT_ALIASES.get(split.lower(), split.lower())
    existing = sorted(set(existing))
    if name not in existing:
        raise AnnotationError(
            f"{path}: split {split!r} does not exist in this file; existing splits: {', '.join(existing) or 'none'}"
        )
    return name


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
        if not isinstance(captions, list) or not captions:
            raise AnnotationError(f"{path}: video {video_id!r}: expected a non-empty list of captions")
        annotations[video_id] = [
            _caption(path, f"video {video_id!r} caption {j}", c) for j, c in enumerate(captions)
        ]
    return annotations


def load_annotations(path: str | os.PathLike, split: str | None = None) -> dict[str, list[str]]:
    """Load reference captions from any of the three supported formats (see the module docstring).

    Args:
        path: JSON file.
        split: official format only: ``"train"``, ``"validate"`` (or ``"val"``), ``"test"``; ``None`` keeps
            every video of the file.

    Returns:
        ``{video_id: [normalised caption, ...]}``, videos in file order, captions in file order.

    Raises:
        AnnotationError: malformed JSON, unknown format, missing ``video_id``, empty caption, duplicate video
            id / ``sen_id`` / key, unknown split, a split requested from a file that has no splits.
    """
    path = os.fspath(path)
    data = _read_json(path)
    if isinstance(data, Mapping) and "videos" in data and "sentences" in data:
        return _load_official(path, data, split)
    if split is not None:
        raise AnnotationError(
            f"{path}: split {split!r} requested, but only the official MSR-VTT format ('videos' + "
            "'sentences') has splits; this file is a plain caption list/mapping"
        )
    if isinstance(data, list):
        annotations = _load_records(path, data)
    elif isinstance(data, Mapping):
        annotations = _load_mapping(path, data)
    else:
        raise AnnotationError(f"{path}: unknown annotation format (top level is {type(data).__name__})")
    if not annotations:
        raise AnnotationError(f"{path}: no annotations")
    return annotations


def save_predictions(predictions: Mapping[str, str], path: str | os.PathLike) -> None:
    """Write ``{video_id: caption}`` as the predictions format ``[{"video_id": ..., "caption": ...}]``."""
    records = [{"video_id": str(v), "caption": str(c)} for v, c in predictions.items()]
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_json(path, records, ensure_ascii=False)  # a full disk or a kill leaves the previous file


def load_predictions(path: str | os.PathLike) -> dict[str, str]:
    """Read a predictions file ``[{"video_id": ..., "caption": ...}]`` into ``{video_id: caption}``.

    Captions are returned as written (the metrics tokenise them); an empty caption is allowed (it scores 0).

    Raises:
        AnnotationError: not a list of records, missing ``video_id``/``caption``, a caption that is not a
            string, or a video predicted twice.
    """
    path = os.fspath(path)
    data = _read_json(path)
    if not isinstance(data, list):
        raise AnnotationError(
            f"{path}: predictions must be a list of {{\"video_id\", \"caption\"}} records, "
            f"got {type(data).__name__}"
        )
    predictions: dict[str, str] = {}
    for i, record in enumerate(data):
        video_id = _video_id(path, f"record {i}", record)
        where = f"record {i} (video_id {video_id!r})"
        if "caption" not in record:
            raise AnnotationError(f"{path}: {where}: missing 'caption'")
        if not isinstance(record["caption"], str):
            raise AnnotationError(f"{path}: {where}: caption must be a string")
        if video_id in predictions:
            raise AnnotationError(f"{path}: {where}: video predicted twice")
        predictions[video_id] = record["caption"]
    return predictions
