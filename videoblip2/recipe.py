"""From raw videos to a published model in one command: extraction, training, evaluation, model card, upload.

    python -m videoblip2.recipe --videos msrvtt/videos --ann msrvtt/train_val_test_videodatainfo.json \\
        --clip-pretrained /models/ViT-L-14-openai.safetensors --clap-pretrained /models/630k-audioset-best.pt \\
        --video-args "--quick-gelu" --ce-args "--bert bert-base-uncased --blip2 /models/blip2_flant5xl.pth" \\
        --out runs/msrvtt --push my-lab/videoblip2-msrvtt

Stages, in order (each one is the project's own command, run in this process with the flags shown):

    video     python -m features.video VIDEOS --out RUN/features            CLIP frame features
    audio     python -m features.audio VIDEOS --out RUN/features            CLAP audio features
    train_ce  python -m train.train_ce --out RUN/ce                         cross-entropy (captions [+ --qa-ann])
    top5      python -m train.make_top5 --out RUN/train_top5_detail.json    SCST reference subset
    scst      python -m train.train_scst --model RUN/ce --out RUN/scst      self-critical training
    predict   python -m videoblip2.predict --out FINAL/test_predictions.json  (+ test_answers.json)
    evaluate  python -m eval.evaluate --out FINAL/test_metrics.json            (+ test_qa_metrics.json)
    ablation  python -m eval.ablation --out FINAL/ablation.json               modality ablation table
    card      videoblip2.publish --dry-run RUN/hub                            the folder to upload + model card
    push      videoblip2.hub.upload_folder(RUN/hub, ORG/NAME)                only with --push

FINAL is RUN/scst (RUN/ce with --skip-scst). Every stage takes extra flags as one quoted string,
``--STAGE-args "..."`` (e.g. ``--ce-args "--epochs 10 --lr 1e-4"``), appended after the recipe's own so they
win; ``--predict-args`` also go to the ablation (same decoding, so its "full" column is the test result).
A stage is skipped when RUN/recipe.json records it finished with the same flags and its output is there, so a
killed run continues where it stopped (training stages resume from their state/); once a stage runs, every
later one runs too. Changed flags of a finished extraction or training stage are an error (use another
--out, or ``--redo STAGE``, which runs that stage, training from scratch, and every later one again);
other stages just run again with the new flags. At the end a table lists every stage with its time and result.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fileio import atomic_write_json

RECIPE_FILE = "recipe.json"
# stages whose output folder carries state a re-run would resume from or mix with: changed flags are an error
STATEFUL = ("video", "audio", "train_ce", "scst")
STAGES = ("video", "audio", "train_ce", "top5", "scst", "predict", "evaluate", "ablation", "card", "push")
FLAG_STAGES = {"video": "video", "audio": "audio", "train_ce": "ce", "top5": "top5", "scst": "scst",
               "predict": "predict", "evaluate": "eval", "ablation": "ablation"}  # --X-args of each stage


class RecipeError(RuntimeError):
    """A recipe stage that cannot run or failed; the message names it and what to do."""


@dataclass
class Stage:
    """One step: the command it runs (module + argv), what it leaves behind, and how to summarise it."""

    name: str
    module: str
    argv: list[str]
    outputs: list[Path]
    summarise: Callable[[Any], str] = lambda result: ""
    call: Callable[[], Any] | None = None  # instead of module.main(argv)
    result: str = ""
    status: str = "pending"
    seconds: float | None = None
    planned: list[str] = field(default_factory=list)  # argv as planned: what a finished stage is compared by

    def __post_init__(self) -> None:
        self.planned = list(self.argv)

    @property
    def command(self) -> str:
        if self.call is not None:
            return f"{self.module}({', '.join(self.argv)})"
        return f"python -m {self.module} {shlex.join(self.argv)}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from .annotations import add_ann_format_argument

    p = argparse.ArgumentParser(prog="python -m videoblip2.recipe", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    data = p.add_argument_group("data")
    data.add_argument("--videos", required=True, help="folder of the video files (searched recursively; id = file name "
                                                      "without extension)")
    data.add_argument("--ann", required=True, help="captions (any format videoblip2.annotations reads); its train / "
                                                   "validate / test splits when it has them (MSR-VTT)")
    add_ann_format_argument(data)
    data.add_argument("--test-ann", default=None, help="test captions (default: the --test-split of --ann)")
    data.add_argument("--test-split", default="test", help="split of --ann (or --test-ann) to test on")
    data.add_argument("--qa-ann", default=None, help="training questions: train captions and questions together")
    data.add_argument("--qa-val-ann", default=None, help="validation questions")
    data.add_argument("--qa-test-ann", default=None, help="test questions (answered and scored by accuracy)")
    extract = p.add_argument_group("feature extractors")
    extract.add_argument("--clip-model", default="ViT-L-14", help="open_clip architecture or model-config .json")
    extract.add_argument("--clip-pretrained", default="openai", help="open_clip tag or local checkpoint file")
    extract.add_argument("--clap-model", default="HTSAT-tiny", help="laion_clap audio config or a .json")
    extract.add_argument("--clap-pretrained", required=True, help="local LAION CLAP checkpoint (630k-audioset-best.pt)")
    run = p.add_argument_group("run")
    run.add_argument("--out", required=True, help="run folder (features/, ce/, scst/, hub/, recipe.json)")
    run.add_argument("--skip-scst", action="store_true", help="stop after cross-entropy (FINAL = RUN/ce)")
    run.add_argument("--skip-ablation", action="store_true", help="no modality ablation table")
    run.add_argument("--redo", choices=STAGES, default=None,
                     help="run this stage and every later one again (training from scratch; the extractors skip "
                          "videos already extracted: delete RUN/features to extract again)")
    hub = p.add_argument_group("publishing")
    hub.add_argument("--push", metavar="ORG/NAME", default=None, help="upload the model and its card to this Hub repo")
    hub.add_argument("--private", action="store_true", help="--push into a private repository")
    hub.add_argument("--dataset", action="append", default=None, help="data set name(s) for the card")
    hub.add_argument("--license", default="other", help="license id for the card (default: other)")
    flags = p.add_argument_group("flags of the stages (one quoted string each, appended to the recipe's own)")
    for name in dict.fromkeys(FLAG_STAGES.values()):
        flags.add_argument(f"--{name}-args", default="", metavar='"FLAGS"')
    args = p.parse_args(_join_stage_flags(sys.argv[1:] if argv is None else list(argv)))
    for name in dict.fromkeys(FLAG_STAGES.values()):
        try:
            setattr(args, f"{name}_args", shlex.split(getattr(args, f"{name}_args")))
        except ValueError as error:
            p.error(f"--{name}-args: {error}")
    if args.push:
        from .publish import repo_id_type

        try:
            repo_id_type(args.push)
        except argparse.ArgumentTypeError as error:
            p.error(f"--push: {error}")
    if args.private and not args.push:
        p.error("--private is for --push")
    return args


def _join_stage_flags(argv: list[str]) -> list[str]:
    """``--ce-args "--lr 1e-4"`` -> ``--ce-args=--lr 1e-4``: argparse would take a value starting with -- for a flag."""
    names = {f"--{name}-args" for name in FLAG_STAGES.values()}
    out, i = [], 0
    while i < len(argv):
        if argv[i] in names and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _count(folder: Path, pattern: str) -> int:
    return sum(1 for _ in folder.glob(pattern))


def _training_result(summary: dict) -> str:
    metric = summary.get("best_metric")
    best = summary.get(f"best_{metric}") if metric else None
    return f"{summary.get('step')} steps" + (f", best {metric} {best:.4f} (step {summary.get('best_step')})"
                                             if isinstance(best, (int, float)) else "")


def _model_dir(run: Path) -> Path:
    return run / "best" if (run / "best" / "config.json").is_file() else run / "last"


def plan(args: argparse.Namespace) -> tuple[list[Stage], dict[str, Any]]:
    """Every stage of this run with its command line; and the manifest fields (recipe.json)."""
    out = Path(args.out)
    features = out / "features"
    final = out / ("ce" if args.skip_scst else "scst")
    test_ann = args.test_ann or args.ann
    ann = ["--ann", args.ann, "--ann-format", args.ann_format]
    test = ["--ann", test_ann, "--split", args.test_split]
    if args.test_ann is None:
        test += ["--ann-format", args.ann_format]
    qa = ["--qa-ann", args.qa_ann] if args.qa_ann else []
    qa += ["--qa-val-ann", args.qa_val_ann] if args.qa_val_ann else []
    top5 = out / "train_top5_detail.json"
    stages = [
        Stage("video", "videoblip2.features.video",
              [args.videos, "--out", str(features), "--clip-model", args.clip_model,
               "--clip-pretrained", args.clip_pretrained, *args.video_args],
              [features / "video"], lambda rc: f"{_count(features / 'video', '*.npy')} videos"),
        Stage("audio", "videoblip2.features.audio",
              [args.videos, "--out", str(features), "--clap-model", args.clap_model,
               "--clap-pretrained", args.clap_pretrained, *args.audio_args],
              [features / "audio"], lambda rc: f"{_count(features / 'audio', '*.npy')} with sound, "
                                               f"{_count(features / 'audio', '*.noaudio.json')} without"),
        Stage("train_ce", "videoblip2.train.train_ce",
              ["--features", str(features), *ann, *qa, "--out", str(out / "ce"), *args.ce_args],
              [out / "ce" / "last" / "config.json"], _training_result),
    ]
    if not args.skip_scst:
        stages += [
            Stage("top5", "videoblip2.train.make_top5", [*ann, "--out", str(top5), *args.top5_args], [top5],
                  lambda top: f"{sum(map(len, top.values()))} captions of {len(top)} videos"),
            Stage("scst", "videoblip2.train.train_scst",
                  ["--model", str(out / "ce"), "--features", str(features), *ann,
                   "--top5", str(top5), "--out", str(out / "scst"), *args.scst_args],
                  [out / "scst" / "last" / "config.json"], _training_result),
        ]
    # the model the last stages read: best/ when the run validated, else last/ (known once training ran)
    model = str(final / "best")
    predict = [Stage("predict", "videoblip2.predict", ["--model", model, "--features", str(features), *test,
                                                       "--out", str(final / "test_predictions.json"),
                                                       *args.predict_args],
                     [final / "test_predictions.json"], lambda captions: f"{len(captions)} captions")]
    evaluate = [Stage("evaluate", "videoblip2.eval.evaluate",
                      ["--predictions", str(final / "test_predictions.json"), *test,
                       "--out", str(final / "test_metrics.json"), *args.eval_args],
                      [final / "test_metrics.json"],
                      lambda r: ", ".join(f"{k} {v:.4f}" for k, v in r["metrics"].items() if k in ("CIDEr", "BLEU-4")))]
    if args.qa_test_ann:
        qa_test = ["--ann", args.qa_test_ann]
        predict.append(Stage("predict", "videoblip2.predict", ["--model", model, "--features", str(features), *qa_test,
                                                               "--out", str(final / "test_answers.json"),
                                                               *args.predict_args],
                             [final / "test_answers.json"], lambda answers: f"{len(answers)} answers"))
        evaluate.append(Stage("evaluate", "videoblip2.eval.evaluate",
                              ["--predictions", str(final / "test_answers.json"), *qa_test,
                               "--out", str(final / "test_qa_metrics.json"), *args.eval_args],
                              [final / "test_qa_metrics.json"], lambda r: f"QA accuracy {r['accuracy']:.4f}"))
    stages += predict + evaluate
    if not args.skip_ablation:
        stages.append(Stage("ablation", "videoblip2.eval.ablation",
                            ["--model", model, "--features", str(features), *test,
                             "--out", str(final / "ablation.json"), *args.predict_args, *args.ablation_args],
                            [final / "ablation.json"], _ablation_result))
    repo_id = args.push or f"your-org/{out.resolve().name}"
    card = ["--repo", repo_id, "--dry-run", str(out / "hub"), "--license", args.license]
    card += [f for name in args.dataset or [] for f in ("--dataset", name)]
    stages.append(Stage("card", "videoblip2.publish", [str(out), *card], [out / "hub" / "README.md"],
                        lambda rc: f"{sum(p.is_file() for p in (out / 'hub').rglob('*'))} files in {out / 'hub'}, "
                                   f"card for {repo_id}"))
    if args.push:
        from .hub import upload_folder

        push = Stage("push", "videoblip2.hub.upload_folder", [str(out / "hub"), args.push]
                     + (["private=True"] if args.private else []), [], lambda url: str(url))
        push.call = lambda: upload_folder(out / "hub", args.push, private=args.private,
                                          commit_message=f"Upload {out.resolve().name} (videoblip2.recipe)")
        stages.append(push)
    command = _without_redo(sys.argv[1:] if getattr(args, "command", None) is None else args.command)
    manifest = {"command": "python -m videoblip2.recipe " + shlex.join(command),
                "model_run": final.name, "datasets": args.dataset or None}
    return stages, manifest


def _without_redo(argv: list[str]) -> list[str]:
    """The command line as the card shows it: --redo only says which stages this invocation repeated."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--redo":
            skip = True
        elif not arg.startswith("--redo="):
            out.append(arg)
    return out


