"""Build the SCST reference subset `train_top5_detail.json`: the 5 best captions of every training video.

    python -m train.make_top5 --ann data/msrvtt/train_val_videodatainfo.json --out runs/train_top5_detail.json

Ranking (`--by consensus`, the default): each caption's CIDEr-D against the *other* captions of its video,
with document frequencies over the whole training corpus: a caption that agrees with what most annotators
wrote ranks high, an idiosyncratic or wrong one low. The CIDEr-D is the SCST reward's own (eval.cider.CiderD
with the end of sentence as a word, `eos=True`, as train_scst scores samples; `--no-eos` matches
`train_scst --no-eos-reward`), so the subset is ranked by the measure it then rewards against.

One difference remains between the recipe's CIDEr-D and the evaluation's: the reward and this ranking
tokenise with `videoblip2.annotations.normalize_caption` + whitespace (lowercase, trailing periods dropped,
inner punctuation kept), `eval.coco` with the PTB tokenizer (punctuation removed, "man's" -> "man 's"). On
MSR-VTT-style captions (lowercase words, no inner punctuation) both give the same tokens; a caption with a
comma or possessive gets different n-grams. Kept: the reward runs on every sample of every step and the
PTB tokenizer is a Java process. Ties (scores equal to 1e-9) go to
the longer caption (more words), then to file order. `--by length`: longest first, ties in file order.
A caption written identically twice for the same video is kept once. Videos with fewer than 5 distinct
captions keep them all.

Output: a JSON list of {"video_id", "caption"} records, videos in annotation order, captions best first
(videoblip2.annotations.load_annotations reads it; train_scst takes it as `--refs top5 --top5 FILE`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from eval.cider import CiderD, tokenize
from videoblip2.annotations import add_ann_format_argument
from videoblip2.cli import ArgumentParser, positive_int
from videoblip2.fileio import atomic_write_json

OUTPUT_NAME = "train_top5_detail.json"
TIE_TOLERANCE = 1e-9


def consensus_scores(annotations: Mapping[str, Sequence[str]], cider: CiderD | None = None) -> dict[str, np.ndarray]:
    """CIDEr-D of every caption against the other captions of its video (leave-one-out).

    Document frequencies: `cider`'s corpus (default: `annotations` itself). Computed from two fast calls:
    a caption's CIDEr-D against all R references of its video is the mean of R per-reference terms, one of
    which is the caption against itself, so the leave-one-out score is
    ``(R * score_all - score_self) / (R - 1)``; 0 for a video with a single caption.

    Returns:
        {video_id: (R,) float64 scores, in caption order}.
    """
    cider = cider or CiderD(annotations)
    video_ids = list(annotations)
    captions = [c for v in video_ids for c in annotations[v]]
    owners = [v for v in video_ids for _ in annotations[v]]
    score_all = cider.score(captions, owners)
    score_self = cider.score_refs(captions, [[c] for c in captions])
    out, start = {}, 0
    for video_id in video_ids:
        r = len(annotations[video_id])
        both, own = score_all[start:start + r], score_self[start:start + r]
        out[video_id] = (r * both - own) / (r - 1) if r > 1 else np.zeros(r)
        start += r
    return out


def rank_captions(captions: Sequence[str], scores: Sequence[float] | None, by: str = "consensus") -> list[int]:
    """Caption indices best first. consensus: score, then more words, then file order; length: words, file order."""
    words = [len(tokenize(c)) for c in captions]
    if by == "length":
        return sorted(range(len(captions)), key=lambda i: (-words[i], i))
    if by != "consensus":
        raise ValueError(f"unknown ranking {by!r}; choose consensus or length")
    if scores is None:
        raise ValueError("consensus ranking needs scores")
    rounded = [round(float(s) / TIE_TOLERANCE) for s in scores]
    return sorted(range(len(captions)), key=lambda i: (-rounded[i], -words[i], i))


def select_top(annotations: Mapping[str, Sequence[str]], k: int = 5, by: str = "consensus",
               cider: CiderD | None = None, eos: bool = True) -> dict[str, list[str]]:
    """{video_id: its k best distinct captions, best first}.

    Consensus scores use `cider` (train_scst passes its reward), else CiderD(annotations, eos=eos): the reward's
    CIDEr-D, the end of sentence scored as a word unless `eos=False`.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if by == "consensus" and cider is None:
        cider = CiderD(annotations, eos=eos)
    scores = consensus_scores(annotations, cider) if by == "consensus" else {}
    top: dict[str, list[str]] = {}
    for video_id, captions in annotations.items():
        chosen: list[str] = []
        for i in rank_captions(captions, scores.get(video_id), by):
            if captions[i] not in chosen:
                chosen.append(captions[i])
            if len(chosen) == k:
                break
        top[video_id] = chosen
    return top


def write_records(top: Mapping[str, Sequence[str]], path: str | os.PathLike) -> None:
    records = [{"video_id": v, "caption": c} for v, captions in top.items() for c in captions]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, records, ensure_ascii=False)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m train.make_top5", description=__doc__.split("\n")[0])
    parser.add_argument("--ann", required=True,
                        help="training captions: official MSR-VTT JSON (its --split), list of records or mapping")
    parser.add_argument("--split", default="train", help="split of an --ann with splits (default: train)")
    add_ann_format_argument(parser)
    parser.add_argument("--out", required=True,
                        help=f"output JSON file, or a directory to write {OUTPUT_NAME} into")
    parser.add_argument("--by", choices=("consensus", "length"), default="consensus")
    parser.add_argument("--k", type=positive_int, default=5, help="captions kept per video")
    parser.add_argument("--no-eos", dest="eos", action="store_false",
                        help="rank without the end of sentence as a word (for train_scst --no-eos-reward)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Write the subset; returns {video_id: [captions best first]}."""
    args = parse_args(argv)
    from train.data import load_split

    annotations = load_split(args.ann, args.split, args.ann_format)
    top = select_top(annotations, k=args.k, by=args.by, eos=args.eos)
    out = Path(args.out)
    if out.is_dir() or out.suffix.lower() != ".json":
        out = out / OUTPUT_NAME
    write_records(top, out)
    kept = sum(len(c) for c in top.values())
    total = sum(len(c) for c in annotations.values())
    print(f"{out}: {kept} of {total} captions of {len(top)} videos (top {args.k} by {args.by})")
    return top


if __name__ == "__main__":
    from train.launch import cli

    cli(main)
