"""Proof that VideoBLIP2 learns: the demo's chain on the synthetic benchmark, with ablations.

    python bench/learning.py [--data demo_data] [--run runs/learning] [--out bench_learning.json]
        [--difficulty hard]

Reports CIDEr / BLEU-4 / METEOR / ROUGE-L and the bad-ending rate (videoblip2.decoding.bad_ending_rate) on the
synthetic test split (greedy captions) of
  (a) always answering the most common training caption,
  (b) the train_ce model,
  (c) train_scst from (b) with its defaults (greedy baseline, top-5 references built by train_scst, end of
      sentence in the reward), once more with the mean-of-others baseline, and once without the end of
      sentence in the reward (--no-eos-reward),
  (d) the train_ce model with the audio removed at test time,
  (e) the train_ce model with the frames of each test video shuffled,
plus how often each latent factor is named correctly (`videoblip2.synth.factor_accuracy`).
Expected: (b) far above (a); (c) above (b); (d) and (e) clearly below (b).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from videoblip2.eval.coco import compute_metrics  # noqa: E402
from videoblip2.train import train_ce, train_scst  # noqa: E402
from videoblip2 import synth  # noqa: E402
from videoblip2.annotations import load_annotations  # noqa: E402
from videoblip2.data import FeatureStore, VideoDataset, ablate_features  # noqa: E402
from videoblip2.decoding import bad_ending_rate  # noqa: E402
from videoblip2.modeling import VideoBLIP2  # noqa: E402
from videoblip2.predict import predict_captions  # noqa: E402
from videoblip2.fileio import atomic_write_json  # noqa: E402


# train_scst runs from the train_ce model: the defaults (greedy baseline), the "new SCST" mean baseline, and the
# defaults without the end of sentence in the reward (what the EOS word changes)
SCST_RUNS = {"scst_greedy": ["--baseline", "greedy"], "scst_mean": ["--baseline", "mean"],
             "scst_greedy_noeos": ["--baseline", "greedy", "--no-eos-reward"]}
SCST_NAMES = {"scst_greedy": "(c) train_scst, greedy baseline", "scst_mean": "(c) train_scst, mean baseline",
              "scst_greedy_noeos": "(c) train_scst, greedy, no EOS reward"}


def ablated(mode: str):
    """The test-time ablation of `predict --ablate MODE` (videoblip2.data.ablate_features, seed 0)."""
    return lambda batch: ablate_features(batch, mode, seed=0)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="demo_data", help="synthetic data directory (generated if missing)")
    p.add_argument("--run", default="runs/learning", help="where the trained models go")
    p.add_argument("--out", default="bench_learning.json")
    p.add_argument("--ce-epochs", type=int, default=2)
    p.add_argument("--scst-epochs", type=int, default=1)
    p.add_argument("--reuse", action="store_true", help="reuse finished runs in --run instead of retraining")
    p.add_argument("--difficulty", default=None, help="videoblip2.synth --difficulty when --data is generated")
    p.add_argument("--num-threads", type=int, default=None, help="torch CPU threads of the training runs")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    data, run = Path(args.data), Path(args.run)
    if not (data / "meta.json").exists():
        synth.main(["--out", str(data)] + (["--difficulty", args.difficulty] if args.difficulty else []))
    ann = str(data / "train_val_videodatainfo.json")
    test_ann = str(data / "test_videodatainfo.json")
    timings = {}

    def timed(name, fn, *fn_args):
        if args.reuse and (run / name / "best" / "config.json").exists():
            return
        start = time.time()
        fn(*fn_args)
        timings[name] = round(time.time() - start, 1)

    common = ["--features", str(data), "--ann", ann, "--no-progress"]
    if args.num_threads:
        common += ["--num-threads", str(args.num_threads)]
    timed("ce", train_ce.main, ["--tiny", *common, "--out", str(run / "ce"), "--epochs", str(args.ce_epochs),
                                "--batch-size", "32", "--lr", "2e-3", "--dropout", "0",
                                "--val-videos", "50", "--overwrite"])
    # train_scst's defaults otherwise: top-5 refs it builds, EOS in the reward
    for name, flags in SCST_RUNS.items():
        timed(name, train_scst.main, [
            "--model", str(run / "ce"), *common, *flags,
            "--out", str(run / name), "--epochs", str(args.scst_epochs), "--batch-size", "8",
            "--lr", "5e-5", "--val-videos", "50", "--overwrite"])

    refs = load_annotations(test_ann, split="test")
    train_refs = load_annotations(ann, split="train")
    most_common = Counter(c for caps in train_refs.values() for c in caps).most_common(1)[0][0]
    latents = synth.latent_factors(data)
    ce = VideoBLIP2.from_pretrained(run / "ce" / "best")
    store = FeatureStore(data, list(refs), max_frames=ce.config.max_frames,
                         max_audio_windows=ce.config.max_audio_windows)
    dataset = VideoDataset(store)
    variants = {
        "(a) most common training caption": {v: most_common for v in refs},
        "(b) train_ce": predict_captions(ce, dataset, progress=False),
        **{SCST_NAMES[name]: predict_captions(VideoBLIP2.from_pretrained(run / name / "best"), dataset,
                                              progress=False) for name in SCST_RUNS},
        "(d) train_ce, audio removed": predict_captions(ce, dataset, transform=ablated("audio"), progress=False),
        "(e) train_ce, frames shuffled": predict_captions(ce, dataset, transform=ablated("frame-order"),
                                                          progress=False),
    }
    results = {}
    for name, predictions in variants.items():
        scores = compute_metrics(predictions, refs)
        scores["bad_endings"] = bad_ending_rate(predictions.values())
        scores["factors"] = synth.factor_accuracy(predictions, latents)
        scores["example"] = next(iter(predictions.values()))
        results[name] = scores
    keys = ("CIDEr", "BLEU-4", "METEOR", "ROUGE_L", "bad_endings")
    print(f"{'synthetic test split':<40}" + "".join(f"{k:>12}" for k in keys))
    for name, scores in results.items():
        print(f"{name:<40}" + "".join(f"{scores[k]:>12.3f}" for k in keys))
    print("factor accuracy (subject/place/action/sound ...):")
    for name, scores in results.items():
        print(f"  {name:<38} " + ", ".join(f"{k} {v:.2f}" for k, v in scores["factors"].items()))
    report = {"results": results, "train_seconds": timings, "data": str(data)}
    atomic_write_json(args.out, report, indent=2)
    return report


if __name__ == "__main__":
    main()
