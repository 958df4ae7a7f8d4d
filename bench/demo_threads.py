"""CPU threads for the demo on a shared machine: seconds per training step of the demo's cross-entropy stage
(`train_ce --tiny`, batch 32, the synthetic benchmark) with 1 and with 2 threads, measured in the same run,
interleaved, while another CPU-bound job runs.

    python bench/demo_threads.py                   # starts one busy loop if the machine is idle
    python bench/demo_threads.py --compete 0       # measure under whatever load the machine already has
    python bench/demo_threads.py --demo            # also time the whole scripts/demo.sh with THREADS=1

Issue 20: with torch's default (one thread per core) and one other CPU-bound job on 2 cores, the demo ran at
8.7 s/step; scripts/demo.sh now defaults to THREADS=1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def env_for(threads: int) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def seconds_per_step(data: Path, threads: int, steps: int) -> tuple[float, float]:
    """(median s/step over steps 2.., wall s of the whole command) of a short demo-like train_ce run."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "train.train_ce", "--tiny", "--features", str(data), "--ann",
               str(data / "train_val_videodatainfo.json"), "--out", out, "--max-steps", str(steps), "--batch-size",
               "32", "--lr", "2e-3", "--dropout", "0", "--val-videos", "1", "--log-every", "1", "--no-progress",
               "--num-threads", str(threads), "--device", "cpu"]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env_for(threads), check=True, capture_output=True)
        wall = time.perf_counter() - start
        records = [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]
    rates = [r["pairs_per_s"] for r in records if r.get("type") == "train" and r["step"] > 1]
    return 32 / statistics.median(rates), wall


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "demo_threads_data"),
                        help="synthetic benchmark folder (generated with videoblip2.synth if missing)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--compete", type=int, default=None,
                        help="busy loops to start (default: 1 if the load average is under 1.5, else 0)")
    parser.add_argument("--demo", action="store_true", help="also time scripts/demo.sh with THREADS=1")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "meta.json").is_file():
        subprocess.run([sys.executable, "-m", "videoblip2.synth", "--out", str(data), "--no-progress"], cwd=ROOT,
                       env=env_for(1), check=True)
    load_before = os.getloadavg()[0]
    compete = args.compete if args.compete is not None else int(load_before < 1.5)
    loops = [subprocess.Popen(["nice", "-n", "0", sys.executable, "-c", "while True: pass"]) for _ in range(compete)]
    try:
        per_step: dict[int, list[float]] = {t: [] for t in args.threads}
        walls: dict[int, list[float]] = {t: [] for t in args.threads}
        for _ in range(args.repeats):
            for threads in args.threads:
                step, wall = seconds_per_step(data, threads, args.steps)
                per_step[threads].append(step)
                walls[threads].append(wall)
                print(f"threads {threads}: {step:.2f} s/step, {wall:.1f} s for {args.steps} steps", flush=True)
        demo_s = None
        if args.demo:
            with tempfile.TemporaryDirectory() as run:
                start = time.perf_counter()
                subprocess.run(["bash", "scripts/demo.sh"], cwd=ROOT, check=True, capture_output=True,
                               env=dict(env_for(1), THREADS="1", DATA=str(data), RUN=run, PY=sys.executable))
                demo_s = time.perf_counter() - start
            print(f"scripts/demo.sh THREADS=1: {demo_s / 60:.1f} min", flush=True)
    finally:
        for loop in loops:
            loop.kill()
    result = {"steps": args.steps, "repeats": args.repeats, "compete": compete, "load_before": load_before,
              "load_after": os.getloadavg()[0], "cores": os.cpu_count(),
              "s_per_step": {t: statistics.median(v) for t, v in per_step.items()},
              "wall_s": {t: statistics.median(v) for t, v in walls.items()}, "demo_threads1_s": demo_s}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
