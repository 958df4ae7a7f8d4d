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
   MSVD-QA numbers its clips ``vidN``: pass ``video_map=`` the release's ``youtube_mapping.txt`` (lines
   ``CLIP_NAME vidN``) or a JSON ``{"vidN": "CLIP_NAME"}`` to get the clip-name stems the extractors write,
   or ``int_video_template="vid{}"`` if the feature files are named ``vidN``. The LAVIS form ``{"question_id", "video": "video7010.mp4", "question", "answer"}`` uses
   the file stem of ``video`` (mapped through ``video_map`` too when it is a key there). Question type: the
   question's first word, lowercased (``what``, ``who``, ``how``, ...).
6. Plain: ``{"video_id": "video7", "question": ..., "answer": ...}`` with optional ``question_id`` and
   ``type`` (the question type; ``""`` when absent).

A record without ``question_id`` (``id``) gets ``"<file stem>:<index>"``. Answers are kept as written
(``eval.qa.normalize_answer`` is applied at scoring time); either every record has one or none does (a
question-only file to answer).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fileio import atomic_write_json

__all__ = [
    "SPLITS",
    "AnnotationError",
    "QAItem",
    "is_qa_annotation",
    "load_annotations",
    "load_predictions",
    "load_qa_annotations",
    "load_qa_predictions",
    "normalize_caption",
    "save_predictions",
    "save_qa_predictions",
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


def _read_json_or_lines(path: str | os.PathLike) -> Any:
    """Parse a JSON file, or a JSON Lines file (``.jsonl``, or any file whose JSON has extra data)."""
    path = os.fspath(path)
    if not path.endswith(".jsonl"):
        try:
            return _read_json(path)
        except AnnotationError as e:
            if "Extra data" not in str(e):
                raise
    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation file not found: {path}")
    records = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise AnnotationError(f"{path}: line {lineno}: malformed JSON: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not UTF-8 text ({e.reason})") from None
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
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video map not found: {path}")
    mapping: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise AnnotationError(f"{path}: line {lineno}: expected 'CLIP_NAME vidN', got {line.strip()!r}")
            clip, vid = parts
            if vid in mapping:
                raise AnnotationError(f"{path}: line {lineno}: {vid!r} mapped twice")
            mapping[vid] = clip
    return mapping


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
        video_id = Path(raw_video.strip()).stem
    else:
        raise AnnotationError(f"{path}: {where}: missing 'video_id' (or LAVIS 'video')")
    if video_map is not None and video_id in video_map:
        video_id = video_map[video_id]

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
        elif "id" in record or "video" in record or isinstance(record["video_id"], int):  # MSRVTT/MSVD-QA
            qtype = question.split()[0].lower()
        else:
            qtype = ""
    else:
        raise AnnotationError(f"{path}: {where}: missing 'question' (or MUSIC-AVQA 'question_content')")

    answer_key = "anser" if "anser" in record else "answer" if "answer" in record else None
    answer = _qa_text(path, where, record, answer_key) if answer_key else None
    if answer is not None and answer_key == "answer" and "anser" in record:
        raise AnnotationError(f"{path}: {where}: both 'anser' and 'answer'")
    return QAItem(question_id, video_id, question, answer, qtype, modality)


def load_qa_annotations(path: str | os.PathLike,
                        video_map: str | os.PathLike | Mapping[str, str] | None = None,
                        int_video_template: str = "video{}") -> list[QAItem]:
    """Load the questions of a QA annotation file in any supported format (see the module docstring).

    Args:
        path: JSON list or JSON Lines file.
        video_map: MSVD-QA: ``youtube_mapping.txt`` (``CLIP_NAME vidN`` lines), a JSON object or a mapping
            ``{"vidN": stem}``; integer video ids N then map through ``vidN``.
        int_video_template: without ``video_map``, the stem of integer video id N (default ``video{N}``,
            MSR-VTT's names).

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
    return items


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
    data = _read_json_or_lines(path)
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
