"""Format detection and dispatch: :func:`detect_format`, :func:`load_annotations` (every caption
format, splits, data set folders), :func:`is_qa_annotation` and :func:`load_qa_annotations`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .common import (
    AnnotationError,
    SPLITS,
    _canonical_split,
    _normalized,
    _read_json,
    _read_json_or_lines,
    _read_table,
)
from .msrvtt import _load_mapping, _load_official, _load_records
from .msvd import MSVD_MAPPING_NAME, _is_msvd_csv_header, _load_msvd
from .qa import QAItem, _QUESTION_KEYS, _looks_like_qa, _name_categories, _qa_item, _read_video_map, qa_video_map
from .table import _load_table
from .valor import _load_valor
from .vatex import _load_vatex


ANN_FORMATS = ("auto", "msrvtt", "msvd", "vatex", "valor", "csv", "tsv")


# Per-split files of the data sets that ship one file per split (their folder is the file with splits).
SPLIT_FILES = {
    "valor": {"train": ("desc_train.json",), "validate": ("desc_val.json",), "test": ("desc_test.json",)},
    "vatex": {"train": ("vatex_training*.json",), "validate": ("vatex_validation*.json",),
              "test": ("vatex_public_test_english*.json", "vatex_public_test*.json")},
}


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


def is_qa_annotation(path: str | os.PathLike) -> bool:
    """True if ``path`` is a JSON/JSONL list of QA records (its first record has ``question`` or
    ``question_content``). A missing or unreadable file is ``False``: the caption loader reports it."""
    try:
        return _looks_like_qa(_read_json_or_lines(path))
    except (AnnotationError, OSError):
        return False


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
