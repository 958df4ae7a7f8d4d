"""Caption and question annotations: one loader for MSR-VTT, MSVD, VATEX, VALOR-32K and plain CSV/TSV
files, caption normalisation, prediction files. One module per format family (``msrvtt``, ``msvd``,
``vatex``, ``valor``, ``table`` for CSV/TSV, ``qa``), as torchvision keeps one file per data set;
``registry`` detects the format and dispatches (``load_annotations``, ``load_qa_annotations``),
``segments`` reads clip times, ``predictions`` the prediction files, ``common`` holds what they share.

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

       {"video_id": "00000272", "question_id": 50, "type": "[\"Audio-Visual\", \"Temporal\"]",
        "question_content": "Where is the <FL> sounding instrument?", "templ_values": "[\"first\"]",
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

from .common import AnnotationError, SPLITS, UnsafeAnnotationIdError, normalize_caption
from .msvd import MSVD_MAPPING_NAME, MSVD_SPLITS
from .qa import ARTICLES, NUMBER_WORDS, QAItem, QA_MODALITIES, normalize_answer, qa_video_map, question_word
from .registry import (
    ANN_FORMATS,
    SPLIT_FILES,
    add_ann_format_argument,
    add_qa_mapping_argument,
    detect_format,
    has_splits,
    is_qa_annotation,
    load_annotations,
    load_qa_annotations,
)
from .segments import load_segments, parse_clip_name
from .predictions import load_predictions, load_qa_predictions, save_predictions, save_qa_predictions

# also importable from here, outside __all__ as before the split: ARTICLES, MSVD_MAPPING_NAME, NUMBER_WORDS,
# QA_MODALITIES, SPLIT_FILES, question_word
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
