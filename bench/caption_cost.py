"""What captioning raw videos costs (issue 28): N questions about one video, and loading a saved model.

Two measurements, each a ratio inside one run (median of --repeats, interleaved):

  questions  one video, N questions. `new` = caption_videos(question=[q1..qN]) (one extraction, N generations);
             its budget = one extract_video + N single-question generate_from_features, timed apart; `old` =
             the pre-issue way, one caption_videos call per question (N extractions). Checks new <= 1.1 x budget.
  load       a saved real-size VideoBLIP2 (flan-t5-base architecture + two BERT-base Q-Formers, random weights):
             `read` = safetensors.load_file of its weights, every tensor read into memory (cloned); `new` = VideoBLIP2.from_pretrained; `old` = the
             same with the random init done first (videoblip2.noinit.skip_init disabled). Checks new <= 2 x read.

Real-size VideoBLIP2 and (with --real-extractors, the default) ViT-L-14 + HTSAT-tiny with random weights: nothing
is downloaded. `--frames` sets max_frames (32 in the recipe; fewer keeps a CPU run short, the ratios do not need 32).

    python bench/caption_cost.py --frames 8 --questions 3 --out bench/caption_cost.json
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `python bench/...` from anywhere

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import videoblip2.modeling as modeling  # noqa: E402
from bench.extract_speed import make_videos  # noqa: E402
from videoblip2.caption import caption_videos, extract_video, generate_from_features  # noqa: E402
from videoblip2.config import FLAN_T5_BASE_ARCHITECTURE, T5Config, VideoBLIP2Config  # noqa: E402
from videoblip2.decoding import DecodingOptions  # noqa: E402
from videoblip2.extract import load_clap, load_clip  # noqa: E402
from videoblip2.fileio import atomic_write_json  # noqa: E402
from videoblip2.tiny import DEFAULT_CORPUS, bert_style_tokenizer, t5_style_tokenizer  # noqa: E402

QUESTIONS = ["What is happening in the video?", "Is there a dog?", "What sound is heard?", "Where is it?",
             "How many people are there?", "Is it indoors?", "What colour is the square?", "Is music playing?"]


def real_size_model(max_frames: int) -> modeling.VideoBLIP2:
    """bench/param_count.py's model: default config, flan-t5-base architecture, tiny tokenizers (offline)."""
    config = VideoBLIP2Config(t5=T5Config(architecture=dict(FLAN_T5_BASE_ARCHITECTURE)), max_frames=max_frames)
    return modeling.VideoBLIP2(config, t5_tokenizer=t5_style_tokenizer(DEFAULT_CORPUS),
                               qformer_tokenizer=bert_style_tokenizer(DEFAULT_CORPUS)).eval()


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bench_questions(args, model, clip, clap, video: Path) -> dict:
    questions = QUESTIONS[: args.questions]
    decoding = DecodingOptions(num_beams=args.num_beams, max_new_tokens=args.max_new_tokens)
    window = dict(window_s=args.window, hop_s=args.hop)
    kw = dict(clip=clip, clap=clap, decoding=decoding, **window)
    config = model.config
    runs: dict[str, list[float]] = {"extract": [], "generate": [], "budget": [], "new": [], "old": []}
    for r in range(args.repeats):
        t_extract, features = timed(lambda: extract_video(video, clip, clap, max_frames=config.max_frames,
                                                          max_audio_windows=config.max_audio_windows, **window))
        t_generate = sum(timed(lambda q=q: generate_from_features(model, [features], question=q,
                                                                  decoding=decoding))[0] for q in questions)
        t_new, new = timed(lambda: caption_videos([video], model, question=questions, **kw))
        t_old, old = timed(lambda: [caption_videos([video], model, question=q, **kw)[0] for q in questions])
        assert [e["answer"] for e in new] == [e["answer"] for e in old], "the answers differ"
        for key, value in (("extract", t_extract), ("generate", t_generate), ("budget", t_extract + t_generate),
                           ("new", t_new), ("old", t_old)):
            runs[key].append(value)
        print(f"  round {r}: extract {t_extract:.2f} s, {len(questions)} generations {t_generate:.2f} s, "
              f"caption_videos(question=list) {t_new:.2f} s, per-question calls {t_old:.2f} s", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {"questions": len(questions), "frames": config.max_frames, "num_beams": args.num_beams,
            "seconds": med, "rounds": runs, "new_over_budget": med["new"] / med["budget"],
            "old_over_new": med["old"] / med["new"], "pass": med["new"] <= 1.1 * med["budget"]}


def bench_load(args, path: Path) -> dict:
    weights = path / modeling.WEIGHTS_NAME
    size_gb = weights.stat().st_size / 1e9
    load_file(str(weights))  # page cache warm for every variant

    def old_way():
        with _without_skip_init():
            return modeling.VideoBLIP2.from_pretrained(path)

    def read():  # load_file maps the file; cloning reads every tensor into memory of its own, as loading must
        return {k: v.clone() for k, v in load_file(str(weights)).items()}

    variants = {"read": read, "new": lambda: modeling.VideoBLIP2.from_pretrained(path),
                "old": old_way}
    runs: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.repeats):
        for name, fn in variants.items():  # interleaved: the machine's load drifts alike for all three
            gc.collect()
            seconds, out = timed(fn)
            runs[name].append(seconds)
            del out
        print(f"  round {r}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in runs.items()), flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {"weights_gb": size_gb, "seconds": med, "rounds": runs,
            "new_over_read": med["new"] / med["read"], "old_over_new": med["old"] / med["new"],
            "pass": med["new"] <= 2 * med["read"]}


