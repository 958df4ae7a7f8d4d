"""Question answering speed: per-sample prompts in a CE step, and closed-vocabulary answer scoring.

Two ratios, each measured inside one process (alternating rounds, so machine load hits both alike):

1. CE step (forward + backward + AdamW) with the caption path's one fixed prompt (`prompt=None`: tokenized
   once, cached, expanded) against per-sample pre-tokenized prompts (`PromptTokens`, B different prompts of
   the same token length on both sides, as QADataset hands them over). Target: within 5%.
2. Scoring A candidate answers for B videos: `VideoBLIP2.score_candidates` (each video encoded once, its
   candidates packed into one decoder pass) against the naive loop that runs one teacher-forced forward per
   answer over the B videos (every (video, answer) pair encoded). Expected: >= A/2 (bench/NOTES.md, E9).

Before timing, checks: the per-sample path with every prompt equal to the fixed one gives the same loss, and
both scorers give the same log-likelihoods (within 1e-4); otherwise the script stops.

    python bench/qa_speed.py --size small --threads 1 --out qa_speed.json     # ~3 min on a shared CPU
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `python bench/...`

import numpy as np
import torch

from bench.throughput import (
    PROMPT,
    SIZES,
    BenchmarkError,
    amp_factory,
    build_models,
    caption_words,
    make_optimizer,
    model_inputs,
    optimise_ours,
    random_batch,
    synchronize,
    torch_threads,
)
from videoblip2.data import PromptTokens, tokenize_captions


def same_length_prompts(model, batch_size: int, seed: int) -> PromptTokens:
    """B different prompts with the fixed prompt's token count on both sides (one word = one token here)."""
    fixed = model.tokenize_prompts([PROMPT])
    words = [w for w in caption_words() if w.isalpha()]
    n_words = len(PROMPT.split())
    rng = np.random.default_rng(seed)
    prompts = [" ".join(rng.choice(words, size=n_words - 1)) + " " + PROMPT.split()[-1] for _ in range(batch_size)]
    tokens = model.tokenize_prompts(prompts)
    for side, (got, want) in {"qformer": (tokens.qformer_mask, fixed.qformer_mask),
                              "t5": (tokens.t5_mask, fixed.t5_mask)}.items():
        if got.shape[1] != want.shape[1] or not bool(got.all()):
            raise BenchmarkError(f"the per-sample prompts are not all {want.shape[1]} {side} tokens long")
    if len(set(prompts)) < batch_size:
        raise BenchmarkError("the per-sample prompts are not all different")
    return tokens


def ce_step(model, batch: dict, prompt, optimizer, amp) -> torch.Tensor:
    with amp():
        loss = model(**model_inputs(batch), labels=batch["labels"], prompt=prompt).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


@torch.no_grad()
def naive_scores(model, batch: dict, prompt: PromptTokens, candidates: list[list[int]], amp) -> torch.Tensor:
    """(B, A) log-likelihoods, one teacher-forced forward (encoder included) per candidate."""
    columns = []
    for ids in candidates:
        labels = torch.tensor([ids] * batch["video"].shape[0], device=batch["video"].device)
        with amp():
            logits = model(**model_inputs(batch), labels=labels, prompt=prompt, return_loss=False).logits
        logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        columns.append(logp.sum(dim=1))
    return torch.stack(columns, dim=1)


