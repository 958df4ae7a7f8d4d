"""The question-answer formats: MUSIC-AVQA, MSRVTT-QA / MSVD-QA as released, LAVIS, plain JSON / JSONL
(:class:`QAItem`; :func:`videoblip2.annotations.load_qa_annotations` reads a file)."""

from __future__ import annotations

import json
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import AnnotationError, _read_json, _read_json_or_lines, _safe_id
from .msvd import MSVD_MAPPING_NAME, _read_msvd_mapping


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


def _looks_like_qa(data: Any) -> bool:
    if isinstance(data, Mapping) and any(key in data for key in _QUESTION_KEYS):
        return True  # a JSON Lines file of one record
    return (isinstance(data, list) and bool(data) and isinstance(data[0], Mapping)
            and any(key in data[0] for key in _QUESTION_KEYS))


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
