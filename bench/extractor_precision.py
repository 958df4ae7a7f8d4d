"""How far the compute precision moves the extracted features, against what the float16 storage moves them.

The same random-weight model (real architecture) encodes the same inputs in fp32 and in a lower precision
(CLIP: open_clip's ``precision="bf16"``/``"fp16"``, weights cast, what ``features.video --precision auto``
picks on a GPU; CLAP: autocast, ``features.audio --precision bf16``). Reported per row: cosine and relative
L2 error of the low-precision features against fp32, next to the same figures for the fp32 features stored
as float16 (the error every feature file has anyway). Plus the time per batch in each precision.

Inputs: smooth random textures (224x224 after CLIP's preprocessing) and 5 s chirp + noise windows.

    python bench/extractor_precision.py                          # CPU: ViT-B-32, HTSAT-tiny, bf16
    python bench/extractor_precision.py --device cuda --clip-model ViT-L-14 --frames 64 --windows 32
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `python bench/...` from anywhere

import numpy as np  # noqa: E402
import torch  # noqa: E402

from videoblip2.extract import ClapWindowEncoder, load_clap, load_clip  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture (random weights)")
    parser.add_argument("--clap-model", default="HTSAT-tiny", help="laion_clap audio config (random weights)")
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp16"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per precision (the best is kept)")
    parser.add_argument("--skip-clap", action="store_true")
    return parser.parse_args(argv)


def compare(reference: torch.Tensor, other: torch.Tensor) -> tuple[float, float, float]:
    """(min cosine, mean cosine, median relative L2 error) of the rows of ``other`` against ``reference``."""
    reference, other = reference.double(), other.double()
    cosine = torch.nn.functional.cosine_similarity(reference, other, dim=-1)
    relative = (other - reference).norm(dim=-1) / reference.norm(dim=-1)
    return float(cosine.min()), float(cosine.mean()), float(relative.median())


def timed(fn, repeats: int, device: str) -> tuple[torch.Tensor, float]:
    best, out = float("inf"), None
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return out, best


def report(name: str, low: str, ref: torch.Tensor, low_out: torch.Tensor, t32: float, tlow: float) -> None:
    stored = torch.from_numpy(ref.numpy().astype(np.float16).astype(np.float32))
    c_min, c_mean, rel = compare(ref, low_out)
    s_min, s_mean, s_rel = compare(ref, stored)
    print(f"{name}: {low} vs fp32: cosine min {c_min:.6f} mean {c_mean:.6f}, relative error {rel:.2e}")
    print(f"{name}: float16 storage vs fp32: cosine min {s_min:.8f} mean {s_mean:.8f}, relative error {s_rel:.2e}"
          f"  -> {low} moves the rows {rel / s_rel:.0f}x more than the storage")
    print(f"{name}: norm of the fp32 rows: mean {float(ref.norm(dim=-1).mean()):.3f}")
    print(f"{name}: time per batch fp32 {t32:.3f} s, {low} {tlow:.3f} s ({t32 / tlow:.2f}x)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    print(f"device {args.device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads), "
          f"torch {torch.__version__}")
    rng = np.random.default_rng(0)

    # CLIP: the same initial weights in both precisions (open_clip initialises in fp32, then casts)
    torch.manual_seed(0)
    clip32 = load_clip(args.clip_model, None, device=args.device, precision="fp32")
    torch.manual_seed(0)
    clip_low = load_clip(args.clip_model, None, device=args.device, precision=args.precision)
    w32 = next(clip32.model.visual.parameters()).detach().float().cpu()
    wlow = next(clip_low.model.visual.parameters()).detach().float().cpu()
    assert torch.allclose(w32.to(wlow.dtype), wlow, rtol=1e-2, atol=1e-3), "the two CLIP models differ in weights"
    size = clip32.image_size
    blocks = rng.integers(0, 255, (args.frames, size[0] // 16, size[1] // 16, 3), dtype=np.uint8)
    frames = torch.from_numpy(np.kron(blocks, np.ones((1, 16, 16, 1), dtype=np.uint8)))  # (N, S, S, 3)
    ref, t32 = timed(lambda: clip32.encode(frames), args.repeats, args.device)
    low, tlow = timed(lambda: clip_low.encode(frames), args.repeats, args.device)
    report(f"CLIP {args.clip_model} ({args.frames} frames)", args.precision, ref, low, t32, tlow)

    if not args.skip_clap:
        clap32 = load_clap(args.clap_model, None, device=args.device, precision="fp32")
        clap_low = ClapWindowEncoder(clap32.model, clap32.config, precision=args.precision)  # autocast, same weights
        t = np.arange(5 * clap32.sample_rate) / clap32.sample_rate
        windows = [(0.4 * np.sin(2 * np.pi * (200 + 300 * i) * t * (1 + t / 10)) +
                    0.05 * rng.standard_normal(len(t))).astype(np.float32) for i in range(args.windows)]
        ref, t32 = timed(lambda: clap32.encode(windows), args.repeats, args.device)
        low, tlow = timed(lambda: clap_low.encode(windows), args.repeats, args.device)
        report(f"CLAP {args.clap_model} ({args.windows} windows of 5 s)", f"{args.precision} autocast", ref, low,
               t32, tlow)
    return 0


if __name__ == "__main__":
    sys.exit(main())