def _ablation_result(report: dict) -> str:
    from .eval.ablation import LABELS

    cider = {LABELS[c]: r["metrics"].get("CIDEr") for c, r in report["conditions"].items()}
    return "CIDEr " + ", ".join(f"{name} {value:.4f}" for name, value in cider.items() if value is not None)


def _key(stage: Stage, stages: list[Stage]) -> str:
    """Stages of the same name (predict for captions, then answers) are told apart by their position."""
    same = [s for s in stages if s.name == stage.name]
    return stage.name if len(same) == 1 else f"{stage.name}#{same.index(stage)}"


def run_stage(stage: Stage) -> Any:
    """The stage's command in this process; a failure becomes one RecipeError line."""
    from .cli import user_errors

    try:
        if stage.call is not None:
            return stage.call()
        result = importlib.import_module(stage.module).main(stage.argv)
    except SystemExit as exit_:  # argparse errors (message printed above) or a command's own exit
        if exit_.code in (0, None):
            return None
        raise RecipeError(f"stage {stage.name} stopped (exit {exit_.code}, see above): {stage.command}") from None
    except user_errors() + _stage_errors() as error:
        raise RecipeError(f"stage {stage.name}: {type(error).__name__}: {error}") from None
    if isinstance(result, int) and result != 0:  # features.* exit status: 1 = some videos failed
        raise RecipeError(f"stage {stage.name} failed for some videos (exit {result}; failures.jsonl in its --out "
                          "says which): fix or remove them and run the recipe again")
    return result


