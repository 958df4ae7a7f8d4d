"""What the extractors' weights fingerprint (features.common.weights_fingerprint, a full sha256) costs on a
checkpoint the size of OpenAI's ViT-L-14 (1.7 GB), against reading the file and loading it with safetensors.

A safetensors file of random float16 tensors is generated (not real weights), read once to warm the page
cache, then each operation is timed --repeats times (median).

    python bench/fingerprint_cost.py [--size-gb 1.7] [--repeats 3] [--dir /tmp] [--out bench_fingerprint.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `python bench/...` from anywhere

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from videoblip2.features.common import weights_fingerprint  # noqa: E402
from videoblip2.fileio import atomic_write_json  # noqa: E402


def read_only(path: str) -> int:
    total = 0
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            total += len(chunk)
    return total


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size-gb", type=float, default=1.7)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", default=None, help="where to write the generated checkpoint (default: the temp dir)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = os.path.join(tmp, "open_clip_model.safetensors")
        n = int(args.size_gb * 1e9 / 2)
        per = 50_000_000  # 100 MB tensors
        g = torch.Generator().manual_seed(0)
        state = {f"w{i}": torch.randn(min(per, n - i * per), generator=g).half() for i in range((n + per - 1) // per)}
        save_file(state, path)
        del state
        size = os.path.getsize(path)
        read_only(path)  # warm the page cache: every figure below is from memory, not the disk
        result = {
            "file_gb": round(size / 1e9, 3),
            "sha256_s": timed(lambda: weights_fingerprint(path), args.repeats),
            "read_s": timed(lambda: read_only(path), args.repeats),
            # load_file maps the file lazily: copying every tensor is what loading into a model costs
            "safetensors_load_s": timed(lambda: [t.clone() for t in load_file(path).values()], args.repeats),
            "repeats": args.repeats,
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_average": round(os.getloadavg()[0], 1),
        }
    result["sha256_gb_per_s"] = round(result["file_gb"] / result["sha256_s"], 2)
    result["sha256_over_read"] = round(result["sha256_s"] / result["read_s"], 2)
    result["sha256_over_load"] = round(result["sha256_s"] / result["safetensors_load_s"], 2)
    for key in ("sha256_s", "read_s", "safetensors_load_s"):
        result[key] = round(result[key], 3)
    print("  ".join(f"{k}={v}" for k, v in result.items()))
    if args.out:
        atomic_write_json(args.out, result, indent=2)
    return result


if __name__ == "__main__":
    main()
