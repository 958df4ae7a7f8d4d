"""Caption annotations: one loader for MSR-VTT, MSVD, VATEX, VALOR-32K and plain CSV/TSV files, caption
normalisation, prediction files.

The format is detected from the file (``ANN_FORMATS`` names it explicitly where a file could be read two
ways, ``--ann-format`` on the command line). The video id is always the stem of the feature files
(``FEATURES/video/{video_id}.npy``). MSR-VTT (``--ann-format msrvtt``), three JSON layouts:

1. The official MSR-VTT file (``train_val_videodatainfo.json``, ``test_videodatainfo.json``)::

       {"info": ..., "videos": [{"video_id": "video0", "split": "train", ...}, ...],
        "sentences": [{"sen_id": 0, "video_id": "video0", "caption": "..."}, ...]}

   ``split`` selects ``"train"``, ``"validate"`` (alias ``"val"``) or ``"test"``.
2. A list of records ``[{"video_id": ..., "caption": ...}, ...]`` (``train.json``-style files).
3. A mapping ``{video_id: [caption, ...]}``.

MSVD (``msvd``; video id = the clip name ``{youtube_id}_{start}_{end}``, e.g. ``-4wsuPCjDBc_5_15``, the
stem of the ``YouTubeClips/*.avi`` files): the caption list ``AllVideoDescriptions.txt`` (one
``clip_name caption words...`` per line, ``#`` comments) or the corpus ``MSR Video Description Corpus.csv``
(``VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description``: English rows only, rows with an
empty description skipped, clip name ``{VideoID}_{Start}_{End}``). Splits need ``youtube_mapping.txt``
(``clip_name vidN`` per line) beside the caption file: the standard split is vid1-1200 train,
vid1201-1300 validate, vid1301-1970 test (:data:`MSVD_SPLITS`).

VATEX (``vatex``; video id = ``videoID``, ``{youtube_id}_{start:06d}_{end:06d}``): a JSON list
``[{"videoID": ..., "enCap": [10 captions], "chCap": [...]}]``, English captions only. A file without
``enCap`` (the public test set without annotations) lists videos that can be captioned but not scored.

VALOR-32K (``valor``; video id = ``video_id``): ``desc_train.json`` / ``desc_val.json`` /
``desc_test.json``, JSON lists ``[{"video_id": ..., "desc": "one audio-visual caption"}]``.

Own data (``csv`` / ``tsv``): one ``video_id,caption`` row per caption (an optional header row naming
``video_id`` and ``caption`` columns; quote captions holding the delimiter).

Splits: the official MSR-VTT file and MSVD (with its mapping) hold all three; VATEX and VALOR ship one file
per split, so their *folder* is the file with splits (``split`` picks ``desc_{train,val,test}.json`` or
``vatex_{training,validation,public_test}*.json``), and a single file accepts only its own split.

Every caption goes through :func:`normalize_caption`, the form training and the SCST reward expect
(``as_written=True`` keeps the text as written, whitespace collapsed: what ``eval.evaluate`` hands to
pycocoevalcap). Bad input raises :class:`AnnotationError` naming the file and the offending record.
Annotation files are untrusted: every video id read from one (of every format below, QA included) must be a
plain file name by :func:`videoblip2.ids.check_video_id`, else the whole file is refused
(:class:`UnsafeAnnotationIdError`, an ``AnnotationError``).

Question answering (:func:`load_qa_annotations`, detected by :func:`is_qa_annotation`) reads a JSON list
(or JSON Lines, one record a line) in any of these forms:

4. MUSIC-AVQA (``avqa-{train,val,test}.json``)::

       {"video_id": "00000272", "question_id": 50, "type": "[\\"Audio-Visual\\", \\"Temporal\\"]",
        "question_content": "Where is the <FL> sounding instrument?", "templ_values": "[\\"first\\"]",
        "question_deleted": 0, "anser": "left"}

   ``type`` and ``templ_values`` are JSON lists written as strings; every ``<...>`` placeholder of
   ``question_content`` takes the next value of ``templ_values`` (extra values are ignored, as the official
   loader does; too few are an error). The answer key is ``anser`` as released (``answer`` is accepted).
   Question type ``"Audio-Visual/Temporal"``, modality ``"Audio-Visual"``.
5. MSRVTT-QA / MSVD-QA as released: ``{"id": 0, "video_id": 7010, "question": ..., "answer": ...}`` with an
   integer video id N. The feature stem is ``video{N}`` (MSR-VTT; ``int_video_template="video{}"``).
   MSVD-QA numbers its clips ``vidN``: the release's ``youtube_mapping.txt`` beside the file (lines
   ``CLIP_NAME vidN``) is found and used, or pass ``video_map=`` it or a JSON ``{"vidN": "CLIP_NAME"}`` to get
   the clip-name stems the extractors write, or ``int_video_template="vid{}"`` if the feature files are
   named ``vidN``. The LAVIS form ``{"question_id", "video": "video7010.mp4", "question", "answer"}`` uses
   the file stem of ``video`` (mapped through ``video_map`` too when it is a key there). Question type: the
   release's ``category_id`` when present (MSRVTT-QA), named after the most common question word of its
   questions; else the question's first word, lowercased, contraction dropped (``what's`` -> ``what``).
6. Plain: ``{"video_id": "video7", "question": ..., "answer": ...}`` with optional ``question_id`` and
   ``type`` (the question type; ``""`` when absent).

A record without ``question_id`` (``id``) gets ``"<file stem>:<index>"``. Answers are kept as written
(``eval.qa.normalize_answer`` is applied at scoring time); either every record has one or none does (a
question-only file to answer).
"""

