"""Proof that VideoBLIP2 learns: the demo's chain on the synthetic benchmark, with ablations, over seeds.

    python bench/learning.py [--data demo_data] [--run runs/learning] [--out bench_learning.json]
        [--difficulty recipe] [--seeds 3] [--ce-steps 1500] [--scst-steps 150]

Reports CIDEr / BLEU-4 / METEOR / ROUGE-L and the bad-ending rate (videoblip2.decoding.bad_ending_rate) on the
synthetic test split (greedy captions) of
  (a) always answering the most common training caption,
  (b) the train_ce model,
  (c) train_scst from (b) with its defaults (greedy baseline, top-5 references built by train_scst, end of
      sentence in the reward, train_scst's loss normalisation), and each default changed alone: the
      mean-of-others baseline (--baseline mean), no end of sentence in the reward (--no-eos-reward), the
      full references (--refs full) and the other loss normalisation (--loss-norm, where train_scst has it),
  (d) the train_ce model with the audio removed at test time,
  (e) the train_ce model with the frames of each test video shuffled,
plus how often each latent factor is named correctly (`videoblip2.synth.factor_accuracy`).

Every model is trained once per seed (`--seeds N`: train_ce / train_scst `--seed` 0 .. N-1 on the same data);
the JSON has every seed's rows ("per_seed") and, for every metric, mean, sample std and the values over the
seeds ("summary", bench/seeds.py). It is rewritten after every row, so a stopped run keeps what it scored.
`best/` is chosen on the whole validation split unless --val-videos says otherwise.
Expected: (b) far above (a); (c) above (b); (d) and (e) clearly below (b).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.seeds import summarize  # noqa: E402
from videoblip2.eval.coco import compute_metrics  # noqa: E402
from videoblip2.train import train_ce, train_scst  # noqa: E402
from videoblip2 import synth  # noqa: E402
from videoblip2.annotations import load_annotations  # noqa: E402
from videoblip2.data import FeatureStore, VideoDataset, ablate_features  # noqa: E402
from videoblip2.decoding import bad_ending_rate  # noqa: E402
from videoblip2.fileio import atomic_write_json  # noqa: E402
from videoblip2.modeling import VideoBLIP2  # noqa: E402
from videoblip2.predict import predict_captions  # noqa: E402


def loss_norm_flags() -> tuple[str, str] | None:
    """(train_scst's default --loss-norm, the other choice), or None when train_scst has no --loss-norm."""
    probe = ["--model", "m", "--features", "f", "--ann", "a", "--out", "o"]
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            default = train_scst.parse_args(probe).loss_norm
    except (SystemExit, AttributeError):
        return None
    return default, ("token" if default == "sequence" else "sequence")


def scst_runs() -> dict[str, tuple[str, list[str]]]:
    """name -> (row label, train_scst flags): the defaults, then each default changed alone."""
    runs = {
        "scst_greedy": ("(c) train_scst, defaults (greedy baseline, top-5 refs, EOS reward)", []),
        "scst_mean": ("(c) train_scst, --baseline mean", ["--baseline", "mean"]),
        "scst_greedy_noeos": ("(c) train_scst, --no-eos-reward", ["--no-eos-reward"]),
        "scst_full_refs": ("(c) train_scst, --refs full", ["--refs", "full"]),
    }
    norm = loss_norm_flags()
    if norm is not None:
        runs["scst_loss_norm"] = (f"(c) train_scst, --loss-norm {norm[1]} (default {norm[0]})",
                                  ["--loss-norm", norm[1]])
    return runs


# the tiny model's train_ce settings in every learning benchmark (bench/frame_order.py trains with them too)
CE_SETTINGS = ("--batch-size", "32", "--lr", "2e-3", "--dropout", "0")


def ablated(mode: str):
    """The test-time ablation of `predict --ablate MODE` (videoblip2.data.ablate_features, seed 0)."""
    return lambda batch: ablate_features(batch, mode, seed=0)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="demo_data", help="synthetic data directory (generated if missing)")
    p.add_argument("--run", default="runs/learning", help="where the trained models go (RUN/seedS/NAME)")
    p.add_argument("--out", default="bench_learning.json")
    p.add_argument("--seeds", type=int, default=1, help="train every model with seeds FIRST .. FIRST+N-1")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--ce-epochs", type=int, default=2)
    p.add_argument("--ce-steps", type=int, default=None, help="train_ce --max-steps (overrides --ce-epochs)")
    p.add_argument("--scst-epochs", type=int, default=1)
    p.add_argument("--scst-steps", type=int, default=None, help="train_scst --max-steps (overrides --scst-epochs)")
    p.add_argument("--scst", nargs="*", default=None, metavar="NAME",
                   help="SCST runs to train (default all: scst_greedy scst_mean scst_greedy_noeos scst_full_refs "
                        "scst_loss_norm); none with a bare --scst")
    p.add_argument("--val-videos", type=int, default=None,
                   help="choose best/ on the first N validation videos (default: the whole validation split)")
    p.add_argument("--reuse", action="store_true", help="reuse finished runs in --run instead of retraining")
    p.add_argument("--difficulty", default=None, help="videoblip2.synth --difficulty when --data is generated")
    p.add_argument("--size", default=None,
                   help="videoblip2.synth --size when --data is generated (default: recipe for the recipe level)")
    p.add_argument("--num-threads", type=int, default=None, help="torch CPU threads of the training runs")
    p.add_argument("--metrics", nargs="+", default=["BLEU", "METEOR", "ROUGE_L", "CIDEr"],
                   help="eval.coco.compute_metrics metrics (METEOR starts a Java process per row: slow on a busy "
                        "machine)")
    return p.parse_args(argv)


