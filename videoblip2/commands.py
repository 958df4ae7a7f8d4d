"""``videoblip2 SUBCOMMAND ...`` (also ``python -m videoblip2 SUBCOMMAND ...``): one console script for every
command. Each subcommand runs its module exactly as ``python -m MODULE ...`` would (same flags, output, exit
status); the module is imported only when its subcommand runs, so ``videoblip2 --help`` and a subcommand's own
``--help`` import no more than that module does, and a missing optional extra is one line, not a traceback."""

from __future__ import annotations

import importlib.util
import runpy
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from ._version import __version__


@dataclass(frozen=True)
class Command:
    module: str  # run as `python -m module`
    summary: str  # one line for `videoblip2 --help`


# subcommand (words joined by a space) -> what it runs
COMMANDS: dict[str, Command] = {
    "features video": Command("videoblip2.features.video", "CLIP frame features of videos (offline extraction job)"),
    "features audio": Command("videoblip2.features.audio", "CLAP audio features of videos (offline extraction job)"),
    "train-ce": Command("videoblip2.train.train_ce", "cross-entropy training (captions, question answering)"),
    "make-top5": Command("videoblip2.train.make_top5", "the SCST reference subset (top-5 captions per video)"),
    "train-scst": Command("videoblip2.train.train_scst", "self-critical (CIDEr-D) training from a cross-entropy model"),
    "evaluate": Command("videoblip2.eval.evaluate", "score predictions: BLEU, METEOR, ROUGE-L, CIDEr (QA: accuracy)"),
    "ablation": Command("videoblip2.eval.ablation", "modality ablation table (no audio, shuffled frames)"),
    "predict": Command("videoblip2.predict", "captions / answers for extracted features"),
    "caption": Command("videoblip2.caption", "captions / answers straight from video files"),
    "synth": Command("videoblip2.synth", "the synthetic benchmark (videos with sound and annotations)"),
    "recipe": Command("videoblip2.recipe", "raw videos -> trained, evaluated, published model (every stage)"),
    "publish": Command("videoblip2.publish", "a trained run -> a Hugging Face Hub model repository"),
    "app": Command("videoblip2.app", "the web demo (upload a video, get its caption)"),
}

# top-level module of an optional dependency -> the extra that installs it
EXTRA_OF_MODULE = {
    "open_clip": "features", "laion_clap": "features", "av": "features", "PIL": "features", "soxr": "features",
    "torchvision": "features", "pycocoevalcap": "eval", "accelerate": "train", "matplotlib": "train", "gradio": "app",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: videoblip2 SUBCOMMAND [ARGS ...]   (also: python -m videoblip2 SUBCOMMAND ...)",
             "", "VideoBLIP2 commands (`videoblip2 SUBCOMMAND --help` for each one's flags):", ""]
    lines += [f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()]
    lines += ["", "  --version" + " " * (width - 7) + "print the version", ""]
    return "\n".join(lines)


def find(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """The subcommand at the start of ``argv`` (one or two words) and the arguments after it."""
    for words in (2, 1):
        name = " ".join(argv[:words])
        if len(argv) >= words and name in COMMANDS:
            return name, list(argv[words:])
    return None


def run(name: str, args: Sequence[str]) -> int:
    """Run subcommand ``name`` as ``python -m MODULE args``; its exit status."""
    command = COMMANDS[name]
    if importlib.util.find_spec(command.module.rsplit(".", 1)[0]) is None or \
            importlib.util.find_spec(command.module) is None:
        print(f"error: videoblip2 {name}: this installation has no module {command.module}", file=sys.stderr)
        return 2
    saved = sys.argv
    sys.argv = [command.module, *args]  # runpy puts the module's file in sys.argv[0], as `python -m` does
    try:
        runpy.run_module(command.module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    except ModuleNotFoundError as error:
        top = (error.name or "").split(".")[0]
        if top not in EXTRA_OF_MODULE:
            raise
        extra = EXTRA_OF_MODULE[top]
        print(f"error: videoblip2 {name} needs the '{extra}' extra (no module named {top!r}): "
              f"pip install \"videoblip2[{extra}]\"", file=sys.stderr)
        return 2
    finally:
        sys.argv = saved
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        print(f"videoblip2 {__version__}")
        return 0
    found = find(argv)
    if found is None:
        words = " ".join(argv[:2]) if argv[0] == "features" else argv[0]
        print(f"error: videoblip2: unknown subcommand {words!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return run(*found)
