"""The recipe table (issue 23): every design choice of the training recipe on the synthetic recipe level, over
seeds, with its interval and whether it is separated.

    python bench/recipe_table.py --run runs/recipe --seeds 3 [--jobs 2] [--ce-steps 1500] [--scst-steps 150]
        [--qa-steps 750] [--num-threads 1]
    # --jobs N: one child process per seed, N at a time (default: as many as the CPU has cores, at most one per
    # seed), each logging to RUN/logs/seedS.log; by hand, the same:
    python bench/recipe_table.py --run runs/recipe --first-seed 1 --seeds 1 --jobs 1 --no-table &
    python bench/recipe_table.py --run runs/recipe --table-only

Data: `videoblip2.synth --difficulty recipe --size recipe` (1800 / 300 / 300 videos, seed 0) in RUN/data,
generated once. Per seed (train_ce / train_scst `--seed`), bench/learning.py trains train_ce and every SCST
variant (defaults, --baseline mean, --no-eos-reward, --refs full, the other --loss-norm) and scores them with
the audio removed / frames shuffled ablations; bench/qa_learning.py trains QA only and captions + QA
(multi-task, as many caption steps as train_ce) and scores them as is, without audio and with shuffled frames.
Results go to RUN/learning_sF-L.json and RUN/qa_sF-L.json (rewritten after every row: a stopped run keeps
what it scored); the table is built from every RUN/learning_s*.json and RUN/qa_s*.json (seeds and rows
merged), with reference rows computed on the same test split (:func:`reference_rows`), and written to
RUN/table.json and RUN/table.md.

Separated: the difference of the means is larger than twice the larger of the two seed standard deviations
(bench/seeds.py); with one seed there is no verdict.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench import learning, qa_learning  # noqa: E402
from bench.seeds import fmt, separation, stats, summarize  # noqa: E402
from videoblip2.eval.cider import CiderD  # noqa: E402
from videoblip2.eval.coco import compute_metrics  # noqa: E402
from videoblip2 import synth  # noqa: E402
from videoblip2.annotations import load_annotations  # noqa: E402
from videoblip2.decoding import bad_ending_rate  # noqa: E402
from videoblip2.fileio import atomic_write_json, atomic_write_text  # noqa: E402

CE = "(b) train_ce"
SCST_DEFAULT = "(c) train_scst, defaults (greedy baseline, top-5 refs, EOS reward)"
QA_ONLY = "QA only"
MULTI = "captions + QA (multi-task)"
TEMPORAL = "Audio-Visual/Temporal"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/recipe", help="data, models and results (RUN/data, RUN/seedS/...)")
    p.add_argument("--data", default=None, help="synthetic data directory (default RUN/data; generated if missing)")
    p.add_argument("--difficulty", default="recipe")
    p.add_argument("--size", default=None, help="videoblip2.synth --size (default: recipe for the recipe level)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--ce-steps", type=int, default=1500, help="train_ce steps (batch 32), also the multi-task "
                                                             "run's caption steps")
    p.add_argument("--scst-steps", type=int, default=150, help="train_scst steps (8 videos x K=5 samples)")
    p.add_argument("--qa-steps", type=int, default=750, help="QA-only steps (batch 32), also the multi-task run's")
    p.add_argument("--scst", nargs="*", default=None, metavar="NAME", help="bench/learning.py --scst")
    p.add_argument("--qa-runs", nargs="*", default=["qa", "multi"], choices=qa_learning.RUN_NAMES,
                   help="bench/qa_learning.py --runs (none with a bare --qa-runs)")
    p.add_argument("--num-threads", type=int, default=1)
    p.add_argument("--metrics", nargs="+", default=["BLEU", "ROUGE_L", "CIDEr"],
                   help="caption metrics (bench/learning.py --metrics; METEOR is left out by default: one Java "
                        "process per row)")
    p.add_argument("--reuse", action="store_true", help="reuse trained models in RUN")
    p.add_argument("--jobs", type=int, default=None,
                   help="seeds trained in parallel child processes (default: the CPU's cores, at most --seeds)")
    p.add_argument("--no-table", action="store_true", help="train and score only; build no table (a child's job)")
    p.add_argument("--table-only", action="store_true", help="no training: the table of the results in RUN")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------------
# reference rows


def _renderings(latent: synth.Latent, with_held: bool) -> list[str]:
    """Every caption the level's templates and synonyms make of the true factors (optionally + the tail)."""
    level = synth.get_level(latent.difficulty)
    templates = level.silent_templates if latent.sound is None else level.sound_templates
    synonyms = range(len(level.synonym_weights))
    out = [synth.render_caption(latent, t, c) for t in range(len(templates))
           for c in itertools.product(synonyms, repeat=4)]
    if with_held and latent.held is not None:
        out += [f"{c} holding a {latent.held}" for c in out]
    return list(dict.fromkeys(out))


