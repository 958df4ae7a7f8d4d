"""Throughput of VideoBLIP2 against a straightforward reference: CE training, SCST, generation, data.

Two implementations of the same architecture run on the same weights (the reference's state dict is copied
from ours) and the same batches:

* reference: what a user writes first. The two InstructBLIP Q-Formers and the peft-LoRA Flan-T5 glued
  from the stock `transformers` / `peft` classes (`ReferenceVideoBLIP2` below): fp32 weights, bf16
  autocast on CUDA, plain `torch.optim.AdamW`, the prompt tokenized on every call, SCST written with
  `generate` twice (greedy, then K samples) and a teacher-forced pass over the K copies of each video.
* ours: `videoblip2.modeling.VideoBLIP2` as it is (`sample_with_logprobs` encodes each video once for
  its K samples), plus what changes no result: on CUDA the frozen T5 linear weights stored in bf16
  (autocast casts them to bf16 anyway), fused AdamW; optional `--compile` (torch.compile of the training
  forward) and `--static-cache` (static KV cache for `generate` and SCST sampling).

Checks (eval mode, same weights, same batch): the CE loss of both equal within tolerance (fp32 on CPU:
1e-5 relative, bf16 on CUDA: 1e-2), greedy and beam-3 token ids identical, and the reference's
teacher-forced log-probs of ours' SCST samples equal to the log-probs `sample_with_logprobs` returned.

Measures, for both, and the ratio ours / reference:

* CE training samples/s (forward + backward + AdamW step, train mode), peak memory
  (`torch.cuda.max_memory_allocated` on CUDA, the process' peak RSS on CPU) and MFU (`flops_per_sample`
  below x samples/s over a measured matmul rate: bf16 on CUDA, fp32 on CPU);
* SCST step videos/s: K samples + greedy, `--caption-len` new tokens, CIDEr-D reward on CPU
  (`eval.cider.CiderD` over an MSR-VTT-sized synthetic corpus), greedy-baseline policy gradient, AdamW;
  timed as whole steps (no synchronisation inside, so whatever the step overlaps counts), and split into
  generation, log-prob forward (with grad), reward, backward + step from separately synchronised steps;
* generation captions/s, greedy and beam-3;
* data: `CaptionDataset.batch()` from a preloaded `FeatureStore` of `--data-videos` x
  `--captions-per-video` (MSR-VTT size by default: 10,000 videos, 200,000 captions; float16 features built
  in memory) against ours' training step time.

Sizes (random weights, nothing downloaded): `real` is flan-t5-base's architecture
(`videoblip2.config.FLAN_T5_BASE_ARCHITECTURE`, lm_head untied as in the checkpoint) with the default
`QFormerConfig` (BERT-base, 12 layers, cross-attention every 2nd, 32 queries, encoder width 1408) and LoRA
r=16 on q, v; 32 frames x 768, 16 audio windows x 512, a 12-token T5 prompt, 20-token captions. `small`
(hidden 256, 4 layers, same sequence lengths and vocabulary) fits a CPU; `tiny` is for the tests.

    python bench/throughput.py --size real --device cuda --out bench_throughput.json
    python bench/throughput.py --size real --device cuda --batch-size 512 --compile --static-cache
    python bench/throughput.py --size small --device cpu --batch-size 8 --steps 3 --profile bench_profile
    python bench/throughput.py --size real --device cpu --flops-only      # check the FLOP count
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `python bench/...`

import torch  # noqa: E402
import transformers  # noqa: E402

# The parts (bench/throughput_parts/), re-exported here: bench/activation_memory.py, checkpointing_cost.py and
# qa_speed.py import them from bench.throughput.
from bench.cider_speed import make_data  # noqa: E402
from bench.throughput_parts.flops import counted_flops, flops_per_sample, matmul_rate  # noqa: E402,F401
from bench.throughput_parts.loops import (  # noqa: E402,F401
    bench_data,
    bench_impl,
    ce_step,
    generate_ids,
    in_memory_store,
    mean_length,
    profile_steps,
    reference_logprobs,
    run_checks,
    scst_step,
)
from bench.throughput_parts.models import (  # noqa: E402,F401
    DEFAULT_BATCH,
    IMPLEMENTATIONS,
    PROMPT,
    SIZES,
    BenchmarkError,
    ReferenceVideoBLIP2,
    Size,
    build_models,
    caption_words,
    make_optimizer,
    model_inputs,
    optimise_ours,
    random_batch,
    random_t5,
    repeat_inputs,
    word_level_t5_tokenizer,
)
from bench.throughput_parts.report import device_name, print_table  # noqa: E402,F401
from bench.throughput_parts.timing import (  # noqa: E402,F401
    PeakMemory,
    Stopwatch,
    amp_factory,
    rss_bytes,
    synchronize,
    timed_method,
    torch_threads,
    tqdm_range,
)
from videoblip2.eval.cider import CiderD  # noqa: E402
from videoblip2.fileio import atomic_write_json  # noqa: E402
from videoblip2.modeling import CHECKPOINTABLE_PARTS  # noqa: E402


# ------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_argument_group("what to run")
    what.add_argument("--size", choices=sorted(SIZES), default="real")
    what.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    what.add_argument("--batch-size", type=int, default=None,
                      help="CE batch of the reference (default: 256 on CUDA, 4-8 on CPU); also ours' unless "
                           "--ours-batch-size")
    what.add_argument("--ours-batch-size", type=int, default=None, help="CE batch of ours (default: --batch-size)")
    what.add_argument("--scst-batch-size", type=int, default=None, help="videos per SCST step (default: batch/4)")
    what.add_argument("--gen-batch-size", type=int, default=None, help="videos per generate call (default: batch)")
    what.add_argument("--num-samples", type=int, default=5, help="SCST samples per video (K)")
    what.add_argument("--steps", type=int, default=10, help="timed steps per measurement (median reported)")
    what.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    what.add_argument("--seed", type=int, default=0)
    what.add_argument("--threads", type=int, default=None,
                      help="torch CPU threads (default: torch's); 1 is steadier on a shared CPU")
    opt = parser.add_argument_group("optimisations of ours that keep results")
    opt.add_argument("--compile", action="store_true", help="torch.compile ours' training forward")
    opt.add_argument("--static-cache", action="store_true", help="static KV cache in ours' generate and SCST sampling")
    opt.add_argument("--activation-checkpointing", nargs="+", default=[], metavar="PART",
                     choices=CHECKPOINTABLE_PARTS,
                     help="recompute these parts' layers in ours' CE backward (less memory, more compute)")
    data = parser.add_argument_group("data")
    data.add_argument("--data-videos", type=int, default=10_000, help="videos in the store and the CIDEr corpus")
    data.add_argument("--captions-per-video", type=int, default=20)
    data.add_argument("--data-batches", type=int, default=50, help="timed CaptionDataset.batch() calls")
    out = parser.add_argument_group("output")
    out.add_argument("--out", default="bench_throughput.json", help="JSON results")
    out.add_argument("--profile", default=None, help="directory for torch.profiler tables of one CE and SCST step")
    out.add_argument("--trace", action="store_true", help="with --profile: also write Chrome traces")
    out.add_argument("--data-only", action="store_true",
                     help="only the data check (no models): CaptionDataset.batch() time at --ours-batch-size")
    out.add_argument("--flops-only", action="store_true",
                     help="print the analytic FLOP count and torch's count of one training step, then stop")
    args = parser.parse_args(argv)
    default = DEFAULT_BATCH[(args.size, args.device)]
    args.batch_size = args.batch_size or default
    args.ours_batch_size = args.ours_batch_size or args.batch_size
    args.scst_batch_size = args.scst_batch_size or max(1, args.batch_size // 4)
    args.gen_batch_size = args.gen_batch_size or args.batch_size
    args.caption_len = SIZES[args.size].caption_len
    for name in ("batch_size", "ours_batch_size", "scst_batch_size", "gen_batch_size", "num_samples", "steps",
                 "data_videos", "captions_per_video", "data_batches"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.num_samples < 1 or args.warmup < 0:
        parser.error("--num-samples must be >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with torch_threads(args.threads):
        return run(args, argv)


def run(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda but torch.cuda.is_available() is False; use --device cpu")
    amp = amp_factory(device)
    spec = SIZES[args.size]
    started = time.perf_counter()
    if args.data_only:
        refs, _ = make_data(args.data_videos, args.captions_per_video, args.seed)
        data = bench_data(refs, spec, spec.config(), word_level_t5_tokenizer(spec.t5["vocab_size"]), args, device)
        print(f"CaptionDataset.batch({data['batch_size']}) on {args.device}: {data['batch_ms_median']:.2f} ms "
              f"(median of {data['batches_timed']}) from {data['num_videos']} videos / {data['num_captions']} "
              f"captions ({data['store_gb']:.2f} GB float16 store built in {data['build_store_s']:.1f} s, captions "
              f"tokenized in {data['tokenize_captions_s']:.1f} s)")
        result = {"config": {"size": args.size, "device": args.device, "device_name": device_name(device),
                             "date": datetime.date.today().isoformat(), "threads": torch.get_num_threads()},
                  "data": data}
        if args.out:
            atomic_write_json(args.out, result, indent=2)
        return result
    print(f"building {args.size} models (random weights) ...", flush=True)
    ours, reference = build_models(args.size, args.seed)
    config = ours.config
    tokenizer = ours.t5_tokenizer
    vocab, eos = spec.t5["vocab_size"], tokenizer.eos_token_id
    q_prompt = len(ours.qformer_tokenizer(PROMPT).input_ids)
    t5_prompt = len(tokenizer(PROMPT).input_ids)
    flops = flops_per_sample(config, spec.t5, spec.frames, spec.audio_windows, q_prompt, t5_prompt,
                             spec.caption_len)
    flop_batch = random_batch(2, spec, config, vocab, eos, args.seed + 99, torch.device("cpu"))
    flops["forward_counted_by_torch"], flops["train_counted_by_torch"] = counted_flops(ours, flop_batch)
    if args.flops_only:
        print(json.dumps({k: f"{v / 1e9:.3f} GFLOP" for k, v in flops.items()}, indent=2))
        return {"flops": flops}

    peak_rate, rate_dtype = matmul_rate(device)
    ours.to(device)
    reference.to(device)
    optimisations = optimise_ours(ours, device, args.activation_checkpointing)
    check_batch = random_batch(min(8, args.batch_size), spec, config, vocab, eos, args.seed + 1, device)
    print("checking that ours and the reference agree ...", flush=True)
    checks = run_checks(ours, reference, check_batch, args, amp, device)

    print(f"CIDEr-D corpus and data: {args.data_videos} videos x {args.captions_per_video} captions ...", flush=True)
    refs, _ = make_data(args.data_videos, args.captions_per_video, args.seed)
    if args.scst_batch_size > len(refs):
        raise BenchmarkError(f"--scst-batch-size {args.scst_batch_size} > --data-videos {len(refs)}")
    cider = CiderD(refs)

    results: dict[str, Any] = {}
    batches = {}
    for impl, model in (("reference", reference), ("ours", ours)):
        batch_size = args.ours_batch_size if impl == "ours" else args.batch_size
        ce_batches = [random_batch(batch_size, spec, config, vocab, eos, args.seed + 10 + i, device)
                      for i in range(2)]
        scst_batch = random_batch(args.scst_batch_size, spec, config, vocab, eos, args.seed + 20, device)
        gen_batch = random_batch(args.gen_batch_size, spec, config, vocab, eos, args.seed + 30, device)
        batches[impl] = (ce_batches[0], scst_batch)
        other = ours if impl == "reference" else reference
        other.to("cpu")  # one model on the device at a time: memory figures are per implementation
        model.to(device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"benchmarking {impl} ...", flush=True)
        results[impl] = bench_impl(impl, model, ce_batches, scst_batch, gen_batch, cider, args, device, amp,
                                   flops["train"], peak_rate, check_batch)
    if "compiled_eval_loss" in results["ours"]["ce"]:
        compiled = results["ours"]["ce"]["compiled_eval_loss"]
        checks["loss_ours_compiled"] = compiled
        checks["loss_compiled_match"] = abs(compiled - checks["loss_reference"]) <= (
            checks["tolerance_rel"] * abs(checks["loss_reference"]))

    profiles = []
    if args.profile:
        out_dir = Path(args.profile)
        out_dir.mkdir(parents=True, exist_ok=True)
        for impl, model in (("reference", reference), ("ours", ours)):
            (ours if impl == "reference" else reference).to("cpu")
            model.to(device)
            profiles += profile_steps(impl, model, *batches[impl], cider, args, device, amp, out_dir)

    print("timing the data path ...", flush=True)
    data = bench_data(refs, spec, config, tokenizer, args, device)
    data["ce_step_ms_ours"] = 1000 * results["ours"]["ce"]["step_s_median"]
    data["fraction_of_ce_step"] = data["batch_ms_median"] / data["ce_step_ms_ours"]

    ratio = {
        "ce_samples_per_s": results["ours"]["ce"]["samples_per_s"] / results["reference"]["ce"]["samples_per_s"],
        "ce_peak_memory": results["ours"]["ce"]["peak_memory_gb"] / results["reference"]["ce"]["peak_memory_gb"],
        "scst_videos_per_s": results["ours"]["scst"]["videos_per_s"] / results["reference"]["scst"]["videos_per_s"],
        "greedy_captions_per_s": (results["ours"]["generate"]["greedy_captions_per_s"]
                                  / results["reference"]["generate"]["greedy_captions_per_s"]),
        "beam3_captions_per_s": (results["ours"]["generate"]["beam3_captions_per_s"]
                                 / results["reference"]["generate"]["beam3_captions_per_s"]),
    }
    result = {
        "config": {
            "size": args.size, "device": args.device, "device_name": device_name(device),
            "date": datetime.date.today().isoformat(), "command": "python bench/throughput.py " + " ".join(
                sys.argv[1:] if argv is None else argv),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "threads": torch.get_num_threads(), "batch_size_reference": args.batch_size,
            "batch_size_ours": args.ours_batch_size, "scst_batch_size": args.scst_batch_size,
            "gen_batch_size": args.gen_batch_size, "num_samples": args.num_samples, "steps": args.steps,
            "warmup": args.warmup, "compile": args.compile, "static_cache": args.static_cache,
            "frames": spec.frames, "audio_windows": spec.audio_windows, "caption_tokens": spec.caption_len,
            "prompt_tokens_t5": t5_prompt, "prompt_tokens_qformer": q_prompt,
            "parameters": sum(p.numel() for p in ours.parameters()),
            "trainable_parameters_ours": sum(p.numel() for p in ours.parameters() if p.requires_grad),
            "trainable_parameters_reference": sum(p.numel() for p in reference.parameters() if p.requires_grad),
            "optimisations_ours": optimisations, "wall_s": None,
        },
        "flops": {**flops, "matmul_rate_flops": peak_rate, "matmul_dtype": rate_dtype},
        "checks": checks,
        "reference": results["reference"],
        "ours": results["ours"],
        "ratio": ratio,
        "data": data,
        "profiles": profiles,
    }
    result["config"]["wall_s"] = time.perf_counter() - started
    print_table(result)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, result, indent=2)
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
