"""MSVD (``msvd``): the caption list ``AllVideoDescriptions.txt`` or the corpus
``MSR Video Description Corpus.csv``; splits from ``youtube_mapping.txt`` beside it (:data:`MSVD_SPLITS`)."""

from __future__ import annotations

import os

from .common import (
    AnnotationError,
    _canonical_split,
    _caption,
    _read_table,
    _read_text_lines,
    _safe_id,
    normalize_caption,
)


# MSVD's standard split (Venugopalan et al. 2015, used by every later paper): vidN ranges, inclusive.
MSVD_SPLITS = {"train": (1, 1200), "validate": (1201, 1300), "test": (1301, 1970)}


MSVD_MAPPING_NAME = "youtube_mapping.txt"


def _is_msvd_csv_header(row: list[str]) -> bool:
    return {"VideoID", "Start", "End", "Description"} <= {cell.strip() for cell in row}


def _msvd_mapping(caption_path: str) -> dict[str, int] | None:
    """``youtube_mapping.txt`` beside the caption file as ``{clip_name: N}`` (``vidN``), or None if absent."""
    path = os.path.join(os.path.dirname(os.path.abspath(caption_path)), MSVD_MAPPING_NAME)
    if not os.path.isfile(path):
        return None
    return _read_msvd_mapping(path)


def _read_msvd_mapping(path: str) -> dict[str, int]:
    """An MSVD ``youtube_mapping.txt`` (lines ``clip_name vidN``) as ``{clip_name: N}``."""
    mapping: dict[str, int] = {}
    numbers: set[int] = set()
    for lineno, line in enumerate(_read_text_lines(path), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].startswith("vid") or not parts[1][3:].isdigit():
            raise AnnotationError(f"{path}: line {lineno}: expected 'clip_name vidN', got {line.strip()!r}")
        clip, number = parts[0], int(parts[1][3:])
        if clip in mapping or number in numbers:
            raise AnnotationError(f"{path}: line {lineno}: {clip} / {parts[1]} is listed twice")
        mapping[clip] = number
        numbers.add(number)
    return mapping


def _load_msvd_txt(path: str) -> dict[str, list[str]]:
    """``AllVideoDescriptions.txt``: ``clip_name caption words...`` per line, ``#`` comments."""
    annotations: dict[str, list[str]] = {}
    for lineno, line in enumerate(_read_text_lines(path), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(None, 1)
        where = f"line {lineno}"
        if len(parts) < 2:
            raise AnnotationError(f"{path}: {where}: expected 'clip_name caption words...', got {line.strip()!r}")
        _safe_id(path, where, parts[0])
        annotations.setdefault(parts[0], []).append(_caption(path, f"{where} ({parts[0]})", parts[1]))
    return annotations


def _load_msvd_csv(path: str, rows: list[list[str]]) -> dict[str, list[str]]:
    """``MSR Video Description Corpus.csv``: English rows; clip name ``{VideoID}_{Start}_{End}``."""
    header = [cell.strip() for cell in rows[0]]
    column = {name: header.index(name) for name in ("VideoID", "Start", "End", "Description")}
    language = header.index("Language") if "Language" in header else None
    annotations: dict[str, list[str]] = {}
    for lineno, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {lineno}"
        if len(row) != len(header):
            raise AnnotationError(f"{path}: {where}: {len(row)} fields, the header has {len(header)}")
        if language is not None and row[language].strip().lower() != "english":
            continue
        youtube_id, start, end = (row[column[k]].strip() for k in ("VideoID", "Start", "End"))
        if not youtube_id or not start.isdigit() or not end.isdigit():
            raise AnnotationError(f"{path}: {where}: expected a VideoID and whole-second Start/End, got "
                                  f"{youtube_id!r}, {start!r}, {end!r}")
        description = row[column["Description"]]
        if not normalize_caption(description):
            continue  # the release has a few English rows without a description
        clip = _safe_id(path, f"{where} (VideoID_Start_End)", f"{youtube_id}_{int(start)}_{int(end)}")
        annotations.setdefault(clip, []).append(_caption(path, f"{where} ({clip})", description))
    return annotations


def _msvd_split(path: str, annotations: dict[str, list[str]], split: str) -> dict[str, list[str]]:
    mapping = _msvd_mapping(path)
    if mapping is None:
        raise AnnotationError(f"{path}: split {split!r} requested, but MSVD's splits need {MSVD_MAPPING_NAME} "
                              "(clip name -> vidN) in the same folder")
    name = _canonical_split(path, split, MSVD_SPLITS)
    low, high = MSVD_SPLITS[name]
    selected = sorted((mapping[c], c) for c in mapping if low <= mapping[c] <= high)
    if not selected:
        raise AnnotationError(f"{path}: split {name!r} is empty: no clip of {MSVD_MAPPING_NAME} is numbered "
                              f"vid{low}-vid{high}")
    missing = [c for _, c in selected if c not in annotations]
    if missing:
        raise AnnotationError(f"{path}: {len(missing)} {name} clips of {MSVD_MAPPING_NAME} have no English "
                              f"caption, e.g. {', '.join(missing[:5])}")
    return {clip: annotations[clip] for _, clip in selected}  # in vidN order


def _load_msvd(path: str, split: str | None) -> dict[str, list[str]]:
    if path.lower().endswith(".csv"):
        rows = _read_table(path, ",")
        if not rows or not _is_msvd_csv_header(rows[0]):
            raise AnnotationError(f"{path}: an MSVD .csv needs the corpus header "
                                  "VideoID,Start,End,...,Language,Description")
        annotations = _load_msvd_csv(path, rows)
    else:
        annotations = _load_msvd_txt(path)
        mapping_like = annotations and all(
            len(caps) == 1 and caps[0].startswith("vid") and caps[0][3:].isdigit() for caps in annotations.values())
        if mapping_like:
            raise AnnotationError(f"{path}: this is the clip name -> vidN mapping ({MSVD_MAPPING_NAME}), not a "
                                  "caption file; pass AllVideoDescriptions.txt (it finds the mapping beside it)")
    if not annotations:
        raise AnnotationError(f"{path}: no annotations")
    return _msvd_split(path, annotations, split) if split is not None else annotations