def reference_rows(data: Path, metrics=("BLEU", "ROUGE_L", "CIDEr")) -> dict[str, dict]:
    """Computed ceilings on the test split, each the per-video best of a candidate set under CIDEr-D (the
    test references' document frequencies, as the evaluation's), then scored like every model row:

    * canonical: the true factors, most common template and synonyms (bench/synth_reference.py's);
    * best rendering of the true factors: any template x synonyms, no tail (the best a model that reads
      every visible factor perfectly can pick per video; the held object is not in the features);
    * the same with the held object's tail allowed (sees what no input shows);
    * best reference (consensus): the video's own reference that scores highest against its references.
    """
    refs = load_annotations(data / "test_videodatainfo.json", split="test")
    latents = synth.latent_factors(data)
    cider = CiderD(refs)
    candidates = {
        "reference: canonical caption of the true factors": {v: [latents[v].canonical] for v in refs},
        "reference: best rendering of the true factors (no tail)": {v: _renderings(latents[v], False) for v in refs},
        "reference: best rendering + the held object's tail (not in the input)":
            {v: _renderings(latents[v], True) for v in refs},
        "reference: best of the video's own references (consensus)": {v: list(refs[v]) for v in refs},
    }
    rows = {}
    for name, per_video in candidates.items():
        flat = [(v, c) for v, caps in per_video.items() for c in caps]
        scores = cider.score([c for _, c in flat], [v for v, _ in flat])
        best: dict[str, tuple[float, str]] = {}
        for (video_id, caption), value in zip(flat, scores):
            if video_id not in best or value > best[video_id][0]:
                best[video_id] = (float(value), caption)
        predictions = {v: best[v][1] for v in refs}
        row = compute_metrics(predictions, refs, metrics=list(metrics))
        row["bad_endings"] = bad_ending_rate(predictions.values())
        row["factors"] = synth.factor_accuracy(predictions, latents)
        row["example"] = next(iter(predictions.values()))
        rows[name] = row
    return rows


TAIL_CANDIDATES = (("canonical caption", ""), ('+ "holding a"', " holding a"),
                   ('+ "holding a cup" (a guessed object)', " holding a cup"))


def tail_incentive(data: Path) -> dict[str, dict[str, float]]:
    """What ending on "holding a" is worth to SCST: the mean reward, over the training videos, of each video's
    canonical caption as is, + " holding a" and + " holding a cup", under train_scst's two rewards (CIDEr-D over
    the training references, against the top-5 references it builds, with and without the end of sentence as a
    word; the top-5 ranked by that same reward, as train_scst ranks them). Computed, not trained: whether the
    no-EOS reward pays for a bad ending at all on this level."""
    from videoblip2.train.make_top5 import select_top

    train = load_annotations(data / "train_val_videodatainfo.json", split="train")
    latents = synth.latent_factors(data)
    videos = list(train)
    out = {}
    for label, eos in (("EOS in the reward (default)", True), ("--no-eos-reward", False)):
        reward = CiderD(train, eos=eos)
        top5 = select_top(train, k=5, cider=reward)
        refs = [top5[v] for v in videos]
        out[label] = {name: float(np.mean(reward.score_refs([latents[v].canonical + tail for v in videos], refs)))
                      for name, tail in TAIL_CANDIDATES}
    return out


# ------------------------------------------------------------------------------------------------
# merging and the table


def _merge(paths: list[Path]) -> dict[str, dict]:
    """per_seed of every result file, merged row by row (qa_learning's "qa_test" / "cider_test" tables too), so
    runs of one seed written by separate processes (e.g. `--runs qa` and `--runs multi`) add up; a later
    file's row replaces an earlier one's."""
    per_seed: dict[str, dict] = {}
    for path in sorted(paths):
        for seed, rows in json.loads(path.read_text())["per_seed"].items():
            target = per_seed.setdefault(seed, {})
            for name, value in rows.items():
                if name in ("qa_test", "cider_test") and isinstance(target.get(name), dict):
                    target[name] = {**target[name], **value}
                else:
                    target[name] = value
    return per_seed


