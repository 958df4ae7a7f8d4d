"""Where the training step's memory goes, counted on any device: the tensors autograd saves for backward.

Every tensor that the training forward saves for backward goes through a `saved_tensors_hooks` pack hook,
which sees it once per save. The script counts each storage once and charges it to the module running at
that moment: the video or audio Q-Former, the T5 encoder, the T5 decoder, the lm_head, or the loss and glue
around them. It runs the forward at two batch sizes, B and 2B. The difference divided by B is the activation
memory per sample. What does not grow with the batch is per-step overhead, such as autocast's bf16 copies of
frozen weights, which matmuls save for the input gradient.

It runs under bf16 autocast, on CUDA or on the CPU. CPU autocast makes the same bf16 matmul outputs as CUDA's,
so the count predicts the GPU's activation memory without a GPU. Two things differ on the GPU. The CUDA
allocator rounds blocks up and fragments, and some ops save different tensors there: for example, SDPA's flash
or memory-efficient kernels save a log-sum-exp, not the attention matrix. Eager attention (T5's position bias,
the Q-Former) saves the same tensors on both.

The static part (weights, gradients, AdamW state) is computed from the parameters: fp32 trainable weights, their
fp32 gradients, 2 fp32 AdamW moments, and the frozen T5 in fp32 (reference) or bf16 linear weights (ours,
`VideoBLIP2.cast_frozen_t5`).

    python bench/activation_memory.py --size real --batch-size 2 --target-batch 256     # ~12 min on 2 CPU cores
    python bench/activation_memory.py --size real --device cuda --batch-size 16 --out memory.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `python bench/...`

import torch
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from bench.throughput import (
    SIZES,
    build_models,
    model_inputs,
    random_batch,
    torch_threads,
)
from videoblip2.modeling import CHECKPOINTABLE_PARTS
from videoblip2.fileio import atomic_write_json

COMPONENTS = ("video_qformer", "audio_qformer", "t5_encoder", "t5_decoder", "lm_head", "inputs_and_projections",
              "loss_and_glue")
GB = 1024**3
IMPLS = ("reference", "ours", "ours_checkpointed")


def component_of(module_name: str) -> str:
    """The component a (sub)module belongs to, from its qualified name in VideoBLIP2 / ReferenceVideoBLIP2."""
    if module_name.startswith(("video_qformer", "audio_qformer")):
        return module_name.split(".")[0]
    if ".encoder" in module_name and module_name.startswith("t5."):
        return "t5_encoder"
    if ".decoder" in module_name and module_name.startswith("t5."):
        return "t5_decoder"
    if module_name.endswith("lm_head") or ".lm_head." in module_name:
        return "lm_head"
    if module_name.startswith(("video_input", "audio_upscaler", "audio_input", "proj_video", "proj_audio")):
        return "inputs_and_projections"
    return "loss_and_glue"  # T5's own forward (the loss), our encode(), outside any module


@contextlib.contextmanager
def saved_tensor_accounting(model: nn.Module) -> Iterator[dict[str, int]]:
    """Bytes of the storages autograd saves during the block, per component (each storage counted once).

    Storages of the model's parameters are skipped: they exist anyway. Copies of parameters made inside the
    forward (autocast's bf16 casts) are counted, since they live until backward.
    """
    names = {module: name for name, module in model.named_modules()}
    stack: list[str] = []
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    totals: dict[str, int] = defaultdict(int)
    by_dtype: dict[str, int] = defaultdict(int)  # "component/dtype" -> bytes

    def pre_hook(module, args):
        if module in names:
            stack.append(names[module])

    def post_hook(module, args, output):
        if module in names and stack:
            stack.pop()

    def pack(tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in params and key not in seen and storage.nbytes() > 0:
            seen.add(key)
            component = component_of(stack[-1] if stack else "")
            totals[component] += storage.nbytes()
            by_dtype[f"{component}/{str(tensor.dtype).removeprefix('torch.')}"] += storage.nbytes()
        return tensor

    def checkpointed_inputs(module, args, kwargs):
        # A checkpointed layer saves nothing through `pack` (checkpoint's own hooks take its saves), but it
        # keeps its tensor inputs for the recompute: charge those to the layer's component.
        stack.append(names[module])
        for value in (*args, *kwargs.values()):
            if isinstance(value, torch.Tensor):
                pack(value)
        stack.pop()

    handles = [nn.modules.module.register_module_forward_pre_hook(pre_hook),
               nn.modules.module.register_module_forward_hook(post_hook)]
    handles += [module.register_forward_pre_hook(checkpointed_inputs, with_kwargs=True)
                for module in model.modules() if getattr(module, "gradient_checkpointing", False) is True
                and isinstance(module, GradientCheckpointingLayer)]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            yield totals, by_dtype
    finally:
        for handle in handles:
            handle.remove()


def count(model: nn.Module, batch: dict[str, torch.Tensor], device: torch.device) -> tuple[dict[str, int], dict[str, int]]:
    """Saved bytes per component, and per component/dtype, for one training forward (train mode, bf16
    autocast); then its backward."""
    model.train()
    with saved_tensor_accounting(model) as (totals, by_dtype), torch.autocast(device.type, dtype=torch.bfloat16):
        loss = model(**model_inputs(batch), labels=batch["labels"]).loss
    loss.backward()  # checks the graph is whole; frees what was saved
    model.zero_grad(set_to_none=True)
    return {c: totals.get(c, 0) for c in COMPONENTS}, dict(by_dtype)


def static_bytes(model: nn.Module) -> dict[str, int]:
    """Weights, gradients and AdamW moments as they are stored now (call after optimise_ours)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    trained = sum(p.numel() * p.element_size() for p in trainable)
    return {"trainable_weights": trained, "gradients": trained, "adamw_moments": 2 * trained,
            "frozen_weights": sum(p.numel() * p.element_size() for p in frozen)}


def checkpointed_layers(model: nn.Module) -> dict[str, int]:
    """How many layers of each component recompute in backward (`VideoBLIP2.set_activation_checkpointing`)."""
    layers: dict[str, int] = defaultdict(int)
    for name, module in model.named_modules():
        if isinstance(module, GradientCheckpointingLayer) and module.gradient_checkpointing:
            layers[component_of(name)] += 1
    return dict(layers)


def recompute_transient(plain_per_sample: dict[str, float], layers: dict[str, int]) -> float:
    """Bytes per sample that backward holds on top of the kept inputs while it recomputes one layer.

    Backward recomputes one checkpointed layer at a time, and that layer's saved tensors live until its
    backward is done: about one layer's share of its component in the model without checkpointing (the
    largest such share over the checkpointed components).
    """
    return max((plain_per_sample[c] / n for c, n in layers.items() if n), default=0.0)


def measure(impl: str, model: nn.Module, args: argparse.Namespace, device: torch.device,
            plain: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per-sample and fixed saved bytes, and the peak projected to --target-batch. `plain`: the same model's
    result without activation checkpointing, for the transient of the recompute (see recompute_transient)."""
    spec = SIZES[args.size]
    vocab = spec.t5["vocab_size"]
    eos = model.t5_tokenizer.eos_token_id
    small = random_batch(args.batch_size, spec, model.config, vocab, eos, args.seed, device)
    large = random_batch(2 * args.batch_size, spec, model.config, vocab, eos, args.seed, device)
    start = time.perf_counter()
    (at_b, dtype_b), (at_2b, dtype_2b) = count(model, small, device), count(model, large, device)
    per_sample = {c: (at_2b[c] - at_b[c]) / args.batch_size for c in COMPONENTS}
    per_sample_dtype = {k: (dtype_2b.get(k, 0) - dtype_b.get(k, 0)) / args.batch_size
                        for k in sorted(set(dtype_b) | set(dtype_2b))}
    fixed = {c: at_b[c] - args.batch_size * per_sample[c] for c in COMPONENTS}
    static = static_bytes(model)
    layers = checkpointed_layers(model)
    transient = recompute_transient({c: v * 1024**2 for c, v in plain["per_sample_mb"].items()}, layers) \
        if layers and plain is not None else 0.0
    activations = (sum(per_sample.values()) + transient) * args.target_batch + sum(fixed.values())
    return {
        "checkpointed_layers": layers,
        "recompute_transient_mb_per_sample": transient / 1024**2,
        "per_sample_mb": {c: v / 1024**2 for c, v in per_sample.items()},
        "per_sample_mb_total": sum(per_sample.values()) / 1024**2,
        "per_sample_mb_by_dtype": {k: v / 1024**2 for k, v in per_sample_dtype.items() if v},
        "fixed_gb": {c: v / GB for c, v in fixed.items()},
        "static_gb": {k: v / GB for k, v in static.items()},
        "target_batch": args.target_batch,
        "activations_at_target_gb": activations / GB,
        "predicted_peak_at_target_gb": (activations + sum(static.values())) / GB,
        "seconds": time.perf_counter() - start,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="real")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch-size", type=int, default=2, help="B: the forward runs at B and 2B")
    parser.add_argument("--target-batch", type=int, default=256, help="batch size the totals are projected to")
    parser.add_argument("--impl", nargs="+", choices=IMPLS, default=["reference", "ours"],
                        help="ours_checkpointed: ours with --activation-checkpointing (ours is measured too)")
    parser.add_argument("--activation-checkpointing", nargs="+", default=["t5_encoder"], metavar="PART",
                        choices=CHECKPOINTABLE_PARTS,
                        help="parts ours_checkpointed recomputes in backward (default: t5_encoder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.target_batch < 1:
        parser.error("--batch-size and --target-batch must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with torch_threads(args.threads):
        return run(args, argv)


def run(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    device = torch.device(args.device)
    ours, reference = build_models(args.size, args.seed, with_reference="reference" in args.impl)
    result: dict[str, Any] = {"config": {
        "size": args.size, "device": args.device, "batch_sizes_counted": [args.batch_size, 2 * args.batch_size],
        "date": datetime.date.today().isoformat(), "command": "python bench/activation_memory.py "
        + " ".join(argv if argv is not None else sys.argv[1:]), "torch": torch.__version__}}
    wanted = set(args.impl) | ({"ours"} if "ours_checkpointed" in args.impl else set())
    impls = tuple(impl for impl in IMPLS if impl in wanted)
    result["config"]["activation_checkpointing"] = args.activation_checkpointing if "ours_checkpointed" in impls \
        else []
    ours.cast_frozen_t5(torch.bfloat16)  # as train_ce under bf16 autocast, on any device
    for impl in impls:
        model = (reference if impl == "reference" else ours).to(device)
        if impl == "ours_checkpointed":
            ours.set_activation_checkpointing(args.activation_checkpointing)
        result[impl] = measure(impl, model, args, device, plain=result.get("ours"))
        model.to("cpu")
    print_table(result, impls)
    if args.out:
        atomic_write_json(args.out, result, indent=1)
        print(f"wrote {args.out}")
    return result


def print_table(result: dict[str, Any], impls: tuple[str, ...]) -> None:
    target = result[impls[0]]["target_batch"]
    print(f"saved activations per sample (MB), {result['config']['size']} size, bf16 autocast on "
          f"{result['config']['device']}")
    print(f"{'component':<24}" + "".join(f"{impl:>18}" for impl in impls))
    for c in COMPONENTS:
        print(f"{c:<24}" + "".join(f"{result[i]['per_sample_mb'][c]:>18.2f}" for i in impls))
    print(f"{'total':<24}" + "".join(f"{result[i]['per_sample_mb_total']:>18.2f}" for i in impls))
    if "ours_checkpointed" in impls:
        print(f"{'recompute transient':<24}"
              + "".join(f"{result[i]['recompute_transient_mb_per_sample']:>18.2f}" for i in impls))
    print(f"{'fixed per step (GB)':<24}" + "".join(f"{sum(result[i]['fixed_gb'].values()):>18.2f}" for i in impls))
    print(f"{'static (GB)':<24}" + "".join(f"{sum(result[i]['static_gb'].values()):>18.2f}" for i in impls))
    print(f"{f'predicted peak, B={target}':<24}"
          + "".join(f"{result[i]['predicted_peak_at_target_gb']:>18.1f}" for i in impls))


if __name__ == "__main__":
    main()
