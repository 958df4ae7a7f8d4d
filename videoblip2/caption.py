"""Caption raw video files end to end: decode -> CLIP/CLAP features -> VideoBLIP2.generate.

    python -m videoblip2.caption clip1.mp4 clip2.webm --model runs/scst/best \\
        --clip-pretrained /models/ViT-L-14-openai.safetensors --quick-gelu --clap /models/630k-audioset-best.pt

prints ``path<TAB>caption`` per video (``--json`` for a JSON list); ``--question "Is the cello playing?"``
answers the question about each video instead (``path<TAB>answer``; the question goes into the model's
``qa_prompt_template``). The CLIP/CLAP settings must be the ones the model's training features were extracted
with (``FEATURES/meta.json``); frames and audio windows are capped at the model's ``max_frames`` /
``max_audio_windows``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .data import PromptTokens, lengths_to_mask, pad_or_subsample
from .decoding import PREDICT_NUM_BEAMS, DecodingOptions, add_decoding_args
from .extract import (
    DEFAULT_CLAP_MODEL,
    DEFAULT_CLIP_MODEL,
    DEFAULT_CLIP_PRETRAINED,
    DEFAULT_HOP_S,
    DEFAULT_SILENCE_THRESHOLD,
    DEFAULT_WINDOW_S,
    VIDEO_EXTENSIONS,
    ClapWindowEncoder,
    ClipFrameEncoder,
    ExtractionError,
    ExtractorModelError,
    auto_device,
    load_clap,
    load_clip,
    videos_in,
)
from .ids import UnsafeIdError, check_video_id

logger = logging.getLogger(__name__)


def _pad(rows: list[np.ndarray | None], max_len: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-video ``[T, dim]`` arrays (None = absent) -> float32 ``(B, max_len, dim)`` + bool mask ``(B, max_len)``."""
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
    question: str | None = None,
) -> list[dict[str, Any]]:
    """Caption video files, or answer a question about each.

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
        on_error: "raise" (ExtractionError) or "record" (the video's entry gets "error", caption None).
        question: answer this question instead of captioning: the prompt is
            ``model.config.qa_prompt(question)``; each entry gets "question" and "answer" (caption None).

    Returns:
        One dict per path, in order: ``{"video": path, "video_id": stem, "caption": str | None,
        "frames": T_v, "audio_windows": T_a (0 = no sound)}`` (+ ``"error"`` when recorded; + ``"question"``,
        ``"answer"`` with ``question``).
    """
    if question is not None and prompt is not None:
        raise ValueError("give a prompt or a question, not both")
    if on_error not in ("raise", "record"):
        raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}")
    paths = expand_folders(paths)  # before any model is loaded: a bad file name (video id) is refused first
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
    decoding = decoding.for_model(model.config)  # None: the model's own block_bad_endings
    generate_kwargs = decoding.generate_kwargs(model.t5_tokenizer)
    question_tokens = None
    if question is not None:  # a long question loses its last words, never the answer cue
        question_tokens, cut = model.tokenize_questions([question])
        if cut[0]:
            logger.warning("the question is longer than the prompt limits (max_prompt_len=%d): its last words are cut",
                           config.max_prompt_len)
    results: list[dict[str, Any]] = []
    features: list[tuple[int, np.ndarray, np.ndarray | None]] = []  # (result index, video, audio)
    for path in paths:
        entry: dict[str, Any] = {"video": str(path), "video_id": Path(path).stem, "caption": None}
        if question is not None:
            entry.update(question=question, answer=None)
        try:
            video = clip.encode_video(path, config.max_frames, fps=fps)  # (T_v, video_dim)
            audio = None
            if clap is not None:  # (T_a, audio_dim), None without sound
                audio = clap.encode_video(path, window_s, hop_s, config.max_audio_windows, silence_threshold)
        except ExtractionError as e:
            if on_error == "raise":
                raise
            entry["error"] = str(e)
            results.append(entry)
            continue
        entry["frames"] = min(len(video), config.max_frames)
        entry["audio_windows"] = 0 if audio is None else min(len(audio), config.max_audio_windows)
        features.append((len(results), video, audio))
        results.append(entry)

    for start in range(0, len(features), batch_size):
        chunk = features[start : start + batch_size]
        video, video_mask = _pad([v for _, v, _ in chunk], config.max_frames, config.video_dim)
        audio, audio_mask = _pad([a for _, _, a in chunk], config.max_audio_windows, config.audio_dim)
        if question_tokens is not None:
            prompt = PromptTokens(*(x.expand(len(chunk), -1) for x in question_tokens))
        captions = model.generate(video, video_mask, audio, audio_mask, prompt=prompt, **generate_kwargs)
        for (index, _, _), caption in zip(chunk, captions):
            results[index]["answer" if question is not None else "caption"] = caption
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m videoblip2.caption", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("videos", nargs="+", help="video files or folders (searched recursively for videos)")
    parser.add_argument("--model", required=True,
                        help="VideoBLIP2 save_pretrained directory or Hugging Face Hub id (org/name)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of path<TAB>caption lines")
    clip = parser.add_argument_group("frames (CLIP)")
    clip.add_argument("--clip", default=DEFAULT_CLIP_MODEL, help="open_clip architecture or model-config .json")
    clip.add_argument("--clip-pretrained", default=DEFAULT_CLIP_PRETRAINED, help="open_clip tag or local checkpoint")
    clip.add_argument("--quick-gelu", action="store_true", help="for OpenAI CLIP weights given as a local file")
    clip.add_argument("--layer", default="embed", choices=("embed", "pooled"))
    clip.add_argument("--fps", type=float, help="sample frames at this rate (default: max_frames uniform frames)")
    clap = parser.add_argument_group("audio (CLAP)")
    clap.add_argument("--clap", help="local CLAP checkpoint; omitted = caption without sound")
    clap.add_argument("--clap-model", default=DEFAULT_CLAP_MODEL, help="laion_clap audio config or .json")
    clap.add_argument("--window", type=float, default=DEFAULT_WINDOW_S, help="audio window, seconds")
    clap.add_argument("--hop", type=float, default=DEFAULT_HOP_S, help="audio hop, seconds")
    gen = add_decoding_args(parser, num_beams=PREDICT_NUM_BEAMS, title="generation")
    text = gen.add_mutually_exclusive_group()
    text.add_argument("--prompt", help="default: the model's config.prompt")
    text.add_argument("--question", help="answer this question about each video (in the model's qa_prompt_template) "
                                         "instead of captioning it")
    gen.add_argument("--batch-size", type=int, default=8)
    gen.add_argument("--device", default="auto", help="cuda, cpu or auto")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from .modeling import CheckpointError, VideoBLIP2

    device = auto_device(args.device)
    try:
        expand_folders(args.videos)  # a bad file name is refused before the models are loaded
        model = VideoBLIP2.from_pretrained(args.model, map_location=device)
        clip = load_clip(args.clip, args.clip_pretrained, layer=args.layer, device=device, quick_gelu=args.quick_gelu)
        clap = None
        if args.clap:
            clap = load_clap(args.clap_model, args.clap, device=device)
        else:
            logger.warning("no --clap checkpoint: captioning without sound")
        results = caption_videos(args.videos, model, clip=clip, clap=clap, fps=args.fps, window_s=args.window,
                                 hop_s=args.hop, batch_size=args.batch_size, prompt=args.prompt, on_error="record",
                                 decoding=DecodingOptions.from_args(args), question=args.question)
    except (CheckpointError, ExtractorModelError, FileNotFoundError, UnsafeIdError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for entry in results:
            if "error" in entry:
                print(f"{entry['video']}\tERROR: {entry['error']}")
            else:
                print(f"{entry['video']}\t{entry['answer' if args.question is not None else 'caption']}")
    return 1 if any("error" in entry for entry in results) else 0


if __name__ == "__main__":
    sys.exit(main())
