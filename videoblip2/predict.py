"""Caption pre-extracted features with a trained model, or answer the questions of a QA annotation file.

    python -m videoblip2.predict --model runs/demo/scst/best --features FEATURES \
        --ann test_videodatainfo.json --split test --out predictions.json [--num-beams 1] [--block-bad-endings]

    python -m videoblip2.predict --model runs/qa/best --features FEATURES --ann avqa-test.json \
        --out answers.json [--closed-vocabulary | --candidates avqa-train.json]

Writes `[{"video_id": ..., "caption": ...}]`, the format `python -m eval.evaluate` reads, and next to it
`PREDICTIONS.meta.json` with the decoding settings it was made with. Decoding: beam search of 5 by default
(as LAVIS reports BLIP-2 captioning) and the flags of videoblip2.decoding (--length-penalty,
--no-repeat-ngram-size, --repetition-penalty, --min-new-tokens, --block-bad-endings).

A QA annotation file as --ann (any format `videoblip2.annotations.load_qa_annotations` reads) is answered
instead: each question in the model's `qa_prompt_template`, one answer per question, written as
`[{"question_id", "video_id", "question", "answer"}]` (`eval.evaluate` scores it). Answers are generated (the
decoding flags apply), or with --closed-vocabulary the answers seen in training (the model directory's
trainer_info.json) are ranked by log-likelihood (--candidates: the answers of another QA file).

Modality diagnostics: `--ablate audio` (every video silent), `--ablate frame-order` (each video's frames
shuffled, `--ablate-seed`), `--ablate video` (no visual content) rewrite each feature batch with
`videoblip2.data.ablate_features`, for captions and answers alike; the settings go into the meta file.
`python -m eval.ablation` runs them all on one split and prints the metrics side by side.
"""

from __future__ import annotations

import argparse
import functools
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from .annotations import (
    AnnotationError,
    QAItem,
    add_ann_format_argument,
    add_qa_mapping_argument,
    is_qa_annotation,
    load_annotations,
    load_qa_annotations,
    save_predictions,
    save_qa_predictions,
)
from .cli import ArgumentParser, cli, positive_int
from .decoding import PREDICT_NUM_BEAMS, DecodingOptions, add_decoding_args, write_predictions_meta
from .defaults import ABLATIONS
from .fileio import check_writable_file

if TYPE_CHECKING:  # torch and the model load after the arguments are parsed (`--help` answers at once)
    import torch

    from .data import FeatureStore, QADataset, VideoDataset
    from .modeling import VideoBLIP2


def _no_grad(function: Callable) -> Callable:
    """``torch.no_grad()`` as a decorator that imports torch when called, not when this module loads."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        import torch

        with torch.no_grad():
            return function(*args, **kwargs)
    return wrapper


BatchTransform = Callable[[dict], dict]


def ablation(mode: str | None, seed: int = 0) -> BatchTransform | None:
    """The batch transform of ``--ablate MODE`` (``videoblip2.data.ablate_features``), or None for none."""
    from .data import ablate_features

    if mode is None:
        return None
    if mode not in ABLATIONS:
        raise ValueError(f"unknown ablation {mode!r}; choose one of {', '.join(ABLATIONS)}")
    return functools.partial(ablate_features, mode=mode, seed=seed)


def model_feature_store(model: VideoBLIP2, features: str | Path, video_ids: Sequence[str],
                        device: str | torch.device = "cpu") -> FeatureStore:
    """The videos' features, padded / subsampled to what ``model`` was configured with, on ``device``."""
    from .data import FeatureStore

    cfg = model.config
    return FeatureStore(features, list(video_ids), max_frames=cfg.max_frames, max_audio_windows=cfg.max_audio_windows,
                        video_dim=cfg.video_dim, audio_dim=cfg.audio_dim).to(device)


