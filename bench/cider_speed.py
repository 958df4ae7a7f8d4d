"""Fast CIDEr-D (eval.cider.CiderD) against pycocoevalcap's Cider on the same candidates and references.

Synthetic, seeded MSR-VTT-like data: N videos x R reference captions (5-15 words from templates over a
~400-word vocabulary) and one candidate per video (a perturbed reference, a random caption, or a repeated
phrase). The CiderD corpus is exactly these references, so both implementations use the same document
frequencies and the scores must agree.

    python bench/cider_speed.py [--num-videos 10000] [--num-refs 20] [--seed 0] [--out bench_cider.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `python bench/...` from anywhere

from videoblip2.eval.cider import CiderD, tokenize  # noqa: E402
from videoblip2.fileio import atomic_write_json

SUBJECTS = [f"{a} {n}" for a in ("a", "the", "a young", "an old", "a little") for n in (
    "man", "woman", "boy", "girl", "dog", "cat", "person", "chef", "player", "singer", "team", "crowd",
    "baby", "car", "horse", "band", "teacher", "reporter", "student", "couple")]
VERBS = ("is playing", "is cooking", "is singing", "is talking about", "is driving", "is running with",
         "plays", "cooks", "shows", "explains", "is dancing to", "is riding", "is watching", "opens",
         "closes", "is holding", "is throwing", "is eating", "describes", "is fixing")
OBJECTS = [f"{d} {o}" for d in ("a", "the", "some", "a red", "a big") for o in (
    "guitar", "pasta", "song", "game", "ball", "door", "car", "bike", "video", "recipe", "cake", "phone",
    "computer", "dog", "horse", "box", "toy", "map", "book", "movie")]
PLACES = [f"{p} {a} {x}" for p in ("in", "on", "at", "near") for a in ("a", "the") for x in (
    "kitchen", "stage", "street", "park", "field", "room", "studio", "beach", "road", "garden", "house",
    "school", "forest", "pool", "track")]
EXTRA = ("", "", "", "while music plays", "and people cheer", "on tv", "in a cartoon", "for the camera",
         "with friends", "very fast", "and smiles", "at night")


def make_data(num_videos: int, num_refs: int, seed: int) -> tuple[list[list[str]], list[str]]:
    """References (num_videos x num_refs) and one candidate per video, deterministic in ``seed``."""
    rng = random.Random(seed)
    refs, candidates = [], []
    for _ in range(num_videos):
        subject, verb, obj, place = rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(PLACES)
        video_refs = []
        for _ in range(num_refs):  # human-like variation around the video's latent content
            parts = [rng.choice(SUBJECTS) if rng.random() < 0.2 else subject,
                     rng.choice(VERBS) if rng.random() < 0.2 else verb,
                     rng.choice(OBJECTS) if rng.random() < 0.3 else obj]
            if rng.random() < 0.6:
                parts.append(rng.choice(PLACES) if rng.random() < 0.3 else place)
            parts.append(rng.choice(EXTRA))
            video_refs.append(" ".join(p for p in parts if p))
        refs.append(video_refs)
        kind = rng.random()
        if kind < 0.6:
            words = rng.choice(video_refs).split()
            words[rng.randrange(len(words))] = rng.choice(("zebra", "the", "a", "man", "is"))
            candidates.append(" ".join(words))
        elif kind < 0.8:
            candidates.append(" ".join((rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS))))
        elif kind < 0.95:
            candidates.append(" ".join([f"{subject} {verb}"] * rng.randint(2, 4)))
        else:
            candidates.append("")
    return refs, candidates


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-videos", type=int, default=10_000, help="candidates, one per video")
    parser.add_argument("--num-refs", type=int, default=20, help="references per video")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench_cider.json", help="JSON results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    refs, candidates = make_data(args.num_videos, args.num_refs, args.seed)
    # pycocoevalcap's scorer splits on whitespace: give it the same tokens CiderD scores
    refs_tok = {i: [" ".join(tokenize(r)) for r in rs] for i, rs in enumerate(refs)}
    cands_tok = {i: [" ".join(tokenize(c))] for i, c in enumerate(candidates)}

    from pycocoevalcap.cider.cider import Cider

    print(f"pycocoevalcap Cider on {args.num_videos} candidates x {args.num_refs} references ...", flush=True)
    start = time.perf_counter()
    _, reference = Cider().compute_score(refs_tok, cands_tok)
    reference_s = time.perf_counter() - start

    start = time.perf_counter()
    cider = CiderD(refs)  # document frequencies once over the corpus (= these references)
    init_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = cider.score(candidates, list(range(len(candidates))))
    score_s = time.perf_counter() - start
    batch = min(1000, len(candidates))  # an SCST-sized call: e.g. 200 videos x 5 samples
    start = time.perf_counter()
    cider.score(candidates[:batch], list(range(batch)))
    batch_s = time.perf_counter() - start

    result = {
        "num_candidates": args.num_videos,
        "num_refs": args.num_refs,
        "seed": args.seed,
        "pycocoevalcap_s": reference_s,
        "ciderd_init_s": init_s,
        "ciderd_score_s": score_s,
        "ciderd_score_1000_s": batch_s,
        "speedup_score": reference_s / score_s,
        "speedup_init_plus_score": reference_s / (init_s + score_s),
        "max_abs_diff": float(np.max(np.abs(ours - np.asarray(reference)))),
        "mean_cider": float(np.mean(ours)),
        "device": f"CPU ({platform.processor() or platform.machine()}), {os.cpu_count()} cores",
    }
    rows = [
        ("pycocoevalcap Cider (df over the refs + score)", f"{reference_s:.2f} s"),
        ("CiderD init (df + reference vectors, once)", f"{init_s:.2f} s"),
        (f"CiderD score {args.num_videos} candidates", f"{score_s:.3f} s"),
        (f"CiderD score {batch} candidates", f"{batch_s * 1000:.1f} ms"),
        ("speed-up, scoring", f"{result['speedup_score']:.0f}x"),
        ("speed-up, init + scoring", f"{result['speedup_init_plus_score']:.0f}x"),
        ("max |CiderD - pycocoevalcap|", f"{result['max_abs_diff']:.2e}"),
        ("mean CIDEr-D", f"{result['mean_cider']:.4f}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    atomic_write_json(args.out, result, indent=2)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
