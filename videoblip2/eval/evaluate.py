"""Score a predictions file against MSR-VTT-style references: BLEU-1..4, METEOR, ROUGE-L, CIDEr.

    python -m eval.evaluate --predictions preds.json --ann test_videodatainfo.json [--split test]
        [--out metrics.json] [--no-meteor] [--spice]

``preds.json`` is ``[{"video_id": ..., "caption": ...}]`` with exactly one caption for every video of the
selected references (a missing video or an unknown one is an error).

Besides the metrics, the output has ``bad_endings``: the share of predicted captions whose last word is an
article, preposition or conjunction ("... playing with a"; the list is videoblip2.decoding.BAD_ENDINGS),
a sign of SCST gone wrong or of captions cut at the length limit.

A QA annotation file (MUSIC-AVQA, MSRVTT-QA / MSVD-QA, plain JSON/JSONL: ``videoblip2.annotations``) is
recognised automatically; ``preds.json`` is then ``[{"question_id": ..., "answer": ...}]`` with exactly one
answer per question, scored by ``eval.qa`` (normalised exact match, per modality and question type, beside
the majority-answer baselines)::

    python -m eval.evaluate --predictions answers.json --ann avqa-test.json --out qa_metrics.json

(questions are matched by ``question_id``; video ids play no part in QA scoring).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .coco import DEFAULT_METRICS, compute_metrics
from .qa import format_qa_table, qa_scores
from videoblip2.annotations import (
    AnnotationError,
    add_ann_format_argument,
    is_qa_annotation,
    load_annotations,
    load_predictions,
    load_qa_annotations,
    load_qa_predictions,
)
from videoblip2.decoding import bad_ending_rate
from videoblip2.cli import ArgumentParser
from videoblip2.fileio import DiskFullError, atomic_write_json

__all__ = ["EvaluationError", "check_coverage", "cli", "format_table", "main", "parse_args", "score_captions"]


class EvaluationError(ValueError):
    """Predictions do not match the reference videos."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m eval.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", required=True, help='JSON list of {"video_id", "caption"}')
    parser.add_argument("--ann", required=True,
                        help="references: official MSR-VTT JSON, list of {video_id, caption}, {video_id: [...]}, "
                             "MSVD, VATEX, VALOR, video_id,caption .csv/.tsv (videoblip2.annotations)")
    parser.add_argument("--split", default=None,
                        help="train | validate (val) | test of an --ann with splits (default: every video in --ann)")
    add_ann_format_argument(parser)
    parser.add_argument("--out", default=None, help="metrics JSON (default: PREDICTIONS.metrics.json)")
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (a Java call of several seconds)")
    parser.add_argument("--spice", action="store_true", help="also SPICE (needs Stanford CoreNLP models: online)")
    return parser.parse_args(argv)


def check_coverage(predictions: dict[str, str], references: dict[str, list[str]], predictions_path: str,
                   ann_path: str) -> None:
    """Raise :class:`EvaluationError` unless predictions cover exactly the reference videos."""
    missing = [v for v in references if v not in predictions]
    unknown = [v for v in predictions if v not in references]
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(references)} reference videos have no prediction "
                        f"(e.g. {', '.join(missing[:5])})")
    if unknown:
        problems.append(f"{len(unknown)} predicted videos are not in the references (e.g. {', '.join(unknown[:5])})")
    if problems:
        raise EvaluationError(f"{predictions_path} vs {ann_path}: " + "; ".join(problems))


def format_table(metrics: dict[str, float]) -> str:
    """Plain-text table: metric, raw value, x100 (the scale of published tables)."""
    width = max(len("metric"), *(len(name) for name in metrics))
    lines = [f"{'metric':<{width}}  {'value':>8}  {'x100':>7}", f"{'-' * width}  {'-' * 8}  {'-' * 7}"]
    lines += [f"{name:<{width}}  {value:>8.4f}  {value * 100:>7.2f}" for name, value in metrics.items()]
    return "\n".join(lines)


def score_captions(predictions: dict[str, str], references: dict[str, list[str]],
                   metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS, spice: bool = False) -> dict:
    """eval.evaluate's numbers for one caption per video: ``{"metrics": {...}, "bad_endings": float}``.

    ``references`` as ``load_annotations(..., as_written=True)`` returns them (pycocoevalcap tokenises both).
    """
    return {"metrics": compute_metrics(predictions, references, metrics=metrics, spice=spice),
            "bad_endings": bad_ending_rate(predictions.values())}


def write_result(args: argparse.Namespace, result: dict) -> dict:
    """Write ``result`` to ``--out`` (default: the predictions file with ``.metrics.json``) atomically."""
    out = args.out or os.path.splitext(args.predictions)[0] + ".metrics.json"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    atomic_write_json(out, result, indent=2)
    print(f"wrote {out}", file=sys.stderr)
    return result


def evaluate_qa(args: argparse.Namespace) -> dict:
    """Score a QA predictions file against a QA annotation file: print the table, write ``--out`` atomically."""
    if args.split is not None:
        raise EvaluationError(f"--split is for the official MSR-VTT caption format; {args.ann} is a QA file "
                              "(it is one split already)")
    items = load_qa_annotations(args.ann)
    predictions = load_qa_predictions(args.predictions)
    scores = qa_scores(predictions, items, source=f"{args.predictions} vs {args.ann}: ")
    print(format_qa_table(scores))
    result = {**scores, "predictions": os.path.abspath(args.predictions), "annotations": os.path.abspath(args.ann)}
    return write_result(args, result)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if is_qa_annotation(args.ann):
        return evaluate_qa(args)
    # The references as written (whitespace collapsed): pycocoevalcap's PTB tokenizer lowercases and strips
    # punctuation itself, so "the u.s." keeps its last token, as in the standard COCO caption evaluation.
    references = load_annotations(args.ann, args.split, args.ann_format, as_written=True)
    predictions = load_predictions(args.predictions)
    check_coverage(predictions, references, args.predictions, args.ann)

    metrics = [m for m in DEFAULT_METRICS if not (args.no_meteor and m == "METEOR")]
    print(f"scoring {len(predictions)} videos ({', '.join(metrics)}{', SPICE' if args.spice else ''}) ...",
          file=sys.stderr, flush=True)
    start = time.perf_counter()
    scored = score_captions(predictions, references, metrics=metrics, spice=args.spice)
    scores, bad_endings = scored["metrics"], scored["bad_endings"]
    elapsed = time.perf_counter() - start

    print(format_table(scores))
    print(f"bad endings: {bad_endings:.4f} of the captions end on a, the, with, ... (videoblip2.decoding.BAD_ENDINGS)")
    result = {
        "metrics": scores,
        "bad_endings": bad_endings,
        "num_videos": len(predictions),
        "predictions": os.path.abspath(args.predictions),
        "annotations": os.path.abspath(args.ann),
        "split": args.split,
        "seconds": round(elapsed, 2),
    }
    return write_result(args, result)


def cli(argv: list[str] | None = None) -> None:
    """``python -m eval.evaluate``: a bad file or a coverage mismatch prints one line and exits 2."""
    try:
        main(argv)
    except (EvaluationError, AnnotationError, FileNotFoundError, DiskFullError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    cli()
