"""How fast the commands answer: wall time of ``python -m COMMAND --help`` and of an argument error, against
``python -c pass`` (the interpreter's own start) measured in the same run.

    python bench/cli_startup.py                      # this checkout
    python bench/cli_startup.py --repo /tmp/before   # another checkout (e.g. `git archive main | tar -x`)

Prints a table (median of --repeats runs, interleaved so that load changes hit every command alike) and
writes JSON with --json. Issue 20: --help and argument errors must not import torch/transformers/peft.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("train.train_ce", "train.train_scst", "train.make_top5", "features.video", "features.audio",
            "videoblip2.caption", "videoblip2.predict", "videoblip2.synth", "videoblip2.tiny", "eval.evaluate",
            "eval.ablation")


def timed(argv: list[str], cwd: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(cwd), PYTHONDONTWRITEBYTECODE="1", HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent),
                        help="checkout whose commands are timed (default: this one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--commands", nargs="+", default=list(COMMANDS))
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    repo = Path(args.repo)
    cases = {"python -c pass": [sys.executable, "-c", "pass"]}
    for command in args.commands:
        cases[f"{command} --help"] = [sys.executable, "-m", command, "--help"]
        cases[f"{command} --no-such-flag"] = [sys.executable, "-m", command, "--no-such-flag"]
    times: dict[str, list[float]] = {name: [] for name in cases}
    for name, cmd in cases.items():  # warm the page cache once
        timed(cmd, repo)
    for _ in range(args.repeats):
        for name, cmd in cases.items():
            times[name].append(timed(cmd, repo))
    base = statistics.median(times["python -c pass"])
    rows = {name: statistics.median(values) for name, values in times.items()}
    width = max(len(n) for n in rows)
    print(f"{'case':<{width}}  median s  minus python -c pass")
    for name, value in rows.items():
        print(f"{name:<{width}}  {value:8.2f}  {value - base:8.2f}")
    load = os.getloadavg()[0]
    print(f"repo {repo}, {args.repeats} repeats, load average {load:.1f} on {os.cpu_count()} cores")
    result = {"repo": str(repo), "repeats": args.repeats, "load": load, "median_s": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
