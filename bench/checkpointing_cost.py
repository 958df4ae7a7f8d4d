"""What activation checkpointing costs in step time: ours' CE step with each set of checkpointed parts.

One model, one optimizer, one process. Each round runs `--steps` CE steps (forward + backward + AdamW) with
checkpointing off, then with every configuration in `--configs`, switching with
`VideoBLIP2.set_activation_checkpointing` between them. Alternating inside one process makes machine load hit
all configurations alike, which matters on a shared CPU. The median step time of each configuration is
reported with its ratio to "off".

Before timing, a check: one forward + backward on the same batch and weights with each configuration. The
loss and the gradient norm must equal those without checkpointing (dropout on; the RNG state is restored in
the recompute): exactly on the CPU, within 1e-3 relative on CUDA (atomics in some backward kernels), or the
script stops.

    python bench/checkpointing_cost.py --size small --batch-size 8 --threads 1              # ~2 min on a CPU
    python bench/checkpointing_cost.py --size real --device cuda --batch-size 256 --out ckpt.json
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `python bench/...`

import torch

from bench.throughput import (
    SIZES,
    BenchmarkError,
    amp_factory,
    build_models,
    ce_step,
    make_optimizer,
    model_inputs,
    optimise_ours,
    random_batch,
    synchronize,
    torch_threads,
)
from videoblip2.modeling import CHECKPOINTABLE_PARTS
from videoblip2.fileio import atomic_write_json

CONFIGS = {"t5_encoder": ("t5_encoder",), "all": CHECKPOINTABLE_PARTS}


def check_same_loss_and_gradients(model, batch: dict[str, torch.Tensor], configs: dict[str, tuple[str, ...]],
                                  amp, rel_tol: float) -> dict[str, dict[str, float]]:
    """Loss and gradient norm of one forward + backward per configuration, from the same RNG state."""
    found = {}
    for name, parts in {"off": (), **configs}.items():
        model.set_activation_checkpointing(parts)
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        with amp():
            loss = model(**model_inputs(batch), labels=batch["labels"]).loss
        loss.backward()
        norm = torch.linalg.vector_norm(
            torch.stack([p.grad.float().norm() for p in model.parameters() if p.grad is not None]))
        found[name] = {"loss": loss.item(), "grad_norm": norm.item()}
    model.zero_grad(set_to_none=True)
    for name, values in found.items():
        if any(abs(values[k] - found["off"][k]) > rel_tol * abs(found["off"][k]) for k in values):
            raise BenchmarkError(f"activation checkpointing {name!r} changes the step: {values} != {found['off']}")
    return found


def run(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda but torch.cuda.is_available() is False; use --device cpu")
    spec = SIZES[args.size]
    amp = amp_factory(device)
    model, _ = build_models(args.size, args.seed, with_reference=False)
    model.to(device)
    optimise_ours(model, device)
    model.train()
    config, eos = model.config, model.t5_tokenizer.eos_token_id
    batches = [random_batch(args.batch_size, spec, config, spec.t5["vocab_size"], eos, args.seed + 10 + i, device)
               for i in range(2)]
    configs = {name: CONFIGS[name] for name in args.configs}
    layers = {name: model.set_activation_checkpointing(parts) for name, parts in {"off": (), **configs}.items()}
    rel_tol = 1e-3 if device.type == "cuda" else 0.0
    checks = check_same_loss_and_gradients(model, batches[0], configs, amp, rel_tol)
    optimizer = make_optimizer(model, "ours", device)
    model.set_activation_checkpointing(())
    for i in range(args.warmup):
        ce_step(model, batches[i % 2], optimizer, amp)
    times: dict[str, list[float]] = {name: [] for name in layers}
    for round_ in range(args.rounds):
        for name, step_times in times.items():
            model.set_activation_checkpointing(configs.get(name, ()))
            synchronize(device)
            started = time.perf_counter()
            for i in range(args.steps):
                ce_step(model, batches[i % 2], optimizer, amp)
            synchronize(device)
            step_times.append((time.perf_counter() - started) / args.steps)
        print(f"round {round_ + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()),
              flush=True)
    model.set_activation_checkpointing(())
    median = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "config": {"size": args.size, "device": args.device, "batch_size": args.batch_size, "steps": args.steps,
                   "rounds": args.rounds, "warmup": args.warmup, "threads": torch.get_num_threads(),
                   "date": datetime.date.today().isoformat(), "torch": torch.__version__,
                   "command": "python bench/checkpointing_cost.py "
                   + " ".join(argv if argv is not None else sys.argv[1:])},
        "parts": {"off": [], **{name: list(parts) for name, parts in configs.items()}},
        "checkpointed_layers": layers,
        "checks": {"rel_tol": rel_tol, **checks},
        "step_s_all": times,
        "step_s_median": median,
        "time_ratio_to_off": {name: value / median["off"] for name, value in median.items()},
    }
    for name, ratio in result["time_ratio_to_off"].items():
        print(f"{name:>10}: {layers[name]:3d} layers checkpointed, median step {median[name]:.3f} s, "
              f"{ratio:.3f}x the step without checkpointing")
    if args.out:
        atomic_write_json(args.out, result, indent=2)
        print(f"wrote {args.out}")
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=sorted(CONFIGS, reverse=True),
                        help="t5_encoder: the T5 encoder's layers; all: T5 encoder, decoder and both Q-Formers")
    parser.add_argument("--steps", type=int, default=2, help="CE steps per configuration per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over all configurations (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed CE steps first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads; 1 is steadier on a shared CPU")
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    for name in ("batch_size", "steps", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with torch_threads(args.threads):
        return run(args, argv)


if __name__ == "__main__":
    main()