from __future__ import annotations

import json
import math
import os
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fileio import atomic_write_json
from .ids import UnsafeIdError, check_video_id

__all__ = [
    "ANN_FORMATS",
    "MSVD_SPLITS",
    "SPLITS",
    "AnnotationError",
    "QAItem",
    "UnsafeAnnotationIdError",
    "add_ann_format_argument",
    "add_qa_mapping_argument",
    "detect_format",
    "has_splits",
    "is_qa_annotation",
    "load_annotations",
    "load_predictions",
    "load_qa_annotations",
    "qa_video_map",
    "load_qa_predictions",
    "load_segments",
    "normalize_answer",
    "normalize_caption",
    "parse_clip_name",
    "save_predictions",
    "save_qa_predictions",
]

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


# ----------------------------------------------------------------------------------------------
# MSVD, VATEX, VALOR-32K, CSV/TSV

ANN_FORMATS = ("auto", "msrvtt", "msvd", "vatex", "valor", "csv", "tsv")

# MSVD's standard split (Venugopalan et al. 2015, used by every later paper): vidN ranges, inclusive.
MSVD_SPLITS = {"train": (1, 1200), "validate": (1201, 1300), "test": (1301, 1970)}
MSVD_MAPPING_NAME = "youtube_mapping.txt"

# Per-split files of the data sets that ship one file per split (their folder is the file with splits).
SPLIT_FILES = {
    "valor": {"train": ("desc_train.json",), "validate": ("desc_val.json",), "test": ("desc_test.json",)},
    "vatex": {"train": ("vatex_training*.json",), "validate": ("vatex_validation*.json",),
              "test": ("vatex_public_test_english*.json", "vatex_public_test*.json")},
}


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


# column names a header row of a caption table may use: a first row made of them is a header, not a caption
_HEADER_WORDS = {"id", "vid", "video", "videoid", "video_id", "video_name", "name", "clip", "clip_id", "file",
                 "filename", "path", "caption", "captions", "text", "sentence", "description", "desc", "label",
                 "annotation"}


def _looks_like_header(row: list[str]) -> bool:
    cells = [cell.strip().lower() for cell in row]
    return all(cells) and all(" " not in cell for cell in cells) and any(cell in _HEADER_WORDS for cell in cells[1:])


