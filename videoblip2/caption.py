"""Caption raw video files end to end: decode -> CLIP/CLAP features -> VideoBLIP2.generate.

    python -m videoblip2.caption clip1.mp4 clip2.webm --model runs/scst/best \\
        --clip-pretrained /models/ViT-L-14-openai.safetensors --quick-gelu \\
        --clap-pretrained /models/630k-audioset-best.pt

prints ``path<TAB>caption`` per video (``--json`` for a JSON list); ``--question "Is the cello playing?"``
answers the question about each video instead (``path<TAB>answer``; the question goes into the model's
``qa_prompt_template``). The CLIP/CLAP settings must be the ones the model's training features were extracted
with (``FEATURES/meta.json``); frames and audio windows are capped at the model's ``max_frames`` /
``max_audio_windows``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .cli import ArgumentParser, add_renamed_flag, non_empty, positive_float, positive_int
from .decoding import PREDICT_NUM_BEAMS, DecodingOptions, add_decoding_args
from .defaults import (
    DEFAULT_CLAP_MODEL,
    DEFAULT_CLIP_MODEL,
    DEFAULT_CLIP_PRETRAINED,
    DEFAULT_HOP_S,
    DEFAULT_MAX_WINDOWS,
    DEFAULT_SILENCE_THRESHOLD,
    DEFAULT_WINDOW_S,
    VIDEO_EXTENSIONS,
)
from .ids import UnsafeIdError, check_video_id

if TYPE_CHECKING:  # torch and the extractors load when first used, not at import (`--help` answers at once)
    import torch

    from .extract import ClapWindowEncoder, ClipFrameEncoder

logger = logging.getLogger(__name__)


def _pad(rows: list[np.ndarray | None], max_len: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-video ``[T, dim]`` arrays (None = absent) -> float32 ``(B, max_len, dim)`` + bool mask ``(B, max_len)``."""
    import torch

    from .data import lengths_to_mask, pad_or_subsample

    out = np.zeros((len(rows), max_len, dim), dtype=np.float16)
    lengths = np.zeros(len(rows), dtype=np.int64)
    for i, array in enumerate(rows):
        if array is not None:
            out[i], lengths[i] = pad_or_subsample(array, max_len)
    return torch.from_numpy(out).float(), lengths_to_mask(torch.from_numpy(lengths), max_len)


def expand_folders(paths: Sequence[str | os.PathLike]) -> list[str | os.PathLike]:
    """Each folder becomes the video files under it (recursively, sorted), as the extractors read folders.

    Raises:
        FileNotFoundError: a folder without any video file (``videoblip2.extract.VIDEO_EXTENSIONS``).
        UnsafeIdError: a file whose stem (its video id) breaks ``videoblip2.ids.check_video_id``.
    """
    from .extract import videos_in

    out: list[str | os.PathLike] = []
    for path in paths:
        if os.path.isdir(path):
            found = videos_in(path)
            if not found:
                raise FileNotFoundError(f"{path}: a folder without video files ({', '.join(VIDEO_EXTENSIONS)})")
            out += [str(f) for f in found]
        else:
            check_video_id(Path(path).stem, f"{path}: file name")  # the video_id of its result
            out.append(path)
    return out


@dataclass
class VideoFeatures:
    """One video's features, extracted once by :func:`extract_video` and used by any number of
    :func:`generate_from_features` calls (a caption, questions, ablations).

    ``video`` and ``audio`` hold float16-rounded values (as the feature stores keep them, what the model was
    trained on) in float32 arrays, at most ``max_frames`` / ``max_audio_windows`` rows.
    """

    path: str
    video_id: str
    video: np.ndarray  # float32 (T_v, video_dim)
    audio: np.ndarray | None  # float32 (T_a, audio_dim); None = no sound (no audio stream, silence, or no CLAP)
    frame_indices: np.ndarray  # int64 (T_v,): frame numbers in the file
    frame_times: np.ndarray  # float64 (T_v,): seconds
    audio_window_times: np.ndarray  # float64 (T_a, 2): start, end seconds of each window; (0, 2) without sound
    duration: float | None  # seconds, as the container states it
    error: str | None = None  # set (and video empty) when a caller records a failed extraction instead of raising


