"""Reference numbers of the synthetic audio-visual QA benchmark (``avqa-test.json`` of ``videoblip2.synth``):
what each input is worth, per question type, scored by ``python -m eval.evaluate`` (``eval.qa``).

Answer sets for the test questions:

* ``majority (test, per type)``: ``eval.qa``'s baseline, the most frequent answer of each question type;
* ``question-only prior (train)``: the most frequent *training* answer of each exact question text (the best a
  model can do that reads the question and ignores the video: 1/2 on the temporal questions);
* ``factor reference, audio-blind``: the true factors with the sound unknown (as if there were no audio);
* ``factor reference, time-blind``: the true factors with every time-reversed action read forward
  ("close" -> "open"): a perfect model that ignores frame order;
* ``factor reference``: ``synth.answer_from_latents`` on the true factors (must be 1.0).

    python bench/synth_qa_reference.py [--size default | --num-videos N] [--seed 0] [--out bench_synth_qa.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `python bench/...` from anywhere

from videoblip2.eval.evaluate import main as evaluate  # noqa: E402
from videoblip2 import synth  # noqa: E402
from videoblip2.annotations import load_qa_annotations, save_qa_predictions  # noqa: E402
from videoblip2.fileio import atomic_write_json


def blind(latent: synth.Latent, variant: str) -> dict:
    fields = {"subject": latent.subject, "place": latent.place, "action": latent.action, "sound": latent.sound}
    if variant == "time-blind":
        fields["action"] = synth.forward_action(latent.action)[0]
    elif variant == "audio-blind":
        fields["sound"] = None
    return fields


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--size", choices=list(synth.SIZES), default="default")
    sizes.add_argument("--num-videos", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench_synth_qa.json", help="JSON results")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synth"
        summary = synth.generate(data, seed=args.seed, size=args.size, num_videos=args.num_videos, progress=False)
        latents = synth.latent_factors(data)
        train = load_qa_annotations(data / "avqa-train.json")
        test = load_qa_annotations(data / "avqa-test.json")
        by_question = defaultdict(Counter)
        for item in train:
            by_question[item.question][item.answer] += 1
        overall = Counter(item.answer for item in train).most_common(1)[0][0]

        def prior(item):
            counts = by_question.get(item.question)
            return counts.most_common(1)[0][0] if counts else overall

        def audio_blind(item):
            if item.question == "What sound can be heard?":
                return prior(item)
            return synth.answer_from_latents(item.question, blind(latents[item.video_id], "audio-blind"))

        answer_sets = {
            "question-only prior (train)": prior,
            "factor reference, audio-blind": audio_blind,
            "factor reference, time-blind": (
                lambda item: synth.answer_from_latents(item.question, blind(latents[item.video_id], "time-blind"))),
            "factor reference": lambda item: synth.answer_from_latents(item.question, latents[item.video_id]),
        }
        results = {}
        for name, answer in answer_sets.items():
            preds = Path(tmp) / f"{name}.json"
            save_qa_predictions([{"question_id": i.question_id, "video_id": i.video_id, "question": i.question,
                                  "answer": answer(i)} for i in test], preds)
            print(f"== {name}")
            results[name] = evaluate(["--predictions", str(preds), "--ann", str(data / "avqa-test.json"),
                                      "--out", str(Path(tmp) / f"{name}.metrics.json")])
            print()

    reference = results["factor reference"]
    types = list(reference["per_type"])
    rows = {"majority (test, per type)": {t: reference["per_type"][t]["majority_baseline"] for t in types}
            | {"all": reference["majority_baseline_per_type"]}}
    rows |= {name: {t: r["per_type"][t]["accuracy"] for t in types} | {"all": r["accuracy"]}
             for name, r in results.items()}
    width = max(len(n) for n in rows)
    print(f"{'accuracy on avqa-test.json':<{width}}" + "".join(f"{t:>24}" for t in types) + f"{'all':>8}")
    print(f"{'(questions)':<{width}}" + "".join(f"{reference['per_type'][t]['count']:>24}" for t in types)
          + f"{reference['num_questions']:>8}")
    for name, row in rows.items():
        print(f"{name:<{width}}" + "".join(f"{row[t]:>24.3f}" for t in types) + f"{row['all']:>8.3f}")
    result = {
        "benchmark": "synth_qa_reference",
        "size": args.size if args.num_videos is None else f"{args.num_videos} videos",
        "seed": args.seed,
        "splits": summary.splits,
        "num_questions": {"train": len(train), "test": len(test), "all": summary.num_questions},
        "majority_baseline_overall": reference["majority_baseline"],
        "accuracy": rows,
        "device": f"CPU ({os.cpu_count()} cores visible), {platform.processor() or platform.machine()}",
    }
    atomic_write_json(args.out, result, indent=2)
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