def _load_table(path: str, delimiter: str) -> dict[str, list[str]]:
    """A lab's own ``video_id<delimiter>caption`` rows; an optional header names the two columns."""
    rows = _read_table(path, delimiter)
    name = "TSV" if delimiter == "\t" else "CSV"
    columns, first, width = (0, 1), 0, 2
    if rows and {"video_id", "caption"} <= {cell.strip().lower() for cell in rows[0]}:
        header = [cell.strip().lower() for cell in rows[0]]
        columns, first, width = (header.index("video_id"), header.index("caption")), 1, len(header)
    elif rows and _looks_like_header(rows[0]):
        raise AnnotationError(f"{path}: line 1 ({delimiter.join(rows[0])}) looks like a header but does not name "
                              "the video_id and caption columns: rename them video_id and caption, or remove it")
    annotations: dict[str, list[str]] = {}
    for lineno, row in enumerate(rows[first:], first + 1):
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {lineno}"
        if len(row) != width:  # with or without a header: a caption's unquoted delimiter would lose words
            names = "the header's columns" if first else "video_id, caption"
            raise AnnotationError(f"{path}: {where}: expected {width} {name} fields ({names}), got {len(row)}"
                                  + ("; quote captions that contain the delimiter" if len(row) > width else ""))
        video_id = row[columns[0]].strip()
        if not video_id:
            raise AnnotationError(f"{path}: {where}: empty video_id")
        _safe_id(path, where, video_id)
        annotations.setdefault(video_id, []).append(_caption(path, f"{where} ({video_id})", row[columns[1]]))
    return annotations