def extract_video(
    path: str | os.PathLike,
    clip: ClipFrameEncoder,
    clap: ClapWindowEncoder | None = None,
    *,
    max_frames: int,
    fps: float | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    hop_s: float = DEFAULT_HOP_S,
    silence_threshold: float = DEFAULT_SILENCE_THRESHOLD,
    max_audio_windows: int = DEFAULT_MAX_WINDOWS,
) -> VideoFeatures:
    """Decode one video file and run CLIP on its sampled frames and CLAP on its audio windows, once.

    Args:
        path: a video file (any container/codec FFmpeg reads).
        clip: frame encoder (``videoblip2.extract.load_clip``).
        clap: audio encoder (``videoblip2.extract.load_clap``); None: the video is treated as silent.
        max_frames: frames to sample (the model's ``config.max_frames``), uniformly, or at ``fps``.
        window_s: audio window length in seconds, as in ``features.audio``.
        hop_s: audio window hop in seconds, as in ``features.audio``.
        silence_threshold: peak below which a video is silent, as in ``features.audio``.
        max_audio_windows: at most this many windows, spread evenly (the model's ``config.max_audio_windows``).

    Raises:
        ExtractionError: the file (or its audio track) cannot be decoded; the message names the file.
        UnsafeIdError: the file name (its video id) breaks ``videoblip2.ids.check_video_id``.
    """
    from .extract import (audio_window_times, audio_windows, decode_audio, decode_sampled_frames, is_silent,
                          media_duration)

    path = str(path)
    video_id = check_video_id(Path(path).stem, f"{path}: file name")
    sampled = decode_sampled_frames(path, max_frames, fps=fps, transform=clip.prepare)
    video = clip.encode(sampled.frames).numpy().astype(np.float16).astype(np.float32)  # (T_v, video_dim)
    audio, window_times = None, np.zeros((0, 2))
    if clap is not None:
        wave = decode_audio(path, clap.sample_rate)
        if not is_silent(wave, silence_threshold):
            windows = audio_windows(wave, window_s, hop_s, max_audio_windows, clap.sample_rate)
            audio = clap.encode(windows).numpy().astype(np.float16).astype(np.float32)  # (T_a, audio_dim)
            window_times = audio_window_times(len(wave), window_s, hop_s, max_audio_windows, clap.sample_rate)
    return VideoFeatures(path=path, video_id=video_id, video=video, audio=audio,
                         frame_indices=sampled.indices, frame_times=sampled.times,
                         audio_window_times=window_times, duration=media_duration(path))


# The ablations of `generate_from_features` -> the mode of videoblip2.data.ablate_features that does it.
FEATURE_ABLATIONS = {"no_audio": "audio", "shuffle_frames": "frame-order", "no_video": "video"}


