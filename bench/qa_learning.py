"""Proof that VideoBLIP2 learns audio-visual question answering, and from the right input.

    python bench/qa_learning.py [--data demo_data] [--run runs/qa_learning] [--out bench_qa_learning.json]
        [--qa-steps 375] [--caption-steps 375] [--num-threads 1] [--seeds 3] [--runs qa multi]

Three train_ce runs of the tiny model on the synthetic benchmark (videoblip2.synth; its avqa-*.json questions):
  QA only (--qa-ann, `--qa-steps`), captions only (--ann, `--caption-steps`), and both in one run
  (--ann + --qa-ann, `--qa-steps + --caption-steps` steps with --qa-ratio qa/(qa + caption): each task sees as
  many items as in its own run).
Scored on the test split: QA accuracy (eval.qa.qa_scores, greedy answers) overall, per modality and for the
temporal questions, beside the per-type majority baseline; CIDEr-D of greedy captions (eval.coco). The QA-only
and multi-task models are also scored with the audio removed and with the frames of each video shuffled at
test time (videoblip2.data.ablate_features). Every run is trained once per seed (`--seeds N`: train_ce
--seed 0 .. N-1 on the same data; models scored from last/); the JSON has each seed's tables ("per_seed") and
mean, sample std and values over the seeds ("summary", bench/seeds.py), rewritten after every scored run.
Expected: majority < QA-only; audio removed -> audio questions near the majority baseline, visual ones
unchanged; frames shuffled -> temporal questions near chance (1/2: each asks "open or close?"); the multi-task
run near both single-task runs on both metrics.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench.learning import ensure_data  # noqa: E402
from bench.seeds import fmt, stats, summarize  # noqa: E402
from eval.coco import compute_metrics  # noqa: E402
from eval.qa import qa_scores  # noqa: E402
from train import train_ce  # noqa: E402
from videoblip2.annotations import load_annotations, load_qa_annotations  # noqa: E402
from videoblip2.data import FeatureStore, QADataset, VideoDataset, ablate_features  # noqa: E402
from videoblip2.fileio import atomic_write_json  # noqa: E402
from videoblip2.modeling import VideoBLIP2  # noqa: E402
from videoblip2.predict import predict_answers, predict_captions  # noqa: E402


RUN_NAMES = ("qa", "captions", "multi")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="demo_data", help="synthetic data directory (generated if missing)")
    p.add_argument("--run", default="runs/qa_learning", help="where the trained models go")
    p.add_argument("--out", default="bench_qa_learning.json")
    p.add_argument("--qa-steps", type=int, default=375, help="steps of the QA-only run (batch 32)")
    p.add_argument("--caption-steps", type=int, default=375, help="steps of the caption-only run (batch 32)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--dropout", type=float, default=0.0, help="train_ce --dropout (the demo's 0)")
    p.add_argument("--reuse", action="store_true", help="reuse finished runs in --run instead of retraining")
    p.add_argument("--seeds", type=int, default=1, help="train every run with train_ce --seed FIRST .. FIRST+N-1")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--runs", nargs="+", choices=RUN_NAMES, default=list(RUN_NAMES),
                   help="which runs to train and score (default all three)")
    p.add_argument("--val-videos", type=int, default=None,
                   help="caption validation on the first N validation videos (default: the whole split)")
    p.add_argument("--difficulty", default=None, help="videoblip2.synth --difficulty when --data is generated")
    p.add_argument("--size", default=None,
                   help="videoblip2.synth --size when --data is generated (default: recipe for the recipe level)")
    p.add_argument("--num-threads", type=int, default=1, help="torch CPU threads (training and scoring)")
    p.add_argument("--qa-loss-weights", nargs="+", default=None, metavar="W",
                   help="only the multi-task run, once per train_ce --qa-loss-weight W ('pooled': without it, the "
                        "label tokens of both tasks pooled); QA accuracy and CIDEr of each (issue 19)")
    p.add_argument("--score", nargs="+", default=None, metavar="MODEL_DIR",
                   help="no training: score these saved models (QA as is, audio removed, frames shuffled; CIDEr)")
    return p.parse_args(argv)


def score_qa(model: VideoBLIP2, data: Path, items, ablation: str | None = None) -> dict:
    store = FeatureStore(data, list(dict.fromkeys(i.video_id for i in items)), max_frames=model.config.max_frames,
                         max_audio_windows=model.config.max_audio_windows)
    questions = QADataset(store, items, model.t5_tokenizer, model.qformer_tokenizer, model.config)
    transform = (lambda batch: ablate_features(batch, ablation, seed=0)) if ablation else None
    answers = predict_answers(model, questions, batch_size=64, num_beams=1, transform=transform, progress=False)
    scores = qa_scores(answers, items)
    return {"accuracy": scores["accuracy"],
            **{f"modality {m}": s["accuracy"] for m, s in scores["per_modality"].items()},
            **{t: s["accuracy"] for t, s in scores["per_type"].items()}}


def majority_row(items) -> dict:
    scores = qa_scores({i.question_id: "" for i in items}, items)  # only the baselines are read
    return {"accuracy": scores["majority_baseline_per_type"],
            **{f"modality {m}": s["majority_baseline"] for m, s in scores["per_modality"].items()},
            **{t: s["majority_baseline"] for t, s in scores["per_type"].items()}}


def score_captions(model: VideoBLIP2, data: Path) -> float:
    refs = load_annotations(data / "test_videodatainfo.json", "test")
    store = FeatureStore(data, list(refs), max_frames=model.config.max_frames,
                         max_audio_windows=model.config.max_audio_windows)
    captions = predict_captions(model, VideoDataset(store), batch_size=64, num_beams=1, progress=False)
    return compute_metrics(captions, refs, metrics=["CIDEr"])["CIDEr"]


def score_models(args, data: Path) -> dict:
    """--score: each model's QA accuracy as is, without audio, with shuffled frames, and its caption CIDEr."""
    test = load_qa_annotations(data / "avqa-test.json")
    result = {"majority (per type)": majority_row(test)}
    for path in args.score:
        model = VideoBLIP2.from_pretrained(path).eval()
        for ablation in (None, "audio", "frame-order"):
            result[f"{path}" + (f", {ablation} ablated" if ablation else "")] = score_qa(model, data, test, ablation)
        result[f"{path}"]["CIDEr"] = score_captions(model, data)
    atomic_write_json(args.out, result, indent=2)
    for name, row in result.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    return result