def detect_format(path: str | os.PathLike) -> str:
    """The annotation format of a file or data set folder (one of ``ANN_FORMATS`` but "auto").

    By suffix and content: ``.txt`` MSVD caption list; ``.csv`` the MSVD corpus (its header) or a plain CSV;
    ``.tsv`` plain TSV; ``.json`` VATEX (``videoID`` records), VALOR (``desc`` records) or MSR-VTT; a folder
    VALOR (``desc_*.json``) or VATEX (``vatex_*.json``).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        import glob

        for fmt, splits in SPLIT_FILES.items():
            if any(glob.glob(os.path.join(glob.escape(path), pattern)) for patterns in splits.values()
                   for pattern in patterns):
                return fmt
        raise AnnotationError(f"{path}: a folder holds no known per-split annotation files "
                              "(desc_{train,val,test}.json, vatex_*.json)")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".txt":
        return "msvd"
    if suffix == ".tsv":
        return "tsv"
    if suffix == ".csv":
        rows = _read_table(path, ",")[:1]
        return "msvd" if rows and _is_msvd_csv_header(rows[0]) else "csv"
    data = _read_json(path)
    return _json_format(data)


def _json_format(data: Any) -> str:
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        if "videoID" in data[0]:
            return "vatex"
        if "desc" in data[0] and "caption" not in data[0]:
            return "valor"
    return "msrvtt"


def _split_file(path: str, fmt: str, split: str) -> str:
    """The file of ``split`` in a VALOR / VATEX folder."""
    import glob

    name = _canonical_split(path, split, SPLIT_FILES[fmt])
    for pattern in SPLIT_FILES[fmt][name]:
        found = sorted(glob.glob(os.path.join(glob.escape(path), pattern)))
        if len(found) > 1:
            raise AnnotationError(f"{path}: several {name} files ({', '.join(map(os.path.basename, found))}); "
                                  "pass the one you mean")
        if found:
            return found[0]
    raise AnnotationError(f"{path}: no {name} file ({' or '.join(SPLIT_FILES[fmt][name])}) in this folder")


def _file_split(path: str, fmt: str) -> str | None:
    """The split a single VALOR / VATEX file holds, from its name (None if the name is not a known one)."""
    import fnmatch

    for split, patterns in SPLIT_FILES.get(fmt, {}).items():
        if any(fnmatch.fnmatch(os.path.basename(path), p) for p in patterns):
            return split
    return None


def add_ann_format_argument(parser: Any) -> None:
    """``--ann-format`` for every command that reads annotations (an argparse parser or argument group)."""
    parser.add_argument("--ann-format", choices=ANN_FORMATS, default="auto",
                        help="annotation format (default auto: detected from the suffix and the content; name it "
                             "where a file could be read two ways, e.g. a .txt MSVD caption list for an extractor)")


def add_qa_mapping_argument(parser: Any) -> None:
    """``--qa-mapping`` for every command that reads QA annotations (an argparse parser or argument group)."""
    parser.add_argument("--qa-mapping", default=None, metavar="FILE",
                        help=f"MSVD-QA: the release's {MSVD_MAPPING_NAME} (lines CLIP_NAME vidN) or a JSON "
                             "{\"vidN\": clip name}, mapping the integer video ids to the clip names the features "
                             f"are saved under (default: the {MSVD_MAPPING_NAME} beside the QA file, if any)")


def has_splits(path: str | os.PathLike, format: str = "auto") -> bool:
    """True if ``path`` holds several splits: the official MSR-VTT file, MSVD with ``youtube_mapping.txt``
    beside it, a VALOR / VATEX folder. Unreadable files answer False (loading them reports the problem)."""
    path = os.fspath(path)
    try:
        fmt = detect_format(path) if format == "auto" else format
        if os.path.isdir(path):
            return True
        if fmt == "msvd":
            return os.path.isfile(os.path.join(os.path.dirname(os.path.abspath(path)), MSVD_MAPPING_NAME))
        if fmt == "msrvtt":
            data = _read_json(path)
            return isinstance(data, Mapping) and "videos" in data and "sentences" in data
    except (AnnotationError, OSError):
        return False
    return False


def load_annotations(path: str | os.PathLike, split: str | None = None, format: str = "auto", *,
                     require_captions: bool = True, as_written: bool = False) -> dict[str, list[str]]:
    """Load reference captions from any supported format (see the module docstring).

    Args:
        path: annotation file, or a VALOR / VATEX folder of per-split files.
        split: ``"train"``, ``"validate"`` (or ``"val"``), ``"test"``, for files with splits (official
            MSR-VTT, MSVD with its mapping, a VALOR / VATEX folder; a single VALOR / VATEX file accepts its own
            split only); ``None`` keeps every video of the file (of every file of a folder).
        format: one of ``ANN_FORMATS``; ``"auto"`` detects it (:func:`detect_format`).
        require_captions: False accepts videos without reference captions (VATEX's test file without
            ``enCap``): they can be captioned, not trained on or scored.
        as_written: return the captions as the file writes them, only whitespace runs collapsed (case and
            punctuation kept): what ``eval.evaluate`` gives pycocoevalcap, whose PTB tokenizer does the rest,
            exactly as the COCO caption evaluation does. Default: :func:`normalize_caption`'d (training, SCST).

    Returns:
        ``{video_id: [normalised caption, ...]}``, videos in file order (MSVD splits: vidN order), captions
        in file order.

    Raises:
        AnnotationError: malformed file, unknown format, missing ``video_id``, empty caption, duplicate video
            id / ``sen_id`` / key, unknown split, a split requested from a file that has no splits, videos
            without captions when ``require_captions``.
    """
    path = os.fspath(path)
    if format not in ANN_FORMATS:
        raise AnnotationError(f"{path}: unknown annotation format {format!r}; known: {', '.join(ANN_FORMATS)}")
    fmt = detect_format(path) if format == "auto" else format
    if os.path.isdir(path):
        if fmt not in SPLIT_FILES:
            raise AnnotationError(f"{path}: a folder of annotations is read as VALOR or VATEX only, not {fmt}")
        splits = [split] if split is not None else [s for s in SPLITS if _has_split_file(path, fmt, s)]
        annotations: dict[str, list[str]] = {}
        for name in splits:
            file = _split_file(path, fmt, name)
            part = load_annotations(file, None, fmt, require_captions=require_captions, as_written=as_written)
            clash = set(part) & set(annotations)
            if clash:
                raise AnnotationError(f"{file}: {len(clash)} videos also appear in another split, "
                                      f"e.g. {min(clash)}")
            annotations.update(part)
        return annotations

    if fmt == "msvd":
        annotations = _load_msvd(path, split)
    elif fmt in ("csv", "tsv"):
        _no_split(path, split)
        annotations = _load_table(path, "," if fmt == "csv" else "\t")
    else:
        data = _read_json(path)
        if fmt in ("vatex", "valor"):
            own = _file_split(path, fmt)
            if split is not None and (own is None or _canonical_split(path, split, SPLITS) != own):
                raise AnnotationError(
                    f"{path}: split {split!r} requested from a single {fmt.upper()} file "
                    f"({'its split: ' + own if own else 'its split is unknown'}); pass the folder holding "
                    "every split's file, or this split's file without --split")
            annotations = (_load_vatex if fmt == "vatex" else _load_valor)(path, data)
        elif isinstance(data, Mapping) and "videos" in data and "sentences" in data:
            return _normalized(_load_official(path, data, split), as_written)
        else:
            _no_split(path, split)
            if isinstance(data, list):
                annotations = _load_records(path, data)
            elif isinstance(data, Mapping):
                annotations = _load_mapping(path, data)
            else:
                raise AnnotationError(f"{path}: unknown annotation format (top level is {type(data).__name__})")
    if not annotations:
        raise AnnotationError(f"{path}: no annotations")
    without = [v for v, caps in annotations.items() if not caps]
    if without and require_captions:
        raise AnnotationError(
            f"{path}: {len(without)} of {len(annotations)} videos have no (English) reference caption, e.g. "
            f"{', '.join(without[:3])}: such a file can be captioned (videoblip2.predict) but not trained on or "
            "scored")
    return _normalized(annotations, as_written)


def _has_split_file(path: str, fmt: str, split: str) -> bool:
    try:
        _split_file(path, fmt, split)
    except AnnotationError:
        return False
    return True


def _no_split(path: str, split: str | None) -> None:
    if split is not None:
        raise AnnotationError(
            f"{path}: split {split!r} requested, but this file has no splits (files with splits: the official "
            "MSR-VTT JSON ('videos' + 'sentences'), MSVD with youtube_mapping.txt, a VALOR / VATEX folder)")


# ----------------------------------------------------------------------------------------------
# clip segments (for trimming full-length videos in the extractors)


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
    data = _read_json(path, "predictions file")
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


# ------------------------------------------------------------------------------------------------
# question answering

QA_MODALITIES = ("Audio", "Visual", "Audio-Visual")
_PLACEHOLDER = re.compile(r"<[^<>\s]+>")
_QUESTION_KEYS = ("question", "question_content")


@dataclass(frozen=True)
class QAItem:
    """One question of a QA annotation file, in the form every QA tool of VideoBLIP2 shares."""

    question_id: str  # str() of the file's id; "<file stem>:<index>" when the record has none
    video_id: str  # the feature file stem
    question: str  # placeholders filled (MUSIC-AVQA), whitespace collapsed, case kept
    answer: str | None  # as written in the file; None when the file has no answers
    qtype: str  # "Audio/Counting" (MUSIC-AVQA), first word (MSRVTT-QA/MSVD-QA), the record's "type" (plain)
    modality: str | None  # "Audio" | "Visual" | "Audio-Visual" for MUSIC-AVQA, else None


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


def _looks_like_qa(data: Any) -> bool:
    if isinstance(data, Mapping) and any(key in data for key in _QUESTION_KEYS):
        return True  # a JSON Lines file of one record
    return (isinstance(data, list) and bool(data) and isinstance(data[0], Mapping)
            and any(key in data[0] for key in _QUESTION_KEYS))


def is_qa_annotation(path: str | os.PathLike) -> bool:
    """True if ``path`` is a JSON/JSONL list of QA records (its first record has ``question`` or
    ``question_content``). A missing or unreadable file is ``False``: the caption loader reports it."""
    try:
        return _looks_like_qa(_read_json_or_lines(path))
    except (AnnotationError, OSError):
        return False


def _read_video_map(video_map: str | os.PathLike | Mapping[str, str]) -> dict[str, str]:
    """``{"vidN": clip_name}`` from a mapping, a JSON object, or MSVD's ``youtube_mapping.txt``."""
    if isinstance(video_map, Mapping):
        return {str(k): str(v) for k, v in video_map.items()}
    path = os.fspath(video_map)
    if path.endswith(".json"):
        data = _read_json(path)
        if not isinstance(data, Mapping):
            raise AnnotationError(f"{path}: video map must be a JSON object {{\"vidN\": \"clip name\"}}")
        return {str(k): str(v) for k, v in data.items()}
    return {f"vid{number}": clip for clip, number in _read_msvd_mapping(path).items()}


