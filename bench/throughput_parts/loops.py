"""The timed loops of bench/throughput.py: CE and SCST steps, the agreement checks, one implementation's
timings, the data path and the profiler tables."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.throughput_parts.models import ReferenceVideoBLIP2, Size, make_optimizer, model_inputs, repeat_inputs
from bench.throughput_parts.timing import PeakMemory, Stopwatch, synchronize, timed_method, tqdm_range
from videoblip2.eval.cider import CiderD
from videoblip2.train.scst import scst_advantages, scst_loss
from videoblip2.config import VideoBLIP2Config
from videoblip2.data import CaptionDataset, FeatureStore, index_batches, lengths_to_mask
from videoblip2.modeling import VideoBLIP2, caption_token_mask

def ce_step(forward: Callable, batch: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
            amp: Callable) -> torch.Tensor:
    with amp():
        loss = forward(**model_inputs(batch), labels=batch["labels"]).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def scst_step(impl: str, model: nn.Module, batch: dict[str, torch.Tensor], video_ids: list[int],
              optimizer: torch.optim.Optimizer, cider: CiderD, num_samples: int, max_new_tokens: int,
              amp: Callable, watch: Stopwatch, static_cache: bool = False) -> dict[str, float]:
    """One SCST step (greedy baseline), times split into generate / logprob_forward / reward / backward."""
    k = num_samples
    eos = model.t5_tokenizer.eos_token_id
    model.eval()  # as train.train_scst: no dropout while sampling and in the log-prob pass
    if impl == "ours":
        with watch.part("sample_with_logprobs"), timed_method(model.t5, "generate", watch, "generate"), amp():
            extra = {"cache_implementation": "static"} if static_cache else {}
            out = model.sample_with_logprobs(**model_inputs(batch), num_samples=k, include_greedy=True,
                                             max_new_tokens=max_new_tokens, **extra)
        samples, greedy, logprobs = out.captions, out.greedy_captions, out.logprobs
        sample_len = float(out.token_mask.sum(dim=1).mean())
    else:
        with watch.part("generate"), amp():
            greedy_ids = model.generate(**model_inputs(batch), num_beams=1, do_sample=False,
                                        max_new_tokens=max_new_tokens)
            sample_ids = model.generate(**model_inputs(batch), do_sample=True, top_k=0, top_p=1.0,
                                        num_return_sequences=k, max_new_tokens=max_new_tokens)
        decode = model.t5_tokenizer.batch_decode
        greedy = [s.strip() for s in decode(greedy_ids, skip_special_tokens=True)]
        samples = [s.strip() for s in decode(sample_ids, skip_special_tokens=True)]
        with watch.part("logprob_forward"), amp():
            logprobs, mask = reference_logprobs(model, repeat_inputs(batch, k), sample_ids[:, 1:], eos)
        sample_len = float(mask.sum(dim=1).mean())
    with watch.part("reward"):
        rewards = torch.as_tensor(cider.score(samples, [v for v in video_ids for _ in range(k)]),
                                  dtype=torch.float32).view(len(video_ids), k)
        greedy_rewards = torch.as_tensor(cider.score(greedy, video_ids), dtype=torch.float32)
        advantages = scst_advantages(rewards, "greedy", greedy_rewards).flatten().to(logprobs.device)
    with watch.part("backward"):
        loss = scst_loss(logprobs, advantages)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {"sample_len": sample_len, "reward_mean": float(rewards.mean())}


def reference_logprobs(model: ReferenceVideoBLIP2, inputs: dict[str, torch.Tensor], sequences: torch.Tensor,
                       eos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed token log-probs of `sequences` (N, L) (no decoder start token), teacher-forced, with grad."""
    mask = caption_token_mask(sequences, eos)
    out = model(**inputs, labels=sequences.masked_fill(mask == 0, -100))
    token_logp = F.log_softmax(out.logits.float(), dim=-1).gather(-1, sequences.unsqueeze(-1)).squeeze(-1)
    return (token_logp * mask).sum(dim=1), mask


def generate_ids(impl: str, model: nn.Module, batch: dict[str, torch.Tensor], num_beams: int, max_new_tokens: int,
                 static_cache: bool) -> torch.Tensor:
    if impl == "ours":
        extra = {"cache_implementation": "static"} if static_cache else {}
        return model.generate(**model_inputs(batch), num_beams=num_beams, max_new_tokens=max_new_tokens,
                              return_ids=True, **extra)[1]
    return model.generate(**model_inputs(batch), num_beams=num_beams, do_sample=False,
                          max_new_tokens=max_new_tokens)