def generate_from_features(
    model: Any,
    features: Sequence[VideoFeatures],
    *,
    prompt: str | None = None,
    question: str | Sequence[str] | None = None,
    decoding: DecodingOptions | None = None,
    ablate: str | None = None,
    batch_size: int = 8,
    seed: int = 0,
) -> list[str]:
    """Captions (or answers) for already extracted videos: no decoding, no CLIP/CLAP.

    Rows are batched per distinct question (or the prompt), in order, so every output is exactly what asking that prompt of
    those videos alone gives (``caption_videos`` gives the same strings). To ask N questions of one video,
    pass ``[features] * N`` and the N questions.

    Args:
        model: a ``VideoBLIP2`` (put in eval mode).
        features: from :func:`extract_video`; the same object may appear several times.
        prompt: the instruction for every row (default: ``model.config.prompt``).
        question: one question for every row, or one per row (``len(features)``): the prompt is
            ``model.config.qa_prompt(question)``, a long question cut at a word, never the template
            (``VideoBLIP2.tokenize_questions``; a warning says so).
        decoding: decoding options (default greedy, ``DecodingOptions()``); unset ones take the model's
            defaults (``DecodingOptions.for_model``).
        ablate: None, "no_audio" (every video silent), "shuffle_frames" (each video's frames in the order
            ``videoblip2.data.frame_permutation(T_v, video_id, seed)``) or "no_video" (no visual content):
            ``videoblip2.data.ablate_features`` modes "audio", "frame-order", "video", as ``predict --ablate``.
        batch_size: videos per ``generate`` call.
        seed: the frame shuffling seed ("shuffle_frames").

    Returns:
        One string per row of ``features``, in order.
    """
    from .data import PromptTokens, ablate_features

    if prompt is not None and question is not None:
        raise ValueError("give a prompt or a question, not both")
    if ablate is not None and ablate not in FEATURE_ABLATIONS:
        raise ValueError(f"unknown ablation {ablate!r}; choose one of {', '.join(FEATURE_ABLATIONS)} or None")
    features = list(features)
    failed = [f for f in features if f.error is not None]
    if failed:
        raise ValueError(f"{failed[0].path}: no features ({failed[0].error})")
    config = model.config
    if question is None:
        questions: list[str | None] = [None] * len(features)
    elif isinstance(question, str):
        questions = [question] * len(features)
    else:
        if len(question) != len(features):
            raise ValueError(f"{len(question)} questions for {len(features)} videos: give one per video")
        questions = list(question)
    # None: the model's own defaults (block_bad_endings recorded at training)
    generate_kwargs = (decoding or DecodingOptions()).for_model(config).generate_kwargs(model.t5_tokenizer)
    model.eval()
    rows_by_question: dict[str | None, list[int]] = {}
    for row, text in enumerate(questions):
        rows_by_question.setdefault(text, []).append(row)
    out: list[str] = [""] * len(features)
    for text, rows in rows_by_question.items():
        tokens = None
        if text is not None:  # a long question loses its last words, never the answer cue
            tokens, cut = model.tokenize_questions([text])
            if cut[0]:
                logger.warning("the question %r is longer than the prompt limits (max_prompt_len=%d): its last "
                               "words are cut", text, config.max_prompt_len)
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            batch = features_batch([features[row] for row in chunk], config)
            if ablate is not None:
                batch = ablate_features(batch, FEATURE_ABLATIONS[ablate], seed=seed)
            chunk_prompt = prompt if tokens is None else PromptTokens(*(x.expand(len(chunk), -1) for x in tokens))
            texts = model.generate(batch["video"], batch["video_mask"], batch["audio"], batch["audio_mask"],
                                   prompt=chunk_prompt, **generate_kwargs)
            for row, caption in zip(chunk, texts):
                out[row] = caption
    return out


def features_batch(features: Sequence[VideoFeatures], config: Any) -> dict[str, Any]:
    """The model's feature batch (``video``, ``video_mask``, ``audio``, ``audio_mask``, ``video_ids``), padded to
    ``config.max_frames`` / ``config.max_audio_windows`` as the feature stores pad."""
    video, video_mask = _pad([f.video for f in features], config.max_frames, config.video_dim)
    audio, audio_mask = _pad([f.audio for f in features], config.max_audio_windows, config.audio_dim)
    return {"video": video, "video_mask": video_mask, "audio": audio, "audio_mask": audio_mask,
            "video_ids": [f.video_id for f in features]}