def ensure_data(data: Path, difficulty: str | None, size: str | None) -> None:
    if (data / "meta.json").exists():
        return
    size = size or ("recipe" if difficulty == "recipe" else None)
    synth.main(["--out", str(data), "--no-progress"] + (["--difficulty", difficulty] if difficulty else [])
               + (["--size", size] if size else []))


def score(predictions: dict[str, str], refs, latents, metrics=("BLEU", "METEOR", "ROUGE_L", "CIDEr")) -> dict:
    scores = compute_metrics(predictions, refs, metrics=list(metrics))
    scores["bad_endings"] = bad_ending_rate(predictions.values())
    scores["factors"] = synth.factor_accuracy(predictions, latents)
    scores["example"] = next(iter(predictions.values()))
    return scores


def main(argv=None) -> dict:
    args = parse_args(argv)
    data, run = Path(args.data), Path(args.run)
    ensure_data(data, args.difficulty, args.size)
    ann = str(data / "train_val_videodatainfo.json")
    test_ann = str(data / "test_videodatainfo.json")
    runs = scst_runs()
    chosen = list(runs) if args.scst is None else args.scst
    unknown = [name for name in chosen if name not in runs]
    if unknown:
        sys.exit(f"bench/learning.py: --scst: unknown run(s) {', '.join(unknown)}; choose from {', '.join(runs)}")
    refs = load_annotations(test_ann, split="test")
    train_refs = load_annotations(ann, split="train")
    most_common = Counter(c for caps in train_refs.values() for c in caps).most_common(1)[0][0]
    latents = synth.latent_factors(data)
    report = {"data": str(data), "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
              "settings": {k: v for k, v in vars(args).items() if k not in ("reuse",)},
              "per_seed": {}, "train_seconds": {}, "summary": {}}

    def save():
        names = list(dict.fromkeys(n for rows in report["per_seed"].values() for n in rows))
        report["summary"] = {n: summarize([rows[n] for rows in report["per_seed"].values() if n in rows])
                             for n in names}
        atomic_write_json(args.out, report, indent=2)

    common = ["--features", str(data), "--ann", ann, "--no-progress"]
    if args.num_threads:
        common += ["--num-threads", str(args.num_threads)]
    if args.val_videos:
        common += ["--val-videos", str(args.val_videos)]
    ce_length = ["--max-steps", str(args.ce_steps)] if args.ce_steps else ["--epochs", str(args.ce_epochs)]
    scst_length = ["--max-steps", str(args.scst_steps)] if args.scst_steps else ["--epochs", str(args.scst_epochs)]
    for seed in report["seeds"]:
        rows = report["per_seed"].setdefault(str(seed), {})
        timings = report["train_seconds"].setdefault(str(seed), {})
        out = run / f"seed{seed}"

        def timed(name, fn, fn_args):
            if args.reuse and (out / name / "best" / "config.json").exists():
                return
            start = time.time()
            fn(fn_args)
            timings[name] = round(time.time() - start, 1)

        rows["(a) most common training caption"] = score({v: most_common for v in refs}, refs, latents,
                                                         args.metrics)
        timed("ce", train_ce.main, ["--tiny", *common, "--out", str(out / "ce"), *ce_length, "--seed", str(seed),
                                    *CE_SETTINGS, "--overwrite"])
        ce = VideoBLIP2.from_pretrained(out / "ce" / "best")
        store = FeatureStore(data, list(refs), max_frames=ce.config.max_frames,
                             max_audio_windows=ce.config.max_audio_windows)
        dataset = VideoDataset(store)
        rows["(b) train_ce"] = score(predict_captions(ce, dataset, progress=False), refs, latents, args.metrics)
        rows["(d) train_ce, audio removed"] = score(
            predict_captions(ce, dataset, transform=ablated("audio"), progress=False), refs, latents, args.metrics)
        rows["(e) train_ce, frames shuffled"] = score(
            predict_captions(ce, dataset, transform=ablated("frame-order"), progress=False), refs, latents,
            args.metrics)
        save()
        # train_scst's defaults otherwise: top-5 refs it builds, EOS in the reward
        for name in chosen:
            label, flags = runs[name]
            timed(name, train_scst.main, [
                "--model", str(out / "ce"), *common, *flags, "--seed", str(seed),
                "--out", str(out / name), *scst_length, "--batch-size", "8", "--lr", "5e-5", "--overwrite"])
            model = VideoBLIP2.from_pretrained(out / name / "best")
            rows[label] = score(predict_captions(model, dataset, progress=False), refs, latents, args.metrics)
            save()
    save()
    keys = [k for k in ("CIDEr", "BLEU-4", "METEOR", "ROUGE_L", "bad_endings")
            if k in next(iter(report["summary"].values()))]
    print(f"{'synthetic test split':<48}" + "".join(f"{k:>16}" for k in keys))
    for name, scores in report["summary"].items():
        print(f"{name[:47]:<48}" + "".join(f"{scores[k]['mean']:>9.3f}±{scores[k]['std']:<6.3f}" for k in keys))
    print("factor accuracy (mean over seeds):")
    for name, scores in report["summary"].items():
        print(f"  {name[:46]:<46} " + ", ".join(f"{k} {v['mean']:.2f}" for k, v in scores["factors"].items()))
    return report


if __name__ == "__main__":
    main()