def mean_length(ids: torch.Tensor, eos: int) -> float:
    """Generated tokens per caption up to and including EOS (the decoder start token not counted)."""
    return float(caption_token_mask(ids[:, 1:], eos).sum(dim=1).mean())


# ------------------------------------------------------------------------------------------ phases
def run_checks(ours: VideoBLIP2, reference: ReferenceVideoBLIP2, batch: dict[str, torch.Tensor],
               args: argparse.Namespace, amp: Callable, device: torch.device) -> dict[str, Any]:
    """Same weights, same batch, eval mode: loss, greedy / beam-3 ids, SCST log-probs of ours' samples."""
    ours.eval()
    reference.eval()
    eos = ours.t5_tokenizer.eos_token_id
    n = args.caption_len
    with torch.no_grad(), amp():
        loss_ours = float(ours(**model_inputs(batch), labels=batch["labels"]).loss)
        loss_ref = float(reference(**model_inputs(batch), labels=batch["labels"]).loss)
        ids = {impl: {beams: generate_ids(impl, model, batch, beams, n, args.static_cache).cpu()
                      for beams in (1, 3)}
               for impl, model in (("ours", ours), ("reference", reference))}
        torch.manual_seed(args.seed)
        sampled = ours.sample_with_logprobs(**model_inputs(batch), num_samples=args.num_samples,
                                            include_greedy=True, max_new_tokens=n)
        ref_logprobs, _ = reference_logprobs(reference, repeat_inputs(batch, args.num_samples), sampled.sequences,
                                             eos)
    logprob_diff = (sampled.logprobs.float() - ref_logprobs.float()).abs()
    tol = 1e-2 if device.type == "cuda" else 1e-5
    greedy_rows = [torch.equal(a, b) for a, b in zip(ids["ours"][1], ids["reference"][1])]
    same_greedy_shape = ids["ours"][1].shape == ids["reference"][1].shape
    return {
        "tolerance_rel": tol,
        "loss_reference": loss_ref,
        "loss_ours": loss_ours,
        "loss_abs_diff": abs(loss_ours - loss_ref),
        "loss_match": abs(loss_ours - loss_ref) <= tol * abs(loss_ref),
        "greedy_identical": same_greedy_shape and all(greedy_rows),
        "greedy_match_fraction": float(np.mean(greedy_rows)) if same_greedy_shape else 0.0,
        "greedy_mean_len": mean_length(ids["ours"][1], eos),
        "greedy_distinct": len({tuple(r) for r in ids["ours"][1].tolist()}),
        "beam3_identical": torch.equal(ids["ours"][3], ids["reference"][3]),
        "greedy_ours_captions_match_sample_greedy": sampled.greedy_captions == ours._decode(ids["ours"][1]),
        "scst_logprob_max_abs_diff": float(logprob_diff.max()),
        "scst_logprob_match": bool((logprob_diff <= tol * ref_logprobs.abs().float().clamp_min(1.0)).all()),
        "scst_sample_mean_len": float(sampled.token_mask.sum(dim=1).mean()),
        "check_batch_size": batch["video"].shape[0],
    }