def _stage_errors() -> tuple[type[BaseException], ...]:
    from .eval.evaluate import EvaluationError
    from .train.errors import TrainingError

    return (EvaluationError, TrainingError)


def format_table(stages: list[Stage]) -> str:
    rows = [(s.name, s.status, "" if s.seconds is None else f"{s.seconds:.1f}", s.result) for s in stages]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(("stage", "status", "seconds", "result"))]
    line = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    return "\n".join([line.format("stage", "status", "seconds", "result"),
                      line.format(*("-" * w for w in widths))] + [line.format(*r) for r in rows])


def recipe(args: argparse.Namespace) -> list[Stage]:
    """Run (or skip) every stage; returns them with status, seconds and result. Writes RUN/recipe.json."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / RECIPE_FILE
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    done: dict[str, Any] = state.get("stages", {})
    stages, manifest = plan(args)
    keys = [_key(s, stages) for s in stages]
    if args.redo:
        first = STAGES.index(args.redo)
        for stage, key in zip(stages, keys):
            if STAGES.index(stage.name) >= first:
                done.pop(key, None)
                if stage.name in ("train_ce", "scst"):
                    stage.argv.append("--overwrite")
    for stage, key in zip(stages, keys):
        record = done.get(key)
        if record and record["argv"] != stage.planned and stage.name in STATEFUL:
            raise RecipeError(f"stage {stage.name} finished earlier with other flags ({shlex.join(record['argv'])}); "
                              f"run it again with --redo {stage.name}, or use another --out")

    def save() -> None:
        atomic_write_json(state_path, {**manifest, "stages": done}, indent=2)

    try:
        ran = False  # once a stage runs, every later one runs too: its inputs may have changed
        for number, (stage, key) in enumerate(zip(stages, keys), 1):
            record = done.get(key)
            if (not ran and record and record["argv"] == stage.planned
                    and all(p.exists() for p in stage.outputs)):
                stage.status, stage.seconds, stage.result = "skipped", record["seconds"], record["result"]
                continue
            ran = True
            for name, model in (("predict", "--model"), ("ablation", "--model")):
                if stage.name == name:  # best/ when training validated, else last/
                    i = stage.argv.index(model) + 1
                    stage.argv[i] = str(_model_dir(Path(stage.argv[i]).parent))
            print(f"== [{number}/{len(stages)}] {stage.name}: {stage.command}", flush=True)
            stage.status = "running"
            start = time.perf_counter()
            result = run_stage(stage)
            stage.seconds = time.perf_counter() - start
            stage.status, stage.result = "ran", stage.summarise(result)
            done[key] = {"argv": stage.planned, "command": stage.command, "seconds": round(stage.seconds, 1),
                         "result": stage.result}
            save()
    except BaseException:
        for stage in stages:
            if stage.status == "running":
                stage.status = "failed"
        print(format_table(stages), file=sys.stderr, flush=True)
        raise
    save()
    print(format_table(stages), flush=True)
    return stages


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.command = list(argv) if argv is not None else None
    from .cli import cli

    cli(lambda: recipe(args), extra=(RecipeError,))
    return 0


if __name__ == "__main__":
    sys.exit(main())
