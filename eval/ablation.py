"""Modality diagnostics: one model, one split, its inputs intact and ablated, the metrics side by side.

    python -m eval.ablation --model runs/demo/ce/best --features demo_data \
        --ann demo_data/test_videodatainfo.json --split test --out runs/demo/ce/ablation.json \
        [--conditions full,audio,frame-order,video] [--ablate-seed 0] [--no-meteor] [decoding flags]

Answers "does the model use the audio / the frame order / the video at all?": each condition captions the
split with ``videoblip2.predict``'s caption loop, its feature batches rewritten by
``videoblip2.data.ablate_features`` (``full``: untouched; ``audio``: every video silent; ``frame-order``:
each video's frames shuffled with ``--ablate-seed``; ``video``: no visual content), and scores the captions
as ``eval.evaluate`` does (pycocoevalcap on the references as written, plus the bad-ending rate). A model
that uses the audio loses clearly without it; one that ignores the frame order does not move when the
frames are shuffled.

Writes ``--out`` (JSON: every condition's metrics) and, beside it, each condition's predictions
``OUT_STEM.CONDITION.json`` (+ ``.meta.json``), which ``python -m eval.evaluate`` reads as usual.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from eval.coco import DEFAULT_METRICS
from eval.evaluate import score_captions
from videoblip2.annotations import add_ann_format_argument, load_annotations, save_predictions
from videoblip2.cli import ArgumentParser, cli, positive_int
from videoblip2.defaults import ABLATIONS
from videoblip2.decoding import PREDICT_NUM_BEAMS, DecodingOptions, add_decoding_args, write_predictions_meta
from videoblip2.fileio import atomic_write_json

CONDITIONS = ("full", *ABLATIONS)
LABELS = {"full": "full", "audio": "no audio", "frame-order": "shuffled frames", "video": "no video"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m eval.ablation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help="a save_pretrained directory (e.g. runs/x/best) or a Hugging Face Hub id (org/name)")
    p.add_argument("--features", required=True, help="features directory with video/ and audio/")
    p.add_argument("--ann", required=True, help="reference captions (any format videoblip2.annotations reads)")
    p.add_argument("--split", default=None, help="split of an --ann with splits (e.g. test)")
    add_ann_format_argument(p)
    p.add_argument("--out", required=True, help="metrics JSON; the predictions go beside it")
    p.add_argument("--conditions", type=parse_conditions, default=list(CONDITIONS),
                   help=f"comma-separated, of {', '.join(CONDITIONS)} (default: all)")
    p.add_argument("--ablate-seed", type=int, default=0, help="frame-order: the shuffling seed")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--device", default="auto", help="cuda, cpu or auto (cuda if there is a GPU)")
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (a Java call of several seconds each)")
    add_decoding_args(p, num_beams=PREDICT_NUM_BEAMS)
    return p.parse_args(argv)


def parse_conditions(text: str) -> list[str]:
    conditions = [c.strip() for c in text.split(",") if c.strip()]
    if not conditions or any(c not in CONDITIONS for c in conditions):
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(CONDITIONS)}")
    return list(dict.fromkeys(conditions))


def format_side_by_side(results: dict[str, dict]) -> str:
    """Metrics (x100, as published tables) and the bad-ending rate, one column per condition."""
    names = list(next(iter(results.values()))["metrics"])
    columns = [LABELS[c] for c in results]
    width = max(len("metric (x100)"), *(len(n) for n in names), len("bad endings"))
    col = max(9, *(len(c) for c in columns))
    lines = [f"{'metric (x100)':<{width}}" + "".join(f"  {c:>{col}}" for c in columns),
             "-" * width + "".join("  " + "-" * col for _ in columns)]
    for name in names:
        lines.append(f"{name:<{width}}" + "".join(f"  {r['metrics'][name] * 100:>{col}.2f}" for r in results.values()))
    lines.append(f"{'bad endings':<{width}}" + "".join(f"  {r['bad_endings']:>{col}.3f}" for r in results.values()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    from videoblip2.predict import check_inputs, check_sources

    conditions = args.conditions
    check_inputs(args)
    import torch

    from videoblip2.data import VideoDataset
    from videoblip2.modeling import VideoBLIP2
    from videoblip2.predict import ablation, model_feature_store, predict_captions

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    references = load_annotations(args.ann, args.split, args.ann_format, as_written=True)
    check_sources(args)
    model = VideoBLIP2.from_pretrained(args.model, map_location=args.device)
    dataset = VideoDataset(model_feature_store(model, args.features, list(references), args.device))
    decoding = DecodingOptions.from_args(args)
    metrics = [m for m in DEFAULT_METRICS if not (args.no_meteor and m == "METEOR")]
    stem = os.path.splitext(args.out)[0]
    results: dict[str, dict] = {}
    for condition in conditions:
        print(f"{LABELS[condition]}: captioning {len(dataset)} videos ...", file=sys.stderr, flush=True)
        mode = None if condition == "full" else condition
        captions = predict_captions(model, dataset, args.batch_size, decoding=decoding,
                                    transform=ablation(mode, args.ablate_seed))
        predictions_path = f"{stem}.{condition}.json"
        save_predictions(captions, predictions_path)
        write_predictions_meta(predictions_path, decoding, model=str(args.model), features=str(args.features),
                               ann=args.ann, split=args.split, num_videos=len(captions), ablate=mode,
                               ablate_seed=args.ablate_seed if mode == "frame-order" else None)
        results[condition] = {**score_captions(captions, references, metrics), "predictions": predictions_path}
    print(format_side_by_side(results))
    report = {"conditions": results, "model": str(args.model), "features": str(args.features), "ann": args.ann,
              "split": args.split, "decoding": decoding.to_dict(), "ablate_seed": args.ablate_seed}
    atomic_write_json(args.out, report, indent=2)
    print(f"wrote {args.out}", file=sys.stderr)
    return report


if __name__ == "__main__":
    cli(main)  # user errors: one line "error: ...", exit 2