def bench_impl(impl: str, model: nn.Module, ce_batches: list[dict], scst_batch: dict, gen_batch: dict,
               cider: CiderD, args: argparse.Namespace, device: torch.device, amp: Callable,
               train_flops: float, peak_rate: float, check_batch: dict | None = None) -> dict[str, Any]:
    """CE training, SCST step and generation timings of one implementation.

    With --compile, ours' compiled forward first computes the eval loss of `check_batch` (result["ce"]
    ["compiled_eval_loss"]), on the weights the checks saw, to compare with the reference's loss.
    """
    eos = model.t5_tokenizer.eos_token_id
    optimizer = make_optimizer(model, impl, device)
    forward = torch.compile(model) if (impl == "ours" and args.compile) else model
    result: dict[str, Any] = {}
    compiled_eval_loss = None
    if forward is not model and check_batch is not None:  # before any step changes the weights
        model.eval()
        with torch.no_grad(), amp():
            compiled_eval_loss = float(forward(**model_inputs(check_batch), labels=check_batch["labels"]).loss)

    # 1. cross-entropy training
    model.train()
    batch_size = ce_batches[0]["video"].shape[0]
    with PeakMemory(device) as memory:
        for i in range(args.warmup):
            ce_step(forward, ce_batches[i % len(ce_batches)], optimizer, amp)
        times = []
        for i in tqdm_range(args.steps, f"{impl}: CE training"):
            synchronize(device)
            start = time.perf_counter()
            loss = ce_step(forward, ce_batches[i % len(ce_batches)], optimizer, amp)
            synchronize(device)
            times.append(time.perf_counter() - start)
    step_s = float(np.median(times))
    result["ce"] = {"batch_size": batch_size, "step_s_median": step_s, "step_s_all": times,
                    "samples_per_s": batch_size / step_s, "mfu": batch_size / step_s * train_flops / peak_rate,
                    "last_loss": float(loss), **memory.result()}
    if compiled_eval_loss is not None:
        result["ce"]["compiled_eval_loss"] = compiled_eval_loss

    # 2. SCST
    video_ids = list(range(scst_batch["video"].shape[0]))
    optimizer.zero_grad(set_to_none=True)
    with PeakMemory(device) as memory:
        for _ in range(min(args.warmup, 1)):
            scst_step(impl, model, scst_batch, video_ids, optimizer, cider, args.num_samples, args.caption_len,
                      amp, Stopwatch(device), args.static_cache)
        # Throughput from whole steps with no synchronisation inside: work the step overlaps (the CPU reward
        # while the GPU runs the queued log-prob pass) counts as it would in training. The split comes from
        # separate steps synchronised at every part boundary.
        whole, per_step, extra = [], [], []
        for _ in tqdm_range(args.steps, f"{impl}: SCST"):
            synchronize(device)
            start = time.perf_counter()
            extra.append(scst_step(impl, model, scst_batch, video_ids, optimizer, cider, args.num_samples,
                                   args.caption_len, amp, Stopwatch(device, enabled=False), args.static_cache))
            synchronize(device)
            whole.append(time.perf_counter() - start)
        for _ in tqdm_range(args.steps, f"{impl}: SCST, split"):
            watch = Stopwatch(device)
            scst_step(impl, model, scst_batch, video_ids, optimizer, cider, args.num_samples, args.caption_len,
                      amp, watch, args.static_cache)
            parts = dict(watch.parts)
            if impl == "ours":  # sample_with_logprobs = generate (timed inside it) + encode and log-prob forward
                parts["logprob_forward"] = parts.pop("sample_with_logprobs") - parts.get("generate", 0.0)
            per_step.append(parts)
    split = {name: float(np.median([p.get(name, 0.0) for p in per_step]))
             for name in ("generate", "logprob_forward", "reward", "backward")}
    step_s = float(np.median(whole))
    result["scst"] = {"videos": len(video_ids), "num_samples": args.num_samples, "step_s_median": step_s,
                      "step_s_split_median": float(np.median([sum(p.values()) for p in per_step])),
                      "videos_per_s": len(video_ids) / step_s, **{f"{name}_s": v for name, v in split.items()},
                      "sample_mean_len": float(np.mean([e["sample_len"] for e in extra])),
                      **memory.result()}

    # 3. generation
    model.eval()
    gen = {"batch_size": gen_batch["video"].shape[0]}
    with torch.no_grad(), amp():
        for beams, name in ((1, "greedy"), (3, "beam3")):
            ids = generate_ids(impl, model, gen_batch, beams, args.caption_len, args.static_cache)  # warm-up
            times = []
            for _ in tqdm_range(args.steps, f"{impl}: generate {name}"):
                synchronize(device)
                start = time.perf_counter()
                ids = generate_ids(impl, model, gen_batch, beams, args.caption_len, args.static_cache)
                synchronize(device)
                times.append(time.perf_counter() - start)
            gen[f"{name}_s_median"] = float(np.median(times))
            gen[f"{name}_captions_per_s"] = gen["batch_size"] / float(np.median(times))
            gen[f"{name}_mean_len"] = mean_length(ids, eos)
    result["generate"] = gen
    del optimizer
    return result