def paired_difference(pairs: list[tuple[float, float]]) -> dict:
    """Per-seed differences b - a of two runs that share each seed (same data, same CE start for SCST variants):
    their ``stats`` plus a verdict, separated when the mean difference is more than twice their standard
    deviation. Seed-to-seed differences that both runs share cancel out, so a paired difference can separate
    where the unpaired one cannot."""
    diff = stats([b - a for a, b in pairs])
    if diff["n"] < 2:
        return {**diff, "verdict": "one seed: no verdict"}
    separated = abs(diff["mean"]) > 2 * diff["std"]
    return {**diff, "verdict": ("higher" if diff["mean"] > 0 else "lower") if separated else "not separated"}


def build_table(run: Path, data: Path, metrics=("BLEU", "ROUGE_L", "CIDEr")) -> dict:
    caption_seeds = _merge(list(run.glob("learning_s*.json")))
    qa_seeds = _merge(list(run.glob("qa_s*.json")))
    caption_names = list(dict.fromkeys(n for rows in caption_seeds.values() for n in rows))
    captions = {n: summarize([rows[n] for rows in caption_seeds.values() if n in rows]) for n in caption_names}
    qa_names = list(dict.fromkeys(n for s in qa_seeds.values() for n in s["qa_test"]))
    qa = {n: summarize([s["qa_test"][n] for s in qa_seeds.values() if n in s["qa_test"]]) for n in qa_names}
    cider_names = list(dict.fromkeys(n for s in qa_seeds.values() for n in s["cider_test"]))
    qa_cider = {n: summarize([{"CIDEr": s["cider_test"][n]} for s in qa_seeds.values() if n in s["cider_test"]])
                for n in cider_names}
    references = reference_rows(data, metrics)
    incentive = tail_incentive(data)

    def leaf(group: dict, row: str, *keys: str):
        value = group.get(row)
        for key in keys:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value if isinstance(value, dict) and "mean" in value else None

    comparisons = []
    groups = {"captions": captions, "qa": qa, "qa_cider": qa_cider}
    per_seed = {  # group -> seed -> row -> that seed's row (paired differences: same seed, same data)
        "captions": caption_seeds,
        "qa": {seed: s["qa_test"] for seed, s in qa_seeds.items()},
        "qa_cider": {seed: {n: {"CIDEr": v} for n, v in s["cider_test"].items()} for seed, s in qa_seeds.items()},
    }

    def seed_value(group: str, seed: str, row: str, keys: tuple[str, ...]):
        value = per_seed[group].get(seed, {}).get(row)
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def compare(choice: str, group_a: str, a: str, group_b: str, b: str, *keys: str):
        la, lb = leaf(groups[group_a], a, *keys), leaf(groups[group_b], b, *keys)
        if la is None or lb is None:
            comparisons.append({"choice": choice, "a": a, "b": b, "metric": "/".join(keys), "verdict": "pending"})
            return
        seeds = sorted(set(per_seed[group_a]) & set(per_seed[group_b]), key=int)
        pairs = [(seed_value(group_a, s, a, keys), seed_value(group_b, s, b, keys)) for s in seeds]
        comparisons.append({"choice": choice, "a": a, "b": b, "metric": "/".join(keys),
                            "a_value": fmt(la), "b_value": fmt(lb), "n": min(la["n"], lb["n"]), **separation(la, lb),
                            "paired": paired_difference([(x, y) for x, y in pairs if x is not None and y is not None])})

    scst = {name: label for name, (label, _) in learning.scst_runs().items()}
    compare("CE beats the most common caption", "captions", "(a) most common training caption", "captions", CE,
            "CIDEr")
    compare("SCST (defaults) after CE", "captions", CE, "captions", SCST_DEFAULT, "CIDEr")
    compare("SCST (defaults) after CE", "captions", CE, "captions", SCST_DEFAULT, "factors", "all")
    for name, metric in (("scst_mean", ("CIDEr",)), ("scst_greedy_noeos", ("CIDEr",)),
                         ("scst_greedy_noeos", ("bad_endings",)), ("scst_full_refs", ("CIDEr",)),
                         ("scst_loss_norm", ("CIDEr",))):
        label = scst.get(name, f"(c) train_scst, {name} (not in this train_scst)")
        compare(f"SCST default vs {label[len('(c) train_scst, '):]}", "captions", SCST_DEFAULT, "captions", label,
                *metric)
    compare("audio used (CE)", "captions", CE, "captions", "(d) train_ce, audio removed", "CIDEr")
    compare("audio used (CE)", "captions", CE, "captions", "(d) train_ce, audio removed", "factors", "sound")
    compare("frame order used (CE captions)", "captions", CE, "captions", "(e) train_ce, frames shuffled", "CIDEr")
    compare("frame order used (CE captions)", "captions", CE, "captions", "(e) train_ce, frames shuffled",
            "factors", "action (reversible)")
    compare("multi-task vs QA only (QA)", "qa", QA_ONLY, "qa", MULTI, "accuracy")
    compare("multi-task vs train_ce (captions)", "captions", CE, "qa_cider", MULTI, "CIDEr")
    compare("frame order used (temporal QA, QA only)", "qa", QA_ONLY, "qa", "QA only, frames shuffled at test time",
            TEMPORAL)
    compare("frame order used (temporal QA, multi-task)", "qa", MULTI, "qa",
            "captions + QA, frames shuffled at test time", TEMPORAL)
    compare("audio used (audio questions, multi-task)", "qa", MULTI, "qa",
            "captions + QA, audio removed at test time", "modality Audio")
    return {"captions": captions, "qa": qa, "qa_cider": qa_cider, "references": references, "tail_incentive": incentive,
            "comparisons": comparisons, "caption_seeds": sorted(caption_seeds, key=int),
            "qa_seeds": sorted(qa_seeds, key=int)}


