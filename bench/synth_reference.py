"""Reference numbers of the synthetic benchmark (``videoblip2.synth``): generation time, caption baselines
on its test split, and linear probes that show which input carries which factor.

CIDEr (pycocoevalcap's CIDEr-D with its PTB tokenizer, through ``eval.coco.compute_metrics``) of:

* ``most common train caption``: the single most frequent training caption, answered for every test video
  (the floor a model must clear);
* ``oracle, time-blind``: the true factors with the most common template, but each time-reversed action
  replaced by its forward partner ("closes" -> "opens"): what a perfect model that ignores frame order gets;
* ``oracle, audio-blind``: the true factors, sound left out (the silent template): a perfect model without audio;
* ``oracle (upper reference)``: the true factors with the most common template and synonyms.

Factor accuracy: the share of those captions that name each true factor (``synth.factor_accuracy``; apply it
to a trained model's predictions to see which input it fails to use).

Probes: ridge classifiers trained on the train split, accuracy on the test split, from the mean of the frame
features (time-blind), the means of the first and second half of the frames (time-aware), and the mean of
the audio windows.

    python bench/synth_reference.py [--size default | --num-videos N] [--seed 0] [--difficulty hard] [--data DIR] [--out bench_synth.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `python bench/...` from anywhere

from videoblip2 import synth  # noqa: E402
from videoblip2.annotations import load_annotations  # noqa: E402
from videoblip2.data import FeatureStore  # noqa: E402
from videoblip2.fileio import atomic_write_json


def cider_metrics(predictions: dict[str, str], references: dict[str, list[str]]) -> dict[str, float]:
    """BLEU-4, ROUGE-L, CIDEr with eval.coco (PTB tokenizer); pycocoevalcap's Cider directly without Java."""
    try:
        from videoblip2.eval.coco import JavaNotFoundError, compute_metrics
    except ImportError:
        compute_metrics = None
    if compute_metrics is not None:
        try:
            scores = compute_metrics(predictions, references, metrics=("BLEU", "ROUGE_L", "CIDEr"))
            return {"BLEU-4": scores["BLEU-4"], "ROUGE_L": scores["ROUGE_L"], "CIDEr": scores["CIDEr"]}
        except JavaNotFoundError:
            pass
    from pycocoevalcap.cider.cider import Cider

    score, _ = Cider().compute_score({k: list(v) for k, v in references.items()},
                                     {k: [predictions[k]] for k in references})
    return {"CIDEr": float(score)}


def oracle_captions(latents: dict[str, synth.Latent], video_ids: list[str], variant: str) -> dict[str, str]:
    out = {}
    for video_id in video_ids:
        latent = latents[video_id]
        fields = {"subject": latent.subject, "place": latent.place, "action": latent.action, "sound": latent.sound,
                  "difficulty": latent.difficulty}
        if variant == "time-blind":
            fields["action"] = synth.forward_action(latent.action, latent.difficulty)[0]
        elif variant == "audio-blind":
            fields["sound"] = None
        out[video_id] = synth.canonical_caption(fields)
    return out


def ridge_accuracy(features: np.ndarray, labels: list[str], train: np.ndarray, test: np.ndarray,
                   ridge: float = 1.0) -> float:
    """Test accuracy of a one-vs-all ridge classifier fitted on the train rows."""
    classes = sorted(set(labels))
    targets = np.eye(len(classes))[[classes.index(label) for label in labels]]
    x = np.concatenate([features - features[train].mean(0), np.ones((len(features), 1))], axis=1)
    weights = np.linalg.solve(x[train].T @ x[train] + ridge * np.eye(x.shape[1]), x[train].T @ targets[train])
    return float(((x[test] @ weights).argmax(1) == targets[test].argmax(1)).mean())


def probes(data_dir: Path, latents: dict[str, synth.Latent], num_frames: int) -> dict[str, dict[str, float]]:
    video_ids = [v for v, latent in latents.items() if latent.split in ("train", "test")]
    store = FeatureStore(data_dir, video_ids, max_frames=num_frames, max_audio_windows=32)
    video = store.video.float().numpy()
    audio_mask = store.audio_mask.numpy()[..., None]
    audio_mean = (store.audio.float().numpy() * audio_mask).sum(1) / np.maximum(audio_mask.sum(1), 1)
    half = num_frames // 2
    inputs = {
        "video mean (time-blind)": video.mean(1),
        "video halves (time-aware)": np.concatenate([video[:, :half].mean(1), video[:, half:].mean(1)], axis=1),
        "audio mean": audio_mean,
    }
    train = np.array([latents[v].split == "train" for v in video_ids])
    result = {}
    for name, features in inputs.items():
        result[name] = {factor: ridge_accuracy(features, [str(getattr(latents[v], factor)) for v in video_ids],
                                               train, ~train)
                        for factor in ("subject", "place", "action", "sound")}
    return result


