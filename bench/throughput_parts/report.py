"""Reporting of bench/throughput.py: the device's name and the printed table."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}), {os.cpu_count()} cores"


def print_table(result: dict[str, Any]) -> None:
    ref, ours, ratio, checks, data = (result["reference"], result["ours"], result["ratio"], result["checks"],
                                      result["data"])
    rows = [
        ("CE training samples/s", ref["ce"]["samples_per_s"], ours["ce"]["samples_per_s"], ratio["ce_samples_per_s"]),
        ("CE peak memory GB", ref["ce"]["peak_memory_gb"], ours["ce"]["peak_memory_gb"], ratio["ce_peak_memory"]),
        ("CE MFU", ref["ce"]["mfu"], ours["ce"]["mfu"], ours["ce"]["mfu"] / ref["ce"]["mfu"]),
        ("SCST videos/s", ref["scst"]["videos_per_s"], ours["scst"]["videos_per_s"], ratio["scst_videos_per_s"]),
        *[(f"  SCST {part} s/step", ref["scst"][f"{part}_s"], ours["scst"][f"{part}_s"], None)
          for part in ("generate", "logprob_forward", "reward", "backward")],
        ("greedy captions/s", ref["generate"]["greedy_captions_per_s"], ours["generate"]["greedy_captions_per_s"],
         ratio["greedy_captions_per_s"]),
        ("beam-3 captions/s", ref["generate"]["beam3_captions_per_s"], ours["generate"]["beam3_captions_per_s"],
         ratio["beam3_captions_per_s"]),
    ]
    cfg = result["config"]
    print(f"\n{cfg['size']} size on {cfg['device_name']}; CE batch {cfg['batch_size_reference']} / "
          f"{cfg['batch_size_ours']}, SCST {cfg['scst_batch_size']} videos x K={cfg['num_samples']}, "
          f"train FLOPs/sample {result['flops']['train'] / 1e9:.2f} G (torch counts "
          f"{result['flops']['train_counted_by_torch'] / 1e9:.2f} G), matmul "
          f"{result['flops']['matmul_rate_flops'] / 1e12:.2f} TFLOP/s {result['flops']['matmul_dtype']}")
    print(f"{'measure':<28}{'reference':>12}{'ours':>12}{'ours/ref':>10}")
    for name, a, b, r in rows:
        print(f"{name:<28}{a:>12.4g}{b:>12.4g}{'' if r is None else f'{r:>9.2f}x':>10}")
    print(f"checks: loss {checks['loss_reference']:.6f} vs {checks['loss_ours']:.6f} "
          f"({'match' if checks['loss_match'] else 'MISMATCH'}), greedy ids identical {checks['greedy_identical']}, "
          f"beam-3 identical {checks['beam3_identical']}, SCST log-prob max diff "
          f"{checks['scst_logprob_max_abs_diff']:.2e} ({'match' if checks['scst_logprob_match'] else 'MISMATCH'})")
    print(f"data: CaptionDataset.batch({data['batch_size']}) {data['batch_ms_median']:.2f} ms from "
          f"{data['num_videos']} videos / {data['num_captions']} captions = "
          f"{100 * data['fraction_of_ce_step']:.2f}% of ours' CE step ({data['ce_step_ms_ours']:.1f} ms)")