def markdown(table: dict) -> str:
    columns = [("CIDEr", ("CIDEr",)), ("BLEU-4", ("BLEU-4",)), ("METEOR", ("METEOR",)), ("ROUGE-L", ("ROUGE_L",)),
               ("all factors", ("factors", "all")), ("reversible action", ("factors", "action (reversible)")),
               ("sound", ("factors", "sound")), ("bad endings", ("bad_endings",))]

    def get(row: dict, keys):
        for key in keys:
            row = row.get(key) if isinstance(row, dict) else None
        return row

    rows = list(table["captions"].values())
    columns = [(c, k) for c, k in columns if any(get(row, k) for row in rows)]  # e.g. METEOR when not measured
    lines = ["| row | seeds | " + " | ".join(c for c, _ in columns) + " |", "|---|---|" + "---|" * len(columns)]
    for name, row in table["captions"].items():
        n = get(row, ("CIDEr",))["n"]
        lines.append(f"| {name} | {n} | " + " | ".join(fmt(get(row, k)) for _, k in columns) + " |")
    for name, row in table["references"].items():
        cells = [f"{get(row, k):.3f}" if isinstance(get(row, k), (int, float)) else "" for _, k in columns]
        lines.append(f"| {name} | computed | " + " | ".join(cells) + " |")
    qa_columns = [("QA all", "accuracy"), ("Audio", "modality Audio"), ("Visual", "modality Visual"),
                  ("AV/Temporal", TEMPORAL)]
    lines += ["", "| row | seeds | " + " | ".join(c for c, _ in qa_columns) + " | CIDEr |",
              "|---|---|" + "---|" * (len(qa_columns) + 1)]
    for name, row in table["qa"].items():
        n = row["accuracy"]["n"]
        cider = fmt(table["qa_cider"].get(name, {}).get("CIDEr"))
        lines.append(f"| {name} | {n} | " + " | ".join(fmt(row.get(k)) for _, k in qa_columns) + f" | {cider} |")
    incentive = table.get("tail_incentive") or {}
    if incentive:
        names = [name for name, _ in TAIL_CANDIDATES]
        lines += ["", "| train_scst reward (training videos, top-5 references) | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        for label, row in incentive.items():
            lines.append(f"| {label} | " + " | ".join(f"{row[n]:.3f}" for n in names) + " |")
    lines += ["", "| design choice | metric | a | b | seeds | b - a | 2 x spread | b vs a | paired b - a (per seed) "
              "| paired |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in table["comparisons"]:
        if c["verdict"] == "pending":
            lines.append(f"| {c['choice']} | {c['metric']} | {c['a']} | {c['b']} | | | | pending (not run) | | |")
            continue
        pair = c.get("paired") or {"n": 0, "verdict": ""}
        pair_cell = f"{pair['mean']:+.3f} ± {pair['std']:.3f}" if pair["n"] > 1 else ""
        lines.append(f"| {c['choice']} | {c['metric']} | {c['a_value']} | {c['b_value']} | {c['n']} | "
                     f"{c['difference']:+.3f} | {2 * c['spread']:.3f} | {c['verdict']} | {pair_cell} | "
                     f"{pair['verdict']} |")
    return "\n".join(lines) + "\n"


def _without(argv: list[str], *flags: str) -> list[str]:
    """``argv`` without the given value-taking flags (``--seeds 3`` and ``--seeds=3`` forms)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in flags:
            skip = True
        elif not any(arg.startswith(f + "=") for f in flags):
            out.append(arg)
    return out


def run_seeds_in_parallel(argv: list[str], run: Path, args: argparse.Namespace, jobs: int) -> None:
    """One child ``recipe_table.py --seeds 1 --first-seed S --jobs 1 --no-table`` per seed, ``jobs`` at a time,
    each logging to RUN/logs/seedS.log; exits 1 naming the seeds whose child failed (after the others end)."""
    base = _without(list(argv), "--seeds", "--first-seed", "--jobs")
    logs = run / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def run_seed(seed: int) -> int:
        log = logs / f"seed{seed}.log"
        print(f"seed {seed}: started (log {log})", flush=True)
        began = time.time()
        with open(log, "w") as handle:
            code = subprocess.run([sys.executable, str(Path(__file__).resolve()), *base, "--seeds", "1",
                                   "--first-seed", str(seed), "--jobs", "1", "--no-table"],
                                  stdout=handle, stderr=subprocess.STDOUT).returncode
        state = "done" if code == 0 else f"FAILED (exit {code})"
        print(f"seed {seed}: {state} in {time.time() - began:.0f} s", flush=True)
        return code

    start = time.time()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        codes = list(pool.map(run_seed, seeds))
    print(f"all seeds: {time.time() - start:.0f} s with {jobs} parallel jobs", flush=True)
    failed = [seed for seed, code in zip(seeds, codes) if code]
    if failed:
        sys.exit(f"recipe_table: seed(s) {', '.join(map(str, failed))} failed; see {logs}/seedS.log")


def main(argv=None) -> dict:
    args = parse_args(argv)
    run = Path(args.run)
    data = Path(args.data) if args.data else run / "data"
    jobs = min(args.seeds, args.jobs or os.cpu_count() or 1)
    if not args.table_only:
        learning.ensure_data(data, args.difficulty, args.size)
    if not args.table_only and jobs > 1:
        run_seeds_in_parallel(argv if argv is not None else sys.argv[1:], run, args, jobs)
    elif not args.table_only:
        last = args.first_seed + args.seeds - 1
        tag = f"s{args.first_seed}-{last}"
        seeds = ["--seeds", str(args.seeds), "--first-seed", str(args.first_seed)]
        reuse = ["--reuse"] if args.reuse else []
        scst = [] if args.scst is None else ["--scst", *args.scst]
        learning.main(["--data", str(data), "--run", str(run), "--out", str(run / f"learning_{tag}.json"), *seeds,
                       "--ce-steps", str(args.ce_steps), "--scst-steps", str(args.scst_steps),
                       "--num-threads", str(args.num_threads), "--metrics", *args.metrics, *scst, *reuse])
        if args.qa_runs:
            qa_learning.main(["--data", str(data), "--run", str(run / "qa"), "--out", str(run / f"qa_{tag}.json"),
                              *seeds, "--qa-steps", str(args.qa_steps), "--caption-steps", str(args.ce_steps),
                              "--runs", *args.qa_runs, "--num-threads", str(args.num_threads), *reuse])
    if args.no_table:
        return {}
    table = build_table(run, data, args.metrics)
    atomic_write_json(run / "table.json", table, indent=2)
    text = markdown(table)
    atomic_write_text(run / "table.md", text)
    print(text)
    return table


if __name__ == "__main__":
    main()