def _json_string_list(path: str, where: str, record: Mapping[str, Any], key: str) -> list[str]:
    value = record.get(key)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise AnnotationError(f"{path}: {where}: {key!r} is not a JSON list string: {record[key]!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AnnotationError(f"{path}: {where}: {key!r} must be a JSON list of strings, got {record.get(key)!r}")
    return value


def _qa_text(path: str, where: str, record: Mapping[str, Any], key: str) -> str:
    value = record[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise AnnotationError(f"{path}: {where}: {key!r} must be a non-empty string, got {value!r}")
    return " ".join(value.split())


# MSRVTT-QA's records carry the question type as an integer category_id: the type is that category, named
# after the most common question word of its questions in the file (no id -> name table to get wrong); a
# file without it (MSVD-QA) is typed by the question word.
_CATEGORY_PREFIX = "\0category "
_CONTRACTION = re.compile(r"(['\u2019](s|re|d|ll|ve|m))$")


def question_word(question: str) -> str:
    """The question's first word, lowercased, contraction and punctuation dropped: "What's ..." -> "what"."""
    words = question.split()
    if not words:
        return ""
    return _CONTRACTION.sub("", words[0].lower()).strip(string.punctuation + "\u2019")


def _qa_item(path: str, index: int, record: Any, video_map: Mapping[str, str] | None,
             int_video_template: str) -> QAItem:
    where = f"record {index}"
    if not isinstance(record, Mapping):
        raise AnnotationError(f"{path}: {where}: expected an object, got {type(record).__name__}")
    if "question_id" in record or "id" in record:
        raw_id = record["question_id"] if "question_id" in record else record["id"]
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not str(raw_id).strip():
            raise AnnotationError(f"{path}: {where}: question id must be a string or an integer, got {raw_id!r}")
        question_id = str(raw_id)
        where = f"record {index} (question_id {question_id!r})"
    else:
        question_id = f"{Path(path).stem}:{index}"

    # video id -> feature stem
    if "video_id" in record:
        raw_video = record["video_id"]
        if isinstance(raw_video, int) and not isinstance(raw_video, bool):  # MSRVTT-QA / MSVD-QA release
            video_id = (video_map.get(f"vid{raw_video}") if video_map is not None
                        else int_video_template.format(raw_video))
            if video_id is None:
                raise AnnotationError(f"{path}: {where}: video id {raw_video} ('vid{raw_video}') not in the video map")
        elif isinstance(raw_video, str) and raw_video.strip():
            video_id = raw_video.strip()
        else:
            raise AnnotationError(f"{path}: {where}: 'video_id' must be a non-empty string or an integer, "
                                  f"got {raw_video!r}")
    elif "video" in record:  # LAVIS: a file name
        raw_video = record["video"]
        if not isinstance(raw_video, str) or not raw_video.strip():
            raise AnnotationError(f"{path}: {where}: 'video' must be a non-empty file name, got {raw_video!r}")
        video_id = Path(raw_video.strip()).stem  # only the stem: the checked id below never holds a folder
    else:
        raise AnnotationError(f"{path}: {where}: missing 'video_id' (or LAVIS 'video')")
    if video_map is not None and video_id in video_map:
        video_id = video_map[video_id]
    _safe_id(path, f"{where} video id", video_id)

    # question, type, modality
    modality = None
    if "question_content" in record:  # MUSIC-AVQA
        question = _qa_text(path, where, record, "question_content")
        values = _json_string_list(path, where, record, "templ_values") if "templ_values" in record else []
        slots = _PLACEHOLDER.findall(question)
        if len(slots) > len(values):
            raise AnnotationError(f"{path}: {where}: {len(slots)} placeholder(s) {', '.join(slots)} but only "
                                  f"{len(values)} templ_values {values}")
        fill = iter(values)
        question = _PLACEHOLDER.sub(lambda m: next(fill), question)
        kinds = _json_string_list(path, where, record, "type")
        if len(kinds) != 2 or not all(k.strip() for k in kinds):
            raise AnnotationError(f"{path}: {where}: 'type' must name [modality, question type], got {record['type']!r}")
        modality = kinds[0].strip()
        qtype = f"{modality}/{kinds[1].strip()}"
    elif "question" in record:
        question = _qa_text(path, where, record, "question")
        if "type" in record:
            if not isinstance(record["type"], str):
                raise AnnotationError(f"{path}: {where}: 'type' must be a string, got {record['type']!r}")
            qtype = record["type"].strip()
        elif isinstance(record.get("category_id"), int) and not isinstance(record["category_id"], bool):
            qtype = f"{_CATEGORY_PREFIX}{record['category_id']}"  # named after loading (_name_categories)
        elif "id" in record or "video" in record or isinstance(record["video_id"], int):  # MSRVTT/MSVD-QA
            qtype = question_word(question)
        else:
            qtype = ""
    else:
        raise AnnotationError(f"{path}: {where}: missing 'question' (or MUSIC-AVQA 'question_content')")

    answer_key = "anser" if "anser" in record else "answer" if "answer" in record else None
    answer = _qa_text(path, where, record, answer_key) if answer_key else None
    if answer is not None and answer_key == "answer" and "anser" in record:
        raise AnnotationError(f"{path}: {where}: both 'anser' and 'answer'")
    return QAItem(question_id, video_id, question, answer, qtype, modality)


def qa_video_map(path: str | os.PathLike, records: Any = None) -> str | None:
    """The ``youtube_mapping.txt`` beside a QA file whose records have integer video ids (MSVD-QA), or None.

    ``records``: the file's parsed records, when the caller has them (else the file is read).
    """
    beside = os.path.join(os.path.dirname(os.path.abspath(os.fspath(path))), MSVD_MAPPING_NAME)
    if not os.path.isfile(beside):
        return None
    if records is None:
        records = _read_json_or_lines(os.fspath(path))
    if isinstance(records, Mapping):
        records = [records]
    integer_ids = isinstance(records, list) and any(
        isinstance(r, Mapping) and isinstance(r.get("video_id"), int) and not isinstance(r.get("video_id"), bool)
        for r in records[:100])
    return beside if integer_ids else None


def load_qa_annotations(path: str | os.PathLike,
                        video_map: str | os.PathLike | Mapping[str, str] | None = None,
                        int_video_template: str | None = None) -> list[QAItem]:
    """Load the questions of a QA annotation file in any supported format (see the module docstring).

    Args:
        path: JSON list or JSON Lines file.
        video_map: MSVD-QA: ``youtube_mapping.txt`` (``CLIP_NAME vidN`` lines), a JSON object or a mapping
            ``{"vidN": stem}``; integer video ids N then map through ``vidN``. None: a file with integer video
            ids uses the ``youtube_mapping.txt`` beside it when there is one (the MSVD-QA release layout:
            ``train_qa.json``, ``val_qa.json``, ``test_qa.json`` and ``youtube_mapping.txt`` in one folder),
            as the MSVD caption loader does (``qa_video_map``).
        int_video_template: without ``video_map``, the stem of integer video id N (default ``video{N}``,
            MSR-VTT's names); naming it also turns off finding ``youtube_mapping.txt`` beside the file.

    Returns:
        One :class:`QAItem` per record, in file order.

    Raises:
        AnnotationError: malformed JSON, not a list of QA records, a record without video id or question,
            a bad ``type`` / ``templ_values``, too few template values, an empty answer, a duplicate question
            id, answers on some records but not on others.
    """
    path = os.fspath(path)
    data = _read_json_or_lines(path)
    if isinstance(data, Mapping) and any(key in data for key in _QUESTION_KEYS):
        data = [data]  # a JSON Lines file of one record
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: a QA annotation file is a list of question records, "
                              f"got {type(data).__name__}")
    if not data:
        raise AnnotationError(f"{path}: no questions")
    if video_map is None and int_video_template is None:
        video_map = qa_video_map(path, data)
    int_video_template = "video{}" if int_video_template is None else int_video_template
    mapping = _read_video_map(video_map) if video_map is not None else None
    items: list[QAItem] = []
    seen: dict[str, int] = {}
    for index, record in enumerate(data):
        item = _qa_item(path, index, record, mapping, int_video_template)
        if item.question_id in seen:
            raise AnnotationError(f"{path}: record {index}: duplicate question_id {item.question_id!r} "
                                  f"(first in record {seen[item.question_id]})")
        seen[item.question_id] = index
        if items and (item.answer is None) != (items[0].answer is None):
            raise AnnotationError(f"{path}: record {index} (question_id {item.question_id!r}): "
                                  f"{'no' if item.answer is None else 'an'} answer, unlike record 0 "
                                  "(every record has an answer or none does)")
        items.append(item)
    return _name_categories(items)


def _name_categories(items: list[QAItem]) -> list[QAItem]:
    """Question types from category_id: "category N" -> the most common question word of its questions."""
    from collections import Counter
    from dataclasses import replace

    words: dict[str, Counter] = {}
    for item in items:
        if item.qtype.startswith(_CATEGORY_PREFIX):
            words.setdefault(item.qtype, Counter())[question_word(item.question)] += 1
    if not words:
        return items
    names = {category: counts.most_common(1)[0][0] for category, counts in words.items()}
    shared = {name for name in names.values() if list(names.values()).count(name) > 1}
    names = {category: (f"{name} ({category[len(_CATEGORY_PREFIX):]})" if name in shared else name)
             for category, name in names.items()}
    return [replace(item, qtype=names[item.qtype]) if item.qtype in names else item for item in items]


ARTICLES = frozenset({"a", "an", "the"})
_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
NUMBER_WORDS = {**{word: i for i, word in enumerate(_UNITS)}, **_TENS}
_ANSWER_PUNCTUATION = re.compile("[" + re.escape(string.punctuation.replace("'", "")) + "]")


def normalize_answer(text: str) -> str:
    """The form QA answers are compared in (eval.qa's docstring: lowercase, punctuation, articles, number
    words): ``"Two."`` -> ``"2"``."""
    if not isinstance(text, str):
        raise TypeError(f"answer must be a str, got {type(text).__name__}")
    text = _ANSWER_PUNCTUATION.sub(" ", text.lower().replace("'", "").replace("\u2019", ""))
    words = [w for w in text.split() if w not in ARTICLES]
    out: list[str] = []
    for word in words:
        if word in NUMBER_WORDS:
            value = NUMBER_WORDS[word]
            if out and 1 <= value <= 9 and out[-1].isdigit() and int(out[-1]) in _TENS.values():
                out[-1] = str(int(out[-1]) + value)  # "twenty one" -> "21"
                continue
            word = str(value)
        out.append(word)
    return " ".join(out)


def save_qa_predictions(records: Sequence[Mapping[str, Any]] | Iterable[Mapping[str, Any]],
                        path: str | os.PathLike) -> None:
    """Write ``[{"question_id", "video_id", "question", "answer"}]`` atomically (temporary file + rename).

    Each record needs ``question_id`` and ``answer``; ``video_id`` and ``question`` are written when given.
    """
    out = []
    for i, record in enumerate(records):
        if "question_id" not in record or "answer" not in record:
            raise ValueError(f"prediction record {i} needs 'question_id' and 'answer', got {sorted(record)}")
        row = {"question_id": str(record["question_id"])}
        for key in ("video_id", "question"):
            if key in record:
                row[key] = str(record[key])
        row["answer"] = str(record["answer"])
        out.append(row)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_json(path, out, ensure_ascii=False)


def load_qa_predictions(path: str | os.PathLike) -> dict[str, str]:
    """Read a QA predictions file (JSON list or JSONL of ``{"question_id", "answer", ...}``).

    Returns:
        ``{question_id: answer}`` (ids as strings, answers as written; an empty answer is allowed: it scores 0).

    Raises:
        AnnotationError: not a list of records, a missing ``question_id`` / ``answer``, an answer that is not
            a string, or a question answered twice.
    """
    path = os.fspath(path)
    data = _read_json_or_lines(path, "predictions file")
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: QA predictions must be a list of {{\"question_id\", \"answer\"}} records, "
                              f"got {type(data).__name__}")
    predictions: dict[str, str] = {}
    for i, record in enumerate(data):
        if not isinstance(record, Mapping):
            raise AnnotationError(f"{path}: record {i}: expected an object, got {type(record).__name__}")
        if "question_id" not in record:
            raise AnnotationError(f"{path}: record {i}: missing 'question_id'")
        raw_id = record["question_id"]
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
            raise AnnotationError(f"{path}: record {i}: question_id must be a string or an integer, got {raw_id!r}")
        question_id = str(raw_id)
        where = f"record {i} (question_id {question_id!r})"
        if "answer" not in record:
            raise AnnotationError(f"{path}: {where}: missing 'answer'")
        if not isinstance(record["answer"], str):
            raise AnnotationError(f"{path}: {where}: answer must be a string, got {record['answer']!r}")
        if question_id in predictions:
            raise AnnotationError(f"{path}: {where}: question answered twice")
        predictions[question_id] = record["answer"]
    return predictions