def answer_candidates(model, count: int) -> list[list[int]]:
    """`count` distinct answers of one or two words (MUSIC-AVQA's are: "yes", "two", "acoustic guitar")."""
    words = [w for w in caption_words() if w.isalpha()]
    answers = words[: count - count // 4] + [f"{a} {b}" for a, b in zip(words[::2], words[1::2])][: count // 4]
    if len(set(answers)) != count:
        raise BenchmarkError(f"not enough benchmark words for {count} distinct answers")
    return tokenize_captions(answers, model.t5_tokenizer, model.config.max_caption_len)


def timed(fn, rounds_times: list[float], repeats: int, device) -> None:
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    rounds_times.append((time.perf_counter() - started) / repeats)


def run(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda but torch.cuda.is_available() is False; use --device cpu")
    spec = SIZES[args.size]
    amp = amp_factory(device)
    model, _ = build_models(args.size, args.seed, with_reference=False)
    model.to(device)
    optimise_ours(model, device)
    config, eos = model.config, model.t5_tokenizer.eos_token_id
    batch = random_batch(args.batch_size, spec, config, spec.t5["vocab_size"], eos, args.seed + 10, device)
    per_sample = same_length_prompts(model, args.batch_size, args.seed).to(device)
    fixed_rows = model.tokenize_prompts([PROMPT] * args.batch_size).to(device)

    # checks: the per-sample path with the fixed prompt in every row is the fixed path; both scorers agree
    model.eval()
    with torch.no_grad(), amp():
        loss_fixed = model(**model_inputs(batch), labels=batch["labels"]).loss.item()
        loss_rows = model(**model_inputs(batch), labels=batch["labels"], prompt=fixed_rows).loss.item()
    if abs(loss_fixed - loss_rows) > 1e-5 * abs(loss_fixed):
        raise BenchmarkError(f"per-sample prompts equal to the fixed one change the loss: {loss_rows} != {loss_fixed}")
    candidates = answer_candidates(model, args.answers)
    score_batch = {k: v[: args.score_videos] for k, v in batch.items()}
    score_prompt = PromptTokens(*(x[: args.score_videos] for x in per_sample))
    with amp():
        ours = model.score_candidates(**model_inputs(score_batch), prompt=score_prompt, candidates=candidates)
    naive = naive_scores(model, score_batch, score_prompt, candidates, amp)
    score_diff = float((ours - naive).abs().max())
    tol = 1e-4 if device.type == "cpu" else 5e-2
    if score_diff > tol:
        raise BenchmarkError(f"score_candidates differs from the naive loop by {score_diff}")

    # 1. CE step: fixed prompt vs per-sample prompts of the same length
    model.train()
    optimizer = make_optimizer(model, "ours", device)
    for _ in range(args.warmup if "ce" in args.parts else 0):
        ce_step(model, batch, None, optimizer, amp)
        ce_step(model, batch, per_sample, optimizer, amp)
    ce_times: dict[str, list[float]] = {"fixed_prompt": [], "per_sample_prompts": []}
    for round_ in range(args.rounds if "ce" in args.parts else 0):
        timed(lambda: ce_step(model, batch, None, optimizer, amp), ce_times["fixed_prompt"], args.steps, device)
        timed(lambda: ce_step(model, batch, per_sample, optimizer, amp), ce_times["per_sample_prompts"],
              args.steps, device)
        print(f"CE round {round_ + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in ce_times.items()),
              flush=True)

    # 2. closed-vocabulary scoring: packed (ours) vs one forward per answer (naive)
    model.eval()
    score_times: dict[str, list[float]] = {"score_candidates": [], "naive_per_answer": []}
    with torch.no_grad():
        for round_ in range(args.rounds if "score" in args.parts else 0):
            timed(lambda: model.score_candidates(**model_inputs(score_batch), prompt=score_prompt,
                                                 candidates=candidates), score_times["score_candidates"], 1, device)
            timed(lambda: naive_scores(model, score_batch, score_prompt, candidates, amp),
                  score_times["naive_per_answer"], 1, device)
            print(f"scoring round {round_ + 1}/{args.rounds}: "
                  + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in score_times.items()), flush=True)

    ce_median = {k: statistics.median(v) if v else float("nan") for k, v in ce_times.items()}
    score_median = {k: statistics.median(v) if v else float("nan") for k, v in score_times.items()}
    result = {
        "config": {"size": args.size, "device": args.device, "batch_size": args.batch_size,
                   "score_videos": args.score_videos, "answers": args.answers, "steps": args.steps,
                   "rounds": args.rounds, "threads": torch.get_num_threads(), "parts": args.parts,
                   "prompt_tokens": {"qformer": int(per_sample.qformer_ids.shape[1]),
                                     "t5": int(per_sample.t5_ids.shape[1])},
                   "answer_tokens": [len(c) for c in candidates],
                   "date": datetime.date.today().isoformat(), "torch": torch.__version__,
                   "command": "python bench/qa_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])},
        "checks": {"loss_fixed": loss_fixed, "loss_per_sample_rows_of_the_fixed_prompt": loss_rows,
                   "score_max_abs_diff": score_diff},
        "ce_step_s_all": ce_times,
        "ce_step_s_median": ce_median,
        "ce_samples_per_s": {k: args.batch_size / v for k, v in ce_median.items()},
        "ce_per_sample_over_fixed_samples_per_s": ce_median["fixed_prompt"] / ce_median["per_sample_prompts"],
        "score_s_all": score_times,
        "score_s_median": score_median,
        "score_speedup": score_median["naive_per_answer"] / score_median["score_candidates"],
        "score_speedup_half_answers": args.answers / 2,
    }
    print(f"CE samples/s: fixed prompt {result['ce_samples_per_s']['fixed_prompt']:.2f}, per-sample prompts "
          f"{result['ce_samples_per_s']['per_sample_prompts']:.2f} -> ratio "
          f"{result['ce_per_sample_over_fixed_samples_per_s']:.3f}")
    print(f"scoring {args.answers} answers x {args.score_videos} videos: score_candidates "
          f"{score_median['score_candidates']:.3f} s, naive {score_median['naive_per_answer']:.3f} s -> "
          f"{result['score_speedup']:.1f}x (A/2 = {args.answers / 2:g})")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.out}")
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch-size", type=int, default=8, help="CE batch")
    parser.add_argument("--score-videos", type=int, default=8, help="B: videos per scoring call")
    parser.add_argument("--answers", type=int, default=42, help="A: candidate answers (MUSIC-AVQA has 42)")
    parser.add_argument("--steps", type=int, default=2, help="CE steps per configuration per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed CE steps of each kind first")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--parts", nargs="+", choices=("ce", "score"), default=["ce", "score"],
                        help="what to time (both by default; the checks run always)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the result JSON here")
    args = parser.parse_args(argv)
    if args.score_videos > args.batch_size:
        parser.error("--score-videos must be at most --batch-size")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with torch_threads(args.threads):
        return run(args, argv)


if __name__ == "__main__":
    try:
        main()
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