def caption_videos(
    paths: Sequence[str | os.PathLike],
    model: Any,
    *,
    clip: ClipFrameEncoder | None = None,
    clap: ClapWindowEncoder | None = None,
    fps: float | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    hop_s: float = DEFAULT_HOP_S,
    silence_threshold: float = DEFAULT_SILENCE_THRESHOLD,
    batch_size: int = 8,
    num_beams: int = 1,
    max_new_tokens: int | None = None,
    prompt: str | None = None,
    on_error: str = "raise",
    decoding: DecodingOptions | None = None,
    question: str | Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Caption video files, or answer questions about each: :func:`extract_video` once per video, then
    :func:`generate_from_features`.

    Args:
        paths: video files (any container/codec FFmpeg reads) or folders of them (see `expand_folders`).
        model: a ``VideoBLIP2`` or a ``save_pretrained`` directory.
        clip: frame encoder (``videoblip2.extract.load_clip``); default ViT-L-14 with OpenAI weights (a
            download). Its ``dim`` must equal ``model.config.video_dim``.
        clap: audio encoder (``videoblip2.extract.load_clap``); None captions without sound.
        fps: sample frames at this rate instead of ``model.config.max_frames`` uniform frames.
        window_s: audio window length in seconds, as in ``features.audio``.
        hop_s: audio window hop in seconds, as in ``features.audio``.
        silence_threshold: peak below which a video is silent, as in ``features.audio``.
        batch_size: videos per ``VideoBLIP2.generate`` call.
        num_beams: beam width (``VideoBLIP2.generate``).
        max_new_tokens: longest caption (``VideoBLIP2.generate``).
        prompt: the instruction (``VideoBLIP2.generate``).
        decoding: all decoding options (``videoblip2.decoding.DecodingOptions``); replaces ``num_beams`` and
            ``max_new_tokens`` when given.
        on_error: "raise" (ExtractionError) or "record" (the video's entries get "error", caption None).
        question: answer this question (or each of these questions) instead of captioning: the prompt is
            ``model.config.qa_prompt(question)``; each entry gets "question" and "answer" (caption None).

    Returns:
        One dict per path (per path and question, questions varying fastest), in order: ``{"video": path,
        "video_id": stem, "caption": str | None, "frames": T_v, "audio_windows": T_a (0 = no sound)}``
        (+ ``"error"`` when recorded; + ``"question"``, ``"answer"`` with ``question``).
    """
    if question is not None and prompt is not None:
        raise ValueError("give a prompt or a question, not both")
    questions: list[str | None] = [None] if question is None else (
        [question] if isinstance(question, str) else list(question))
    pairs = [(path, q) for path in expand_folders(paths) for q in questions]
    return ask_videos(pairs, model, clip=clip, clap=clap, fps=fps, window_s=window_s, hop_s=hop_s,
                      silence_threshold=silence_threshold, batch_size=batch_size, num_beams=num_beams,
                      max_new_tokens=max_new_tokens, prompt=prompt, on_error=on_error, decoding=decoding)


def ask_videos(
    pairs: Sequence[tuple[str | os.PathLike, str | None]],
    model: Any,
    *,
    clip: ClipFrameEncoder | None = None,
    clap: ClapWindowEncoder | None = None,
    fps: float | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    hop_s: float = DEFAULT_HOP_S,
    silence_threshold: float = DEFAULT_SILENCE_THRESHOLD,
    batch_size: int = 8,
    num_beams: int = 1,
    max_new_tokens: int | None = None,
    prompt: str | None = None,
    on_error: str = "raise",
    decoding: DecodingOptions | None = None,
) -> list[dict[str, Any]]:
    """One result per ``(video file, question)`` pair (question None: a caption), each video extracted once
    however many pairs name it (``caption --questions FILE``). Arguments and entries as :func:`caption_videos`.
    """
    from .extract import ExtractionError, ExtractorModelError, auto_device, load_clip

    if on_error not in ("raise", "record"):
        raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}")
    for path, _ in pairs:  # before any model is loaded: a bad file name (video id) is refused first
        check_video_id(Path(path).stem, f"{path}: file name")
    if isinstance(model, (str, os.PathLike)):
        from .modeling import VideoBLIP2

        model = VideoBLIP2.from_pretrained(model, map_location=auto_device())
    model.eval()
    config = model.config
    clip = clip if clip is not None else load_clip(DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, device=model.device)
    if clip.dim != config.video_dim:
        raise ExtractorModelError(f"CLIP {clip.name} gives {clip.dim}-d frame features, the model expects "
                                  f"video_dim={config.video_dim}")
    if clap is not None and clap.dim != config.audio_dim:
        raise ExtractorModelError(f"CLAP {clap.name} gives {clap.dim}-d audio features, the model expects "
                                  f"audio_dim={config.audio_dim}")
    if decoding is None:
        decoding = DecodingOptions(num_beams=num_beams, max_new_tokens=max_new_tokens)

    extracted: dict[str, VideoFeatures | ExtractionError] = {}  # path -> features, once per video
    for path in dict.fromkeys(str(path) for path, _ in pairs):
        try:
            extracted[path] = extract_video(path, clip, clap, max_frames=config.max_frames, fps=fps,
                                            window_s=window_s, hop_s=hop_s, silence_threshold=silence_threshold,
                                            max_audio_windows=config.max_audio_windows)
        except ExtractionError as e:
            if on_error == "raise":
                raise
            extracted[path] = e

    results: list[dict[str, Any]] = []
    rows: list[int] = []  # indices into results of the entries to generate
    for path, question in pairs:
        features = extracted[str(path)]
        entry: dict[str, Any] = {"video": str(path), "video_id": Path(path).stem, "caption": None}
        if question is not None:
            entry.update(question=question, answer=None)
        if isinstance(features, ExtractionError):
            entry["error"] = str(features)
        else:
            entry["frames"] = len(features.video)
            entry["audio_windows"] = 0 if features.audio is None else len(features.audio)
            rows.append(len(results))
        results.append(entry)
    captions = [i for i in rows if "question" not in results[i]]
    answers = [i for i in rows if "question" in results[i]]
    for chosen, key, text_args in ((captions, "caption", {"prompt": prompt}),
                                   (answers, "answer", {"question": [results[i]["question"] for i in answers]})):
        if chosen:
            texts = generate_from_features(model, [extracted[results[i]["video"]] for i in chosen],
                                           decoding=decoding, batch_size=batch_size, **text_args)
            for i, text in zip(chosen, texts):
                results[i][key] = text
    return results


class UsageError(ValueError):
    """A command-line input that cannot be used (the message names the file or flag)."""


QUESTION_FILE_FORMATS = (".csv", ".json", ".jsonl")


def read_questions(path: str | os.PathLike) -> list[tuple[str, str]]:
    """The (video, question) pairs of a ``caption --questions`` file, in file order.

    Formats (by extension): ``.csv`` with a header naming ``video`` and ``question`` columns (others are
    ignored); ``.json``: a list of ``{"video": ..., "question": ...}`` objects; ``.jsonl``: one such object per
    line (blank lines skipped). A relative video path is relative to the file's folder.

    Raises:
        UsageError: unknown extension, unreadable file, a row without a video or question; the message names
            the file (and line).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in QUESTION_FILE_FORMATS:
        raise UsageError(f"--questions {path}: unknown format {suffix or '(no extension)'!r}; "
                         f"use {', '.join(QUESTION_FILE_FORMATS)}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--questions {path}: cannot read ({e})") from None
    rows: list[tuple[str, Any]] = []  # (where, row)
    try:
        if suffix == ".csv":
            reader = csv.DictReader(io.StringIO(text, newline=""))
            if not reader.fieldnames or not {"video", "question"} <= set(reader.fieldnames):
                raise UsageError(f"--questions {path}: the first line must name the columns video,question "
                                 f"(got {reader.fieldnames})")
            rows = [(f"line {reader.line_num}", row) for row in reader]
        elif suffix == ".json":
            data = json.loads(text)
            if not isinstance(data, list):
                raise UsageError(f"--questions {path}: expected a JSON list of {{\"video\", \"question\"}} objects")
            rows = [(f"item {i}", row) for i, row in enumerate(data)]
        else:
            rows = [(f"line {i}", json.loads(line)) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    except (json.JSONDecodeError, csv.Error) as e:
        raise UsageError(f"--questions {path}: not valid {suffix[1:].upper()} ({e})") from None
    pairs = []
    for where, row in rows:
        video = row.get("video") if isinstance(row, dict) else None
        question = row.get("question") if isinstance(row, dict) else None
        if not isinstance(video, str) or not video.strip() or not isinstance(question, str) or not question.strip():
            raise UsageError(f"--questions {path}, {where}: needs a non-empty \"video\" and \"question\"")
        video_path = Path(video)
        if not video_path.is_absolute() and path.parent != Path("."):
            video_path = path.parent / video_path
        pairs.append((str(video_path), question.strip()))
    if not pairs:
        raise UsageError(f"--questions {path}: no questions in the file")
    return pairs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m videoblip2.caption", description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("videos", nargs="*", help="video files or folders (searched recursively for videos)")
    parser.add_argument("--model", required=True,
                        help="VideoBLIP2 save_pretrained directory or Hugging Face Hub id (org/name)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of path<TAB>caption lines")
    clip = parser.add_argument_group("frames (CLIP)")
    clip.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL, help="open_clip architecture or model-config .json")
    clip.add_argument("--clip-pretrained", default=DEFAULT_CLIP_PRETRAINED, help="open_clip tag or local checkpoint")
    add_renamed_flag(clip, "--clip", "--clip-model", "clip_model")
    clip.add_argument("--quick-gelu", action="store_true", help="for OpenAI CLIP weights given as a local file")
    clip.add_argument("--layer", default="embed", choices=("embed", "pooled"))
    clip.add_argument("--fps", type=positive_float,
                      help="sample frames at this rate (default: max_frames uniform frames)")
    clap = parser.add_argument_group("audio (CLAP)")
    clap.add_argument("--clap-model", default=DEFAULT_CLAP_MODEL, help="laion_clap audio config or .json")
    clap.add_argument("--clap-pretrained", metavar="FILE",
                      help="local CLAP checkpoint; omitted = caption without sound")
    add_renamed_flag(clap, "--clap", "--clap-pretrained", "clap_pretrained")
    clap.add_argument("--window", type=positive_float, default=DEFAULT_WINDOW_S, help="audio window, seconds")
    clap.add_argument("--hop", type=positive_float, default=DEFAULT_HOP_S, help="audio hop, seconds")
    gen = add_decoding_args(parser, num_beams=PREDICT_NUM_BEAMS, title="generation")
    text = gen.add_mutually_exclusive_group()
    text.add_argument("--prompt", type=non_empty, help="default: the model's config.prompt")
    text.add_argument("--question", action="append", type=non_empty,
                      help="answer this question about each video (in the model's qa_prompt_template) instead of "
                           "captioning it; repeat for several questions (each video is extracted once)")
    text.add_argument("--questions", metavar="FILE",
                      help="(video, question) pairs instead of VIDEOS: .csv with a video,question header, .json list "
                           "or .jsonl lines of {\"video\": ..., \"question\": ...}; relative video paths are "
                           "relative to FILE's folder")
    gen.add_argument("--batch-size", type=positive_int, default=8)
    gen.add_argument("--device", default="auto", help="cuda, cpu or auto")
    return parser.parse_args(argv)


def check_inputs(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """Before any model loads: the (video, question) pairs (video files, folders holding some, or a questions
    file) and every model source exist.

    Raises:
        UsageError, FileNotFoundError, UnsafeIdError, SourceError: one line naming the input or flag.
    """
    from .sources import check_clap_source, check_clip_source, check_videoblip2_source

    if args.questions is not None:
        if args.videos:
            raise UsageError("give video files or --questions FILE, not both")
        pairs: list[tuple[str, str | None]] = list(read_questions(args.questions))
        for path, _ in pairs:
            check_video_id(Path(path).stem, f"--questions {args.questions}: {path}: file name")
            if not os.path.exists(path):
                raise FileNotFoundError(f"--questions {args.questions}: {path}: no such video file")
    elif not args.videos:
        raise UsageError("give video files or folders, or --questions FILE")
    else:
        for path in args.videos:
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path}: no such video file or folder")
        # (expand_folders refuses a bad file name before the models are loaded)
        pairs = [(str(path), q) for path in expand_folders(args.videos) for q in (args.question or [None])]
    check_videoblip2_source(args.model, "--model")
    check_clip_source(args.clip_model, args.clip_pretrained)
    check_clap_source(args.clap_model, args.clap_pretrained)
    return pairs


def main(argv: list[str] | None = None) -> int:
    from .cli import user_errors
    from .sources import SourceError

    args = parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        pairs = check_inputs(args)  # before any model loads: a typo costs a second, not minutes
        from .extract import auto_device, load_clap, load_clip
        from .modeling import VideoBLIP2

        device = auto_device(args.device)
        model = VideoBLIP2.from_pretrained(args.model, map_location=device)
        clip = load_clip(args.clip_model, args.clip_pretrained, layer=args.layer, device=device,
                         quick_gelu=args.quick_gelu)
        clap = None
        if args.clap_pretrained:
            clap = load_clap(args.clap_model, args.clap_pretrained, device=device)
        else:
            logger.warning("no --clap-pretrained checkpoint: captioning without sound")
        results = ask_videos(pairs, model, clip=clip, clap=clap, fps=args.fps, window_s=args.window,
                             hop_s=args.hop, batch_size=args.batch_size, prompt=args.prompt, on_error="record",
                             decoding=DecodingOptions.from_args(args))
    except user_errors() + (SourceError, UsageError, UnsafeIdError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for entry in results:
            if "error" in entry:
                print(f"{entry['video']}\tERROR: {entry['error']}")
            else:
                print(f"{entry['video']}\t{entry['answer' if 'question' in entry else 'caption']}")
    return 1 if any("error" in entry for entry in results) else 0


if __name__ == "__main__":
    sys.exit(main())
