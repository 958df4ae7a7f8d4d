"""Does the tiny model learn frame order? The video time embedding's start, compared over seeds (issue 23).

    python bench/frame_order.py [--data runs/recipe/data] [--run runs/frame_order] [--out bench_frame_order.json]
        [--scales 0 0.3] [--seeds 3] [--ce-steps 1500] [--min-visibility 0.5] [--reuse]

For every `VideoBLIP2Config.video_time_init_scale` in --scales (0: the BERT-style start, normal with std 0.02;
0.3: sinusoidal positions x 0.3, the default) and every seed, trains train_ce exactly as bench/learning.py does
(tiny model, batch 32, lr 2e-3, dropout 0, `--seed S`) on the synthetic recipe level and scores the greedy test
captions as is and with each video's frames shuffled (videoblip2.data.ablate_features): how often the
reversible action ("opens" vs "closes" a door: the same frames in reverse order) is named right, the other
factors, and "all factors". A model that reads frame order names the reversible action right (~1.0) and falls
to chance (~0.5) with shuffled frames; one that does not is at ~0.5 both ways.

The JSON has every (scale, seed) row and, per scale, how many seeds learned frame order (reversible action
>= 0.9 as is and <= 0.6 with shuffled frames); it is rewritten after every row.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from unittest import mock

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.learning import CE_SETTINGS, ablated, ensure_data  # noqa: E402
from bench.seeds import fmt, summarize  # noqa: E402
from videoblip2 import synth, tiny  # noqa: E402
from videoblip2.annotations import load_annotations  # noqa: E402
from videoblip2.data import FeatureStore, VideoDataset  # noqa: E402
from videoblip2.fileio import atomic_write_json  # noqa: E402
from videoblip2.modeling import VideoBLIP2  # noqa: E402
from videoblip2.predict import predict_captions  # noqa: E402
from videoblip2.train import train_ce  # noqa: E402

LEARNED, CHANCE = 0.9, 0.6  # reversible action as is >= LEARNED and with shuffled frames <= CHANCE


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="runs/recipe/data", help="synthetic data (generated at the recipe level "
                                                              "if missing)")
    p.add_argument("--run", default="runs/frame_order", help="models go to RUN/scaleX/seedS")
    p.add_argument("--out", default="bench_frame_order.json")
    p.add_argument("--min-visibility", type=float, default=None,
                   help="when --data is generated: the recipe level with this subject/place visibility minimum "
                        "(default: the level's own, 0.25; the level had 0.5 before the time-embedding change)")
    p.add_argument("--scales", type=float, nargs="+", default=[0.0, 0.3],
                   help="video_time_init_scale values (0: normal start, std 0.02)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--ce-steps", type=int, default=1500)
    p.add_argument("--num-threads", type=int, default=1)
    p.add_argument("--reuse", action="store_true", help="reuse trained models in RUN")
    return p.parse_args(argv)


def with_time_init_scale(scale: float):
    """``tiny.tiny_config`` with ``video_time_init_scale`` set (train_ce --tiny builds its config with it)."""
    original = tiny.tiny_config

    def config(*args, **kwargs):
        cfg = original(*args, **kwargs)
        cfg.video_time_init_scale = scale
        return cfg

    return config


def main(argv=None) -> dict:
    args = parse_args(argv)
    data, run = Path(args.data), Path(args.run)
    if args.min_visibility is None:
        ensure_data(data, "recipe", None)
    elif not (data / "meta.json").exists():
        level = dataclasses.replace(synth.LEVELS["recipe"], min_visibility=args.min_visibility)
        with mock.patch.dict(synth.LEVELS, {"recipe": level}):
            synth.generate(data, difficulty="recipe", size="recipe", progress=False)
    refs = load_annotations(data / "test_videodatainfo.json", split="test")
    latents = synth.latent_factors(data)
    report = {"data": str(data), "settings": vars(args), "rows": {}, "summary": {}}
    for scale in args.scales:
        rows = report["rows"].setdefault(f"{scale:g}", {})
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            out = run / f"scale{scale:g}" / f"seed{seed}"
            start = time.time()
            if not (args.reuse and (out / "best" / "config.json").exists()):
                with mock.patch.object(tiny, "tiny_config", with_time_init_scale(scale)):
                    train_ce.main(["--tiny", "--features", str(data), "--ann", str(data / "train_val_videodatainfo.json"),
                                   "--no-progress", "--num-threads", str(args.num_threads), "--out", str(out),
                                   "--max-steps", str(args.ce_steps), "--seed", str(seed), *CE_SETTINGS,
                                   "--overwrite"])
            model = VideoBLIP2.from_pretrained(out / "best")
            assert model.config.video_time_init_scale == scale, (model.config.video_time_init_scale, scale)
            store = FeatureStore(data, list(refs), max_frames=model.config.max_frames,
                                 max_audio_windows=model.config.max_audio_windows)
            dataset = VideoDataset(store)
            plain = synth.factor_accuracy(predict_captions(model, dataset, progress=False), latents)
            shuffled = synth.factor_accuracy(
                predict_captions(model, dataset, transform=ablated("frame-order"), progress=False), latents)
            rows[str(seed)] = {"as is": plain, "frames shuffled": shuffled, "seconds": round(time.time() - start, 1),
                               "learned": plain["action (reversible)"] >= LEARNED
                               and shuffled["action (reversible)"] <= CHANCE}
            report["summary"][f"{scale:g}"] = {
                "seeds learning frame order": sum(r["learned"] for r in rows.values()), "seeds": len(rows),
                "as is": summarize([r["as is"] for r in rows.values()]),
                "frames shuffled": summarize([r["frames shuffled"] for r in rows.values()])}
            atomic_write_json(args.out, report, indent=2)
            print(f"scale {scale:g} seed {seed}: reversible action {plain['action (reversible)']:.2f} as is, "
                  f"{shuffled['action (reversible)']:.2f} with shuffled frames; all factors {plain['all']:.2f}",
                  flush=True)
    print(f"{'video_time_init_scale':<24}{'learned':>10}{'reversible':>18}{'shuffled':>18}{'all factors':>18}")
    for scale, s in report["summary"].items():
        print(f"{scale:<24}{s['seeds learning frame order']:>6} of {s['seeds']}"
              f"{fmt(s['as is']['action (reversible)']):>18}{fmt(s['frames shuffled']['action (reversible)']):>18}"
              f"{fmt(s['as is']['all']):>18}")
    return report


if __name__ == "__main__":
    main()
