"""Shared by every reader: the error types, the id check, caption normalisation, file reading."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..ids import UnsafeIdError, check_video_id


SPLITS = ("train", "validate", "test")


_SPLIT_ALIASES = {"val": "validate", "valid": "validate", "validation": "validate"}


class AnnotationError(ValueError):
    """An annotation or prediction file is malformed; the message names the file and the record."""


class UnsafeAnnotationIdError(AnnotationError, UnsafeIdError):
    """A video id of an annotation file breaks the id rule of :mod:`videoblip2.ids` (a path, ``..``, a NUL, too
    long): the file is refused as a whole. Both an ``AnnotationError`` and an ``UnsafeIdError``."""


def _safe_id(path: str, where: str, video_id: Any) -> str:
    """``video_id`` if :func:`videoblip2.ids.check_video_id` accepts it, else UnsafeAnnotationIdError naming
    the file, ``where`` (the line or record) and the rule."""
    try:
        return check_video_id(video_id, f"{path}: {where}")
    except UnsafeIdError as error:
        raise UnsafeAnnotationIdError(str(error)) from None


def normalize_caption(caption: str) -> str:
    """Return the canonical form of a caption: the form references and predictions are scored in.

    Lowercase, strip, collapse every run of whitespace (spaces, tabs, newlines) to one space, and drop
    trailing periods (``"A man is cooking. "`` -> ``"a man is cooking"``). Nothing else is touched:
    inner punctuation stays, and the PTB tokenizer of ``eval.coco`` removes it later for the COCO metrics.
    """
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a str, got {type(caption).__name__}")
    return " ".join(caption.lower().split()).rstrip(". ")


def _read_json(path: str | os.PathLike, what: str = "annotation file") -> Any:
    """Parse a JSON file; a duplicated key in any object is an error (json.load would keep the last one).
    ``what`` names the file in the not-found message ("predictions file" for predictions)."""
    path = os.fspath(path)

    def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                raise AnnotationError(f"{path}: duplicate key {key!r} in a JSON object")
            obj[key] = value
        return obj

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, object_pairs_hook=no_duplicate_keys)
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not UTF-8 text ({e.reason})") from None


def _caption(path: str, where: str, value: Any) -> str:
    """The caption as written, whitespace runs collapsed (``load_annotations`` normalises it unless asked
    for the text as written); empty once normalised is an error."""
    if not isinstance(value, str):
        raise AnnotationError(f"{path}: {where}: caption must be a string, got {type(value).__name__}")
    if not normalize_caption(value):
        raise AnnotationError(f"{path}: {where}: empty caption")
    return " ".join(value.split())


def _normalized(annotations: dict[str, list[str]], as_written: bool) -> dict[str, list[str]]:
    if as_written:
        return annotations
    return {video_id: [normalize_caption(c) for c in caps] for video_id, caps in annotations.items()}


def _video_id(path: str, where: str, record: Any) -> str:
    if not isinstance(record, Mapping):
        raise AnnotationError(f"{path}: {where}: expected an object, got {type(record).__name__}")
    if "video_id" not in record:
        raise AnnotationError(f"{path}: {where}: missing 'video_id'")
    video_id = record["video_id"]
    if not isinstance(video_id, str) or not video_id.strip():
        raise AnnotationError(f"{path}: {where}: 'video_id' must be a non-empty string, got {video_id!r}")
    return _safe_id(path, where, video_id)


def _canonical_split(path: str, split: str, existing: Iterable[str]) -> str:
    name = _SPLIT_ALIASES.get(split.lower(), split.lower())
    existing = sorted(set(existing))
    if name not in existing:
        raise AnnotationError(
            f"{path}: split {split!r} does not exist in this file; existing splits: {', '.join(existing) or 'none'}"
        )
    return name


def _read_text_lines(path: str, what: str = "annotation file") -> list[str]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read().splitlines()
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not UTF-8 text ({e.reason})") from None


def _read_table(path: str, delimiter: str) -> list[list[str]]:
    import csv

    lines = _read_text_lines(path)
    try:
        return [row for row in csv.reader(lines, delimiter=delimiter, strict=True)]
    except csv.Error as e:
        raise AnnotationError(f"{path}: malformed {'TSV' if delimiter == chr(9) else 'CSV'} ({e})") from None


def _read_json_or_lines(path: str | os.PathLike, what: str = "annotation file") -> Any:
    """Parse a JSON file, or a JSON Lines file (``.jsonl``, or any file whose JSON has extra data)."""
    path = os.fspath(path)
    if not path.endswith(".jsonl"):
        try:
            return _read_json(path, what)
        except AnnotationError as e:
            if "Extra data" not in str(e):
                raise
    records = []
    for lineno, line in enumerate(_read_text_lines(path, what), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise AnnotationError(f"{path}: line {lineno}: malformed JSON: {e.msg}") from None
    return records