@contextlib.contextmanager
def _without_skip_init():
    """The pre-issue from_pretrained: every module randomly initialised before the checkpoint overwrites it."""
    saved = modeling.skip_init
    modeling.skip_init = contextlib.nullcontext
    try:
        yield
    finally:
        modeling.skip_init = saved


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="the model's max_frames (frames through CLIP)")
    parser.add_argument("--questions", type=int, default=3, choices=range(1, len(QUESTIONS) + 1))
    parser.add_argument("--num-beams", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="video length")
    parser.add_argument("--skip", choices=("questions", "load"), action="append", default=[])
    parser.add_argument("--tiny-extractors", action="store_true",
                        help="tests/media.py's tiny random CLIP/CLAP instead of ViT-L-14 + HTSAT-tiny")
    parser.add_argument("--window", type=float, default=None, help="audio window, s (default 5, tiny CLAP 1)")
    parser.add_argument("--hop", type=float, default=None, help="audio hop, s (default 2.5, tiny CLAP 0.5)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    tiny_clap = args.tiny_extractors  # its 2 s input takes windows of at most 2 s
    args.window = args.window if args.window is not None else (1.0 if tiny_clap else 5.0)
    args.hop = args.hop if args.hop is not None else (0.5 if tiny_clap else 2.5)
    torch.manual_seed(0)
    result: dict = {"device": f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} "
                              f"torch threads", "argv": sys.argv[1:] if argv is None else argv}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seconds, model = timed(lambda: real_size_model(args.frames))
        print(f"real-size model built (random init) in {seconds:.1f} s", flush=True)
        if "questions" not in args.skip:
            if args.tiny_extractors:
                sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
                from media import tiny_extractor_files

                files = tiny_extractor_files(work / "extractors")
                clip = load_clip(files["clip_config"], files["clip_ckpt"], device="cpu")
                clap = load_clap(files["clap_config"], files["clap_ckpt"], device="cpu")
            else:
                clip = load_clip("ViT-L-14", None, device="cpu")
                clap = load_clap("HTSAT-tiny", None, device="cpu")
            [video] = make_videos(work, 1, args.seconds, size=(640, 360))
            print(f"questions: 1 video of {args.seconds:g} s, {args.questions} questions", flush=True)
            result["questions"] = bench_questions(args, model, clip, clap, video)
            print({k: v for k, v in result["questions"].items() if k != "rounds"}, flush=True)
            del clip, clap
        if "load" not in args.skip:
            print("load:", flush=True)
            model.save_pretrained(work / "model")
            del model  # only the loaded copies in memory from here on
            gc.collect()
            result["load"] = bench_load(args, work / "model")
            print({k: v for k, v in result["load"].items() if k != "rounds"}, flush=True)
    if args.out:
        atomic_write_json(args.out, result, indent=2)
    return result


if __name__ == "__main__":
    main()