def in_memory_store(num_videos: int, spec: Size, config: VideoBLIP2Config, seed: int) -> FeatureStore:
    """A preloaded FeatureStore filled in memory: float16 features, every frame, 8-16 windows, 10% silent."""
    store = FeatureStore("<in-memory>", [], max_frames=spec.frames, max_audio_windows=spec.audio_windows,
                         video_dim=config.video_dim, audio_dim=config.audio_dim, preload=True)
    g = torch.Generator().manual_seed(seed)
    video = torch.empty(num_videos, spec.frames, config.video_dim, dtype=torch.float16)
    audio = torch.empty(num_videos, spec.audio_windows, config.audio_dim, dtype=torch.float16)
    for start in range(0, num_videos, 1000):  # chunks: no float32 copy of the whole store
        stop = min(start + 1000, num_videos)
        video[start:stop] = torch.randn(stop - start, spec.frames, config.video_dim, generator=g)
        audio[start:stop] = torch.randn(stop - start, spec.audio_windows, config.audio_dim, generator=g)
    audio_len = torch.randint(max(1, spec.audio_windows // 2), spec.audio_windows + 1, (num_videos,), generator=g)
    audio_len[torch.rand(num_videos, generator=g) < 0.1] = 0
    store.video_ids = [f"video{i}" for i in range(num_videos)]
    store.index = {v: i for i, v in enumerate(store.video_ids)}
    store.video, store.audio = video, audio * (audio_len > 0).view(-1, 1, 1).to(audio.dtype)
    store.video_lengths = torch.full((num_videos,), spec.frames, dtype=torch.long)
    store.audio_lengths = audio_len
    store.video_mask = lengths_to_mask(store.video_lengths, spec.frames)
    store.audio_mask = lengths_to_mask(store.audio_lengths, spec.audio_windows)
    store.has_audio = audio_len > 0
    store.no_audio = [v for v, sound in zip(store.video_ids, store.has_audio.tolist()) if not sound]
    return store


def bench_data(refs: list[list[str]], spec: Size, config: VideoBLIP2Config, tokenizer, args: argparse.Namespace,
               device: torch.device) -> dict[str, Any]:
    """CaptionDataset.batch() from a preloaded MSR-VTT-sized store (on the training device)."""
    start = time.perf_counter()
    store = in_memory_store(len(refs), spec, config, args.seed).to(device)
    build_store_s = time.perf_counter() - start
    start = time.perf_counter()
    dataset = CaptionDataset(store, {f"video{i}": r for i, r in enumerate(refs)}, tokenizer, config.max_caption_len)
    tokenize_s = time.perf_counter() - start
    batch_size = min(args.ours_batch_size, len(dataset))
    batches = index_batches(len(dataset), batch_size, shuffle=True, seed=args.seed, drop_last=True)
    dataset.batch(next(batches))  # labels move to the device on the first batch
    times = []
    for _, indices in zip(range(args.data_batches), batches):
        synchronize(device)
        start = time.perf_counter()
        dataset.batch(indices)  # float16 store -> float32 batch on the device
        synchronize(device)
        times.append(time.perf_counter() - start)
    feature_bytes = store.video.numel() * 2 + store.audio.numel() * 2
    return {"num_videos": len(refs), "num_captions": len(dataset), "batch_size": batch_size,
            "store_gb": feature_bytes / 2**30, "build_store_s": build_store_s, "tokenize_captions_s": tokenize_s,
            "batch_ms_median": 1000 * float(np.median(times)), "batches_timed": len(times)}


def profile_steps(impl: str, model: nn.Module, ce_batch: dict, scst_batch: dict, cider: CiderD,
                  args: argparse.Namespace, device: torch.device, amp: Callable, out_dir: Path) -> list[str]:
    """torch.profiler tables (top ops by self time) of one CE step and one SCST step, written to out_dir."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sort = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    optimizer = make_optimizer(model, impl, device)
    video_ids = list(range(scst_batch["video"].shape[0]))

    def one_ce_step() -> None:
        model.train()
        ce_step(model, ce_batch, optimizer, amp)

    def one_scst_step() -> None:
        scst_step(impl, model, scst_batch, video_ids, optimizer, cider, args.num_samples, args.caption_len, amp,
                  Stopwatch(device), args.static_cache)

    written = []
    for name, run in (("ce", one_ce_step), ("scst", one_scst_step)):
        run()  # warm: the optimizer state exists before the profiled step
        with profile(activities=activities, record_shapes=True) as prof:
            run()
            synchronize(device)
        table = prof.key_averages().table(sort_by=sort, row_limit=30, max_name_column_width=60)
        shapes = prof.key_averages(group_by_input_shape=True).table(sort_by=sort, row_limit=20,
                                                                    max_name_column_width=50)
        path = out_dir / f"profile_{impl}_{name}.txt"
        path.write_text(f"{impl} {name} step, {args.size} size, {device.type}\n\n{table}\n\nby input shape\n\n"
                        f"{shapes}\n")
        if args.trace:
            prof.export_chrome_trace(str(out_dir / f"trace_{impl}_{name}.json"))
        written.append(str(path))
    return written