def loss_weight_runs(args, data: Path, run: Path, common: list[str], multi: list[str], ratio: float) -> dict:
    """The multi-task run with each --qa-loss-weight: the same items, the task balance of the loss changed."""
    test = load_qa_annotations(data / "avqa-test.json")
    rows, seconds = {}, {}
    for weight in args.qa_loss_weights:
        name = f"multi_{weight}"
        flags = [] if weight == "pooled" else ["--qa-loss-weight", weight]
        if not (args.reuse and (run / name / "last" / "config.json").exists()):
            start = time.perf_counter()
            train_ce.main([*common, *multi, *flags, "--out", str(run / name), "--overwrite"])
            seconds[name] = round(time.perf_counter() - start, 1)
        model = VideoBLIP2.from_pretrained(run / name / "last").eval()
        rows[name] = {**score_qa(model, data, test), "cider": score_captions(model, data)}
    result = {"multi_task_by_qa_loss_weight": rows, "train_seconds": seconds,
              "settings": {**vars(args), "qa_ratio_multi": ratio, "questions_test": len(test)}}
    atomic_write_json(args.out, result, indent=2)
    columns = ["accuracy", "modality Audio", "modality Visual", "Audio-Visual/Temporal", "cider"]
    print(f"{'':20s}" + "".join(f"{c:>24s}" for c in columns))
    for name, row in rows.items():
        print(f"{name:20s}" + "".join(f"{row.get(c, float('nan')):24.3f}" for c in columns))
    print(f"wrote {args.out}")
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.num_threads)
    data, run = Path(args.data), Path(args.run)
    ensure_data(data, args.difficulty, args.size)
    if args.score:
        return score_models(args, data)
    common = ["--tiny", "--features", str(data), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
              "--dropout", str(args.dropout),
              "--num-threads", str(args.num_threads), "--no-progress", "--log-every", "50"]
    captions = ["--ann", str(data / "train_val_videodatainfo.json")]
    if args.val_videos:
        captions += ["--val-videos", str(args.val_videos)]
    questions = ["--qa-ann", str(data / "avqa-train.json"), "--qa-val-ann", str(data / "avqa-val.json")]
    ratio = args.qa_steps / (args.qa_steps + args.caption_steps)
    runs = {
        "qa": [*questions, "--max-steps", str(args.qa_steps)],
        "captions": [*captions, "--max-steps", str(args.caption_steps)],
        "multi": [*captions, *questions, "--qa-ratio", f"{ratio:.6g}", "--best-metric", "val_qa_accuracy",
                  "--max-steps", str(args.qa_steps + args.caption_steps)],
    }
    if args.qa_loss_weights:
        return loss_weight_runs(args, data, run, common, runs["multi"], ratio)
    runs = {name: flags for name, flags in runs.items() if name in args.runs}
    test = load_qa_annotations(data / "avqa-test.json")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    result = {"seeds": seeds, "settings": {**vars(args), "qa_ratio_multi": ratio, "questions_test": len(test)},
              "per_seed": {}, "train_seconds": {}, "summary": {}}

    def save():
        per_seed = list(result["per_seed"].values())
        qa_names = list(dict.fromkeys(n for s in per_seed for n in s["qa_test"]))
        cider_names = list(dict.fromkeys(n for s in per_seed for n in s["cider_test"]))
        result["summary"] = {
            "qa_test": {n: summarize([s["qa_test"][n] for s in per_seed if n in s["qa_test"]]) for n in qa_names},
            "cider_test": {n: stats([s["cider_test"][n] for s in per_seed if n in s["cider_test"]])
                           for n in cider_names}}
        atomic_write_json(args.out, result, indent=2)

    labels = {"qa": "QA only", "multi": "captions + QA (multi-task)", "captions": "captions only"}
    for seed in seeds:
        table = {"majority (per type)": majority_row(test)}
        cider: dict[str, float] = {}
        result["per_seed"][str(seed)] = {"qa_test": table, "cider_test": cider}
        seconds = result["train_seconds"].setdefault(str(seed), {})
        for name, flags in runs.items():
            out = run / f"seed{seed}" / name
            if not (args.reuse and (out / "last" / "config.json").exists()):
                start = time.perf_counter()
                train_ce.main([*common, *flags, "--seed", str(seed), "--out", str(out), "--overwrite"])
                seconds[name] = round(time.perf_counter() - start, 1)
            model = VideoBLIP2.from_pretrained(out / "last").eval()
            label = labels[name]
            table[label] = score_qa(model, data, test)
            if name != "captions":
                short = "QA only" if name == "qa" else "captions + QA"
                table[f"{short}, audio removed at test time"] = score_qa(model, data, test, "audio")
                table[f"{short}, frames shuffled at test time"] = score_qa(model, data, test, "frame-order")
            cider[label] = score_captions(model, data)
            save()
    save()
    columns = ["accuracy", "modality Audio", "modality Visual", "Audio-Visual/Temporal"]
    summary = result["summary"]
    print(f"{'':44s}" + "".join(f"{c:>24s}" for c in columns) + f"{'CIDEr':>16s}")
    for name, row in summary["qa_test"].items():
        print(f"{name:44s}" + "".join(f"{fmt(row.get(c)):>24s}" for c in columns)
              + (f"{fmt(summary['cider_test'][name]):>16s}" if name in summary["cider_test"] else ""))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