@_no_grad
def predict_captions(
    model: VideoBLIP2,
    dataset: VideoDataset,
    batch_size: int = 64,
    num_beams: int = 1,
    max_new_tokens: int | None = None,
    transform: BatchTransform | None = None,
    progress: bool = True,
    indices: Sequence[int] | np.ndarray | None = None,
    autocast_dtype: torch.dtype | None = None,
    decoding: DecodingOptions | None = None,
) -> dict[str, str]:
    """One caption per video of `dataset` (greedy, or beam search with `num_beams`), as {video_id: caption}.

    `decoding` (videoblip2.decoding.DecodingOptions: beams, length/repetition penalties, blocked bad
    endings, ...) replaces `num_beams` and `max_new_tokens` when given. `indices` restricts it to those
    positions of the dataset (a process's shard); `autocast_dtype` (e.g. torch.bfloat16 on a GPU) runs
    generation under autocast. `transform` may rewrite each feature batch first (ablations: drop the audio,
    shuffle the frames).
    """
    import torch

    if decoding is None:
        decoding = DecodingOptions(num_beams=num_beams, max_new_tokens=max_new_tokens)
    decoding = decoding.for_model(model.config)  # None: the model's own block_bad_endings
    generate_kwargs = decoding.generate_kwargs(model.t5_tokenizer)
    captions: dict[str, str] = {}
    for batch in _eval_batches(model, dataset, batch_size, indices, transform, progress, "captioning"):
        with torch.autocast(model.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            texts = model.generate(batch["video"], batch["video_mask"], batch["audio"], batch["audio_mask"],
                                   **generate_kwargs)
        captions.update(zip(batch["video_ids"], texts))
    return captions


def _eval_batches(model: VideoBLIP2, dataset: VideoDataset | QADataset, batch_size: int,
                  indices: Sequence[int] | np.ndarray | None, transform: BatchTransform | None, progress: bool,
                  desc: str) -> Iterator[dict]:
    """The batches of `dataset` (or of its `indices`), each through `transform`, with the model in eval mode
    meanwhile (its training mode is restored after the last batch)."""
    was_training = model.training
    model.eval()
    positions = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    try:
        for start in tqdm(range(0, len(positions), batch_size), desc=desc, unit="batch", disable=not progress):
            batch = dataset.batch(positions[start : start + batch_size])
            yield batch if transform is None else transform(batch)
    finally:
        model.train(was_training)


@_no_grad
def predict_answers(
    model: VideoBLIP2,
    dataset: QADataset,
    batch_size: int = 64,
    num_beams: int = 1,
    max_new_tokens: int | None = None,
    candidates: Sequence[str] | None = None,
    transform: BatchTransform | None = None,
    progress: bool = True,
    indices: Sequence[int] | np.ndarray | None = None,
    autocast_dtype: torch.dtype | None = None,
    decoding: DecodingOptions | None = None,
) -> dict[str, str]:
    """One answer per question of `dataset`, as {question_id: answer}.

    Open-ended (default): the answer is generated (greedy, or beam search with `num_beams`; `decoding` replaces
    both) after the question prompt. Closed vocabulary (`candidates`, e.g. the training answers): the candidate
    with the highest log-likelihood (`VideoBLIP2.score_candidates`, each video encoded once). `indices`,
    `autocast_dtype` and `transform` as in `predict_captions`.
    """
    import torch

    from .data import tokenize_captions

    if decoding is None:
        decoding = DecodingOptions(num_beams=num_beams, max_new_tokens=max_new_tokens)
    decoding = decoding.for_model(model.config)  # None: the model's own block_bad_endings
    generate_kwargs = decoding.generate_kwargs(model.t5_tokenizer)
    candidate_ids = None
    if candidates is not None:
        candidates = list(candidates)
        candidate_ids = tokenize_captions(candidates, model.t5_tokenizer, model.config.max_caption_len)
        limit = model.config.max_caption_len
        lengths = [len(ids) + 1 for ids in model.t5_tokenizer(candidates, add_special_tokens=False)["input_ids"]]
        too_long = [c for c, n in zip(candidates, lengths) if n > limit]
        if too_long:  # scored on their first max_caption_len - 1 tokens: two of them may become the same
            warnings.warn(f"{len(too_long)} of {len(candidates)} candidate answers are longer than max_caption_len="
                          f"{limit} tokens (EOS included) and are scored truncated, e.g. {too_long[0]!r}",
                          stacklevel=2)
    answers: dict[str, str] = {}
    for batch in _eval_batches(model, dataset, batch_size, indices, transform, progress, "answering"):
        inputs = (batch["video"], batch["video_mask"], batch["audio"], batch["audio_mask"])
        with torch.autocast(model.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            if candidate_ids is None:
                texts = model.generate(*inputs, prompt=batch["prompt"], **generate_kwargs)
            else:
                scores = model.score_candidates(*inputs, prompt=batch["prompt"], candidates=candidate_ids)
                texts = [candidates[i] for i in scores.argmax(dim=1).tolist()]
        answers.update(zip(batch["question_ids"], texts))
    return answers


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m videoblip2.predict",
                       description="Caption pre-extracted features with a trained VideoBLIP2.")
    p.add_argument("--model", required=True,
                   help="a save_pretrained directory (e.g. runs/x/best) or a Hugging Face Hub id (org/name)")
    p.add_argument("--features", required=True, help="features directory with video/ and audio/")
    p.add_argument("--ann", help="annotation file naming the videos to caption (else every video file)")
    p.add_argument("--split", default=None,
                   help="split of an --ann with splits: official MSR-VTT, MSVD + mapping, VALOR/VATEX folder")
    add_ann_format_argument(p)
    add_qa_mapping_argument(p)
    p.add_argument("--out", required=True, help="predictions JSON to write")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--device", default="auto", help="cuda, cpu or auto (cuda if there is a GPU)")
    add_decoding_args(p, num_beams=PREDICT_NUM_BEAMS)
    qa = p.add_argument_group("question answering (--ann is a QA annotation file)")
    closed = qa.add_mutually_exclusive_group()
    closed.add_argument("--closed-vocabulary", action="store_true",
                        help="rank the answers seen in training (MODEL/trainer_info.json) by log-likelihood instead "
                             "of generating (MUSIC-AVQA is scored as classification over its answers)")
    closed.add_argument("--candidates", default=None,
                        help="closed vocabulary: rank the distinct answers of this QA annotation file (e.g. the "
                             "training questions)")
    add_ablation_args(p)
    return p.parse_args(argv)


def add_ablation_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("modality diagnostics")
    group.add_argument("--ablate", choices=ABLATIONS, default=None,
                       help="audio: every video without sound; frame-order: each video's frames shuffled; video: no "
                            "visual content (zero features, one visible frame) - videoblip2.data.ablate_features")
    group.add_argument("--ablate-seed", type=int, default=0,
                       help="--ablate frame-order: the shuffling seed (the order depends on it and the video id)")


def closed_vocabulary(args: argparse.Namespace) -> list[str] | None:
    """The candidate answers of --closed-vocabulary / --candidates, or None (generate)."""
    from .data import answer_vocabulary

    if args.candidates:
        return answer_vocabulary(load_qa_annotations(args.candidates))
    if not args.closed_vocabulary:
        return None
    info = Path(args.model) / "trainer_info.json"  # written beside each saved model by train.train_ce
    try:
        answers = json.loads(info.read_text()).get("qa_answers")
    except (OSError, json.JSONDecodeError) as e:
        raise AnnotationError(f"{info}: cannot read the training answers for --closed-vocabulary ({e}); "
                              "name them with --candidates TRAIN_QA_FILE") from None
    if not answers:
        raise AnnotationError(f"{info}: no qa_answers (the model was not trained on questions); "
                              "name the candidates with --candidates TRAIN_QA_FILE")
    return answers


def answer_questions(args: argparse.Namespace, model: VideoBLIP2,
                     items: Sequence[QAItem] | None = None) -> dict[str, str]:
    """The QA branch of `main`: every question of --ann (``items``, read by `main`) answered, written with
    save_qa_predictions."""
    from .data import QADataset

    items = load_qa_annotations(args.ann, video_map=args.qa_mapping) if items is None else items
    candidates = closed_vocabulary(args)
    store = model_feature_store(model, args.features, list(dict.fromkeys(item.video_id for item in items)), args.device)
    dataset = QADataset(store, items, model.t5_tokenizer, model.qformer_tokenizer, model.config)
    if dataset.truncation_note(args.ann):
        print(dataset.truncation_note(args.ann))
    decoding = DecodingOptions.from_args(args).for_model(model.config)
    answers = predict_answers(model, dataset, args.batch_size, candidates=candidates, decoding=decoding,
                              transform=ablation(args.ablate, args.ablate_seed))
    save_qa_predictions([{"question_id": item.question_id, "video_id": item.video_id, "question": item.question,
                          "answer": answers[item.question_id]} for item in items], args.out)
    mode = f"closed vocabulary of {len(candidates)} answers" if candidates else "generated"
    meta = write_predictions_meta(args.out, decoding, model=str(args.model), features=str(args.features),
                                  ann=args.ann, num_questions=len(answers), answers=mode,
                                  qa_prompt_template=model.config.qa_prompt_template,
                                  truncated_questions=len(dataset.truncated), **ablation_meta(args))
    print(f"wrote {len(answers)} answers ({mode}) to {args.out} (settings: {meta})")
    return answers


def ablation_meta(args: argparse.Namespace) -> dict:
    """The meta file's record of --ablate (nothing when no ablation ran)."""
    if args.ablate is None:
        return {}
    return {"ablate": args.ablate, **({"ablate_seed": args.ablate_seed} if args.ablate == "frame-order" else {})}


def check_inputs(args: argparse.Namespace) -> None:
    """Before any work: the features folder exists and --out can be written (a read-only folder or a folder
    given as --out would otherwise be found after every video was captioned)."""
    from .sources import check_features_folder

    check_writable_file(args.out)
    if not Path(args.features).is_dir():
        check_features_folder(args.features, "--features")  # names the missing folder
    if getattr(args, "ann", None) and not Path(args.ann).exists():
        raise FileNotFoundError(f"--ann {args.ann}: no such annotation file")


def check_sources(args: argparse.Namespace) -> None:
    """Before the model loads (after the annotation, whose errors come first): the features folder holds
    features and --model is a model folder or a resolvable Hub id (`videoblip2.sources`)."""
    from .sources import check_features_folder, check_videoblip2_source

    check_features_folder(args.features, "--features")
    check_videoblip2_source(args.model, "--model")


def main(argv: Sequence[str] | None = None) -> dict[str, str]:
    args = parse_args(argv)
    check_inputs(args)
    # the annotation before the model: a malformed file or an unsafe video id is refused before any work
    questions = (load_qa_annotations(args.ann, video_map=args.qa_mapping)
                 if args.ann and is_qa_annotation(args.ann) else None)
    if questions is None and (args.closed_vocabulary or args.candidates):
        raise AnnotationError(f"--closed-vocabulary / --candidates rank answers to questions: --ann {args.ann} is "
                              "not a QA annotation file")
    # videos without reference captions (VATEX's public test file) can be captioned all the same
    references = (load_annotations(args.ann, args.split, args.ann_format, require_captions=False)
                  if args.ann and questions is None else None)
    check_sources(args)
    import torch

    from .data import VideoDataset
    from .modeling import VideoBLIP2

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    model = VideoBLIP2.from_pretrained(args.model, map_location=args.device)
    if questions is not None:
        return answer_questions(args, model, questions)
    if references is not None:
        video_ids = list(references)
        unscored = sum(not captions for captions in references.values())
        if unscored:
            print(f"note: {unscored} of {len(references)} videos of {args.ann} have no reference captions: their "
                  "captions can be written but not scored (eval.evaluate needs references)")
    else:
        video_ids = sorted(p.stem for p in (Path(args.features) / "video").glob("*.npy"))
    store = model_feature_store(model, args.features, video_ids, args.device)
    decoding = DecodingOptions.from_args(args).for_model(model.config)
    captions = predict_captions(model, VideoDataset(store), args.batch_size, decoding=decoding,
                                transform=ablation(args.ablate, args.ablate_seed))
    save_predictions(captions, args.out)
    meta = write_predictions_meta(args.out, decoding, model=str(args.model), features=str(args.features),
                                  ann=args.ann, split=args.split, num_videos=len(captions), **ablation_meta(args))
    print(f"wrote {len(captions)} captions to {args.out} (decoding settings: {meta})")
    return captions


if __name__ == "__main__":
    cli(main)  # user errors: one line "error: ...", exit 2