def loader_timing(data_dir: Path, train: dict[str, list[str]], batch_size: int = 64) -> dict[str, float]:
    """Preload time of the training split, and the time of one ``CaptionDataset.batch`` (CPU)."""
    from videoblip2.data import CaptionDataset, index_batches
    from videoblip2.tiny import t5_style_tokenizer

    tokenizer = t5_style_tokenizer([c for captions in train.values() for c in captions])
    start = time.perf_counter()
    store = FeatureStore(data_dir, list(train), max_frames=16, max_audio_windows=8)
    preload = time.perf_counter() - start
    start = time.perf_counter()
    dataset = CaptionDataset(store, train, tokenizer, max_caption_len=32)
    tokenize = time.perf_counter() - start
    batches = list(index_batches(len(dataset), batch_size, seed=0))
    start = time.perf_counter()
    for indices in batches:
        dataset.batch(indices)
    per_batch = (time.perf_counter() - start) / len(batches)
    return {"preload_seconds": preload, "tokenize_seconds": tokenize, "num_pairs": len(dataset),
            "batch_size": batch_size, "batch_ms": per_batch * 1000}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--size", choices=list(synth.SIZES), default="default")
    sizes.add_argument("--num-videos", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", choices=list(synth.LEVELS), default="default")
    parser.add_argument("--data", default=None, help="write the data set here (default: a temporary directory)")
    parser.add_argument("--out", default="bench_synth.json", help="JSON results")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(args.data) if args.data else Path(tmp) / "synth"
        summary = synth.generate(data_dir, seed=args.seed, size=args.size, num_videos=args.num_videos,
                                 overwrite=True, progress=False, difficulty=args.difficulty)
        latents = synth.latent_factors(data_dir)
        train = load_annotations(data_dir / "train_val_videodatainfo.json", split="train")
        test = load_annotations(data_dir / "test_videodatainfo.json", split="test")
        most_common, count = Counter(c for captions in train.values() for c in captions).most_common(1)[0]
        test_ids = list(test)
        predictions = {
            "most common train caption": {v: most_common for v in test_ids},
            "oracle, time-blind": oracle_captions(latents, test_ids, "time-blind"),
            "oracle, audio-blind": oracle_captions(latents, test_ids, "audio-blind"),
            "oracle (upper reference)": oracle_captions(latents, test_ids, "full"),
        }
        start = time.perf_counter()
        scores = {name: cider_metrics(preds, test) for name, preds in predictions.items()}
        factors = {name: synth.factor_accuracy(preds, latents) for name, preds in predictions.items()}
        metric_seconds = time.perf_counter() - start
        probe_accuracy = probes(data_dir, latents, summary.num_frames)
        loader = loader_timing(data_dir, train)

    result = {
        "benchmark": "synth_reference",
        "size": args.size if args.num_videos is None else f"{args.num_videos} videos",
        "seed": args.seed,
        "difficulty": args.difficulty,
        "splits": summary.splits,
        "videos_without_audio": summary.num_no_audio,
        "num_frames": summary.num_frames,
        "num_audio_windows": summary.num_audio_windows,
        "generate_seconds": summary.seconds,
        "metric_seconds": metric_seconds,
        "most_common_train_caption": most_common,
        "most_common_train_caption_count": count,
        "scores_test": scores,
        "factor_accuracy_test": factors,
        "probe_accuracy_test": probe_accuracy,
        "loader": loader,
        "device": f"CPU ({os.cpu_count()} cores visible), {platform.processor() or platform.machine()}",
    }
    splits = " / ".join(str(v) for v in summary.splits.values())
    print(f"synth {result['size']}, {args.difficulty} level (seed {args.seed}): {splits} videos (train/validate/test), "
          f"{summary.num_no_audio} without audio, generated in {summary.seconds:.2f} s")
    print(f"most common training caption ({count}x): {most_common!r}\n")
    names = list(next(iter(scores.values())))
    print(f"{'test split, prediction':<28}" + "".join(f"{n:>10}" for n in names))
    for name, values in scores.items():
        print(f"{name:<28}" + "".join(f"{values[n]:>10.3f}" for n in names))
    columns = ("subject", "place", "action", "action (reversible)", "sound", "all")
    print(f"\n{'factors named correctly':<28}" + "".join(f"{c.replace('action (reversible)', 'reversible'):>11}"
                                                      for c in columns))
    for name, accuracy in factors.items():
        print(f"{name:<28}" + "".join(f"{accuracy[c]:>11.3f}" for c in columns))
    print(f"\n{'probe accuracy (test)':<28}" + "".join(f"{f:>10}" for f in ("subject", "place", "action", "sound")))
    for name, accuracy in probe_accuracy.items():
        print(f"{name:<28}" + "".join(f"{accuracy[f]:>10.3f}" for f in ("subject", "place", "action", "sound")))
    print(f"\nloader (train split): preload {loader['preload_seconds']:.2f} s, tokenize {loader['num_pairs']} "
          f"captions once {loader['tokenize_seconds']:.2f} s, CaptionDataset.batch({loader['batch_size']}) "
          f"{loader['batch_ms']:.2f} ms")
    atomic_write_json(args.out, result, indent=2)
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
