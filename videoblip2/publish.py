"""Publish a trained VideoBLIP2 on the Hugging Face Hub, with a model card written from its run.

    python -m videoblip2.publish runs/msrvtt --repo my-lab/videoblip2-msrvtt [--private] [--dataset msr-vtt]
    python -m videoblip2.publish runs/msrvtt --repo my-lab/videoblip2-msrvtt --dry-run hub_folder/

RUN_OR_MODEL_DIR is a recipe run (``python -m videoblip2.recipe --out RUN``), a training run (its best/, else
last/) or a model folder (``save_pretrained``). The repository gets exactly the files
``VideoBLIP2.from_pretrained`` reads (config.json, model.safetensors, t5_tokenizer/, qformer_tokenizer/) and
README.md, the model card (``videoblip2.card``: metadata, usage, recipe, extractors, test metrics, ablation,
limitations); other files in the repository are deleted. ``--dry-run OUT_DIR`` writes that folder and uploads
nothing. Publishing the same run again gives the same files (and no new commit). The token comes from
``HF_TOKEN`` or ``hf auth login`` and is never written anywhere.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

# what from_pretrained reads: files, then whole folders
MODEL_FILES = ("config.json", "model.safetensors")
MODEL_FOLDERS = ("t5_tokenizer", "qformer_tokenizer")
CARD_NAME = "README.md"


def default_datasets(info) -> list[str]:
    """The data sets a run trained on: the recipe's record, else the annotation formats/files of its stages."""
    if info.recipe and info.recipe.get("datasets"):
        return list(info.recipe["datasets"])
    from .annotations import detect_format

    names: list[str] = []
    for stage in info.stages:
        ann, qa = stage.args.get("ann"), stage.args.get("qa_ann")
        fmt = stage.args.get("ann_format") or "auto"
        if ann:
            try:
                name = detect_format(ann) if fmt == "auto" else fmt
            except Exception:  # noqa: BLE001 - a moved file: the name is only a label
                name = Path(ann).stem
            names.append(name)
        if qa:
            names.append(Path(qa).stem)
    return list(dict.fromkeys(names))


def write_folder(source: str | os.PathLike, out: str | os.PathLike, repo_id: str, *,
                 datasets: Sequence[str] | None = None, license: str = "other") -> Path:
    """Write the publishable folder of `source` to `out` (replaced whole; built in a temporary sibling first)."""
    from .card import collect_run, model_card

    info = collect_run(source)
    card = model_card(info, repo_id, datasets=list(datasets or default_datasets(info)), license=license)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fill_folder(tmp, info.model_dir, card)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def fill_folder(folder: Path, model_dir: Path, card: str) -> None:
    """Copy the files from_pretrained needs from `model_dir` into `folder` and write the card."""
    from .modeling import CheckpointError

    for name in MODEL_FILES:
        if not (model_dir / name).is_file():
            raise CheckpointError(f"{model_dir}: missing {name}; is this a VideoBLIP2 save_pretrained directory?")
        shutil.copyfile(model_dir / name, folder / name)
    for name in MODEL_FOLDERS:
        if not (model_dir / name).is_dir():
            raise CheckpointError(f"{model_dir}: missing {name}/; is this a VideoBLIP2 save_pretrained directory?")
        shutil.copytree(model_dir / name, folder / name, copy_function=shutil.copyfile)
    (folder / CARD_NAME).write_text(card, encoding="utf-8")


def publish(source: str | os.PathLike, repo_id: str, *, private: bool = False, dry_run: str | os.PathLike | None = None,
            datasets: Sequence[str] | None = None, license: str = "other", commit_message: str | None = None,
            token: str | bool | None = None) -> str:
    """Upload `source` (or write it to `dry_run`); returns the repository URL or the folder written."""
    from .hub import upload_folder

    if dry_run is not None:
        return str(write_folder(source, dry_run, repo_id, datasets=datasets, license=license))
    with tempfile.TemporaryDirectory(prefix="videoblip2-publish-") as tmp:
        folder = write_folder(source, Path(tmp) / "repo", repo_id, datasets=datasets, license=license)
        return upload_folder(folder, repo_id, private=private, commit_message=commit_message, token=token)


def repo_id_type(text: str) -> str:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Hub repository id: {error}") from None
    if text.count("/") != 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give ORG/NAME (your user or organisation, then the model name)")
    return text


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m videoblip2.publish", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("source", metavar="RUN_OR_MODEL_DIR", help="recipe run, training run or save_pretrained folder")
    p.add_argument("--repo", required=True, type=repo_id_type, help="Hub model repository ORG/NAME (created if needed)")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--dry-run", metavar="OUT_DIR", default=None,
                   help="write the folder that would be uploaded to OUT_DIR (replaced) and upload nothing")
    p.add_argument("--dataset", action="append", default=None, metavar="NAME",
                   help="a data set the model was trained on, for the card (repeatable; default: the recipe's, or "
                        "the training annotations' format)")
    p.add_argument("--license", default="other",
                   help="license id for the card (default: other; the weights derive from Flan-T5 (apache-2.0), "
                        "BLIP-2 and the training data's terms)")
    p.add_argument("--message", default=None, help="commit message")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from .cli import cli

    def run() -> int:
        where = publish(args.source, args.repo, private=args.private, dry_run=args.dry_run, datasets=args.dataset,
                        license=args.license, commit_message=args.message)
        print(f"wrote {where} (dry run: nothing uploaded)" if args.dry_run else f"published {args.source} to {where}")
        return 0

    return cli(run)


if __name__ == "__main__":
    sys.exit(main())
