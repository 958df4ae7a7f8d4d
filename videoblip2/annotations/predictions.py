"""Prediction files: captions ``[{"video_id", "caption"}]`` and answers
``[{"question_id", "video_id", "question", "answer"}]``, written atomically."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..fileio import atomic_write_json
from .common import AnnotationError, _read_json, _read_json_or_lines, _video_id


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
