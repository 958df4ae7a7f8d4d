"""Feature extraction throughput (videos/s): features.video (CLIP frames) and features.audio (CLAP windows),
with the split between decoding (PyAV + resize, per worker process) and the model.

Synthetic MSR-VTT-like inputs: N videos of 320x240 H.264 at 30 fps with a stereo 44.1 kHz AAC track
(moving texture + a tone), default 15 s each. Three measurements per extractor:

  decode   one process decodes every video as a worker does (frames: decode + sample + CLIP resize/crop;
           audio: decode + resample to 48 kHz mono + int16 + windows) -> videos/s per worker
  model    the model alone on full batches of already-decoded rows -> videos/s
  e2e      the real extractor (features.video.run / features.audio.run) with --workers processes, the model
           loaded once beforehand -> videos/s, and the share of that time spent inside the model

    python bench/extract_speed.py                       # CPU, tiny random CLIP + CLAP (tests/media.py)
    python bench/extract_speed.py --real --device cuda --workers 16 --videos 128
                                                        # ViT-L-14 + HTSAT-tiny, random weights, real size
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `python bench/...` from anywhere

import av  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from features import audio as audio_cli  # noqa: E402
from features import video as video_cli  # noqa: E402
from features.common import VideoItem  # noqa: E402
from videoblip2.extract import (  # noqa: E402
    DEFAULT_HOP_S,
    DEFAULT_MAX_WINDOWS,
    DEFAULT_SILENCE_THRESHOLD,
    DEFAULT_WINDOW_S,
    load_clap,
    load_clip,
)
from videoblip2.fileio import atomic_write_json  # noqa: E402


def make_videos(folder: Path, count: int, seconds: float, fps: int = 30, size=(320, 240)) -> list[Path]:
    """MSR-VTT-like clips: a scrolling smooth texture with a moving square, and a 440-880 Hz stereo tone."""
    rng = np.random.default_rng(0)
    width, height = size
    paths = []
    for v in range(count):
        path = folder / f"video{v}.mp4"
        texture = np.kron(rng.integers(0, 255, (height // 8, 2 * width // 8, 3), dtype=np.uint8),
                          np.ones((8, 8, 1), dtype=np.uint8))
        with av.open(str(path), "w") as container:
            vs = container.add_stream("libx264", rate=fps)
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            vs.options = {"preset": "veryfast", "crf": "23"}
            rate = 44_100
            aus = container.add_stream("aac", rate=rate, layout="stereo")
            for i in range(int(seconds * fps)):
                frame = np.ascontiguousarray(texture[:, i % width : i % width + width])
                x = (5 * i) % (width - 40)
                frame[100:140, x : x + 40] = 255
                for packet in vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in vs.encode():
                container.mux(packet)
            t = np.arange(int(seconds * rate)) / rate
            wave = (0.3 * np.sin(2 * np.pi * (440 + 20 * v) * t)).astype(np.float32)
            for start in range(0, len(wave), 1024):
                chunk = np.ascontiguousarray(np.stack([wave[start : start + 1024]] * 2))
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                af.sample_rate, af.pts = rate, start
                for packet in aus.encode(af):
                    container.mux(packet)
            for packet in aus.encode():
                container.mux(packet)
        paths.append(path)
    return paths


def time_model(encode, rows, batch_size: int, repeats: int) -> float:
    """Seconds per row of ``encode`` on full batches (one warm-up batch first)."""
    batch = rows[:batch_size]
    encode(batch)
    start = time.perf_counter()
    for _ in range(repeats):
        encode(batch)
    return (time.perf_counter() - start) / (repeats * len(batch))


def bench_video(args, paths: list[Path], work: Path) -> dict:
    if args.real:
        clip = load_clip("ViT-L-14", None, device=args.device, precision=args.precision)
        model_args = ["--clip-model", "ViT-L-14", "--clip-pretrained", "none"]
    else:
        clip = load_clip(args.tiny["clip_config"], args.tiny["clip_ckpt"], device=args.device,
                         precision=args.precision)
        model_args = ["--clip-model", args.tiny["clip_config"], "--clip-pretrained", args.tiny["clip_ckpt"]]
    decode = video_cli.DecodeFrames(args.num_frames, None, clip.prepare, threads=1)  # one core, as a worker
    start = time.perf_counter()
    decoded = [decode(VideoItem(p.stem, str(p)))["frames"] for p in paths[: args.decode_videos]]
    decode_s = (time.perf_counter() - start) / len(decoded)

    rows = torch.cat(decoded)
    while len(rows) < args.video_batch:
        rows = torch.cat([rows, rows])
    per_frame = time_model(clip.encode, rows, args.video_batch, args.repeats)

    cli = video_cli.parse_args([str(work / "videos"), "--out", str(work / "features"), *model_args,
                                "--num-frames", str(args.num_frames), "--batch-size", str(args.video_batch),
                                "--workers", str(args.workers), "--device", args.device,
                                "--precision", args.precision])
    summary = video_cli.run(cli, encoder=clip)
    return {
        "model": "ViT-L-14" if args.real else "tiny CLIP (2-layer ViT, width 64, 224 px)",
        "precision": str(clip.input_dtype).replace("torch.", ""),
        "frames_per_video": args.num_frames,
        "batch_frames": args.video_batch,
        "decode_s_per_video": decode_s,
        "decode_videos_per_s_per_worker": 1 / decode_s,
        "model_frames_per_s": 1 / per_frame,
        "model_videos_per_s": 1 / (per_frame * args.num_frames),
        "e2e_videos_per_s": summary.videos_per_second,
        "e2e_model_busy": summary.encode_seconds / summary.seconds,
        "e2e_failed": summary.failed,
    }


def bench_audio(args, paths: list[Path], work: Path) -> dict:
    if args.real:
        clap = load_clap("HTSAT-tiny", None, device=args.device)
        model_args, window, hop = ["--clap-model", "HTSAT-tiny"], DEFAULT_WINDOW_S, DEFAULT_HOP_S
    else:
        clap = load_clap(args.tiny["clap_config"], args.tiny["clap_ckpt"], device=args.device)
        # the tiny CLAP reads 2 s inputs: 2 s windows at the default 2.5 s hop (~1 window more than 5 s ones)
        model_args = ["--clap-model", args.tiny["clap_config"], "--clap-pretrained", args.tiny["clap_ckpt"]]
        window, hop = 2.0, DEFAULT_HOP_S
    sr = clap.sample_rate
    decode = audio_cli.DecodeWindows(sr, int(window * sr), int(hop * sr), DEFAULT_MAX_WINDOWS,
                                     DEFAULT_SILENCE_THRESHOLD)
    start = time.perf_counter()
    decoded = [decode(VideoItem(p.stem, str(p))) for p in paths[: args.decode_videos]]
    decode_s = (time.perf_counter() - start) / len(decoded)
    rows = [d["wave"][s : s + int(window * sr)] for d in decoded for s in d["starts"].tolist()]
    windows_per_video = len(rows) / len(decoded)
    while len(rows) < args.audio_batch:
        rows = rows + rows
    per_window = time_model(clap.encode, rows, args.audio_batch, args.repeats)

    cli = audio_cli.parse_args([str(work / "videos"), "--out", str(work / "features"), *model_args,
                                "--window", str(window), "--hop", str(hop), "--batch-size", str(args.audio_batch),
                                "--workers", str(args.workers), "--device", args.device])
    summary = audio_cli.run(cli, encoder=clap)
    return {
        "model": "HTSAT-tiny" if args.real else "tiny HTSAT (8-wide stages, 2 s input)",
        "window_s": window, "hop_s": hop,
        "windows_per_video": windows_per_video,
        "batch_windows": args.audio_batch,
        "decode_s_per_video": decode_s,
        "decode_videos_per_s_per_worker": 1 / decode_s,
        "model_windows_per_s": 1 / per_window,
        "model_videos_per_s": 1 / (per_window * windows_per_video),
        "e2e_videos_per_s": summary.videos_per_second,
        "e2e_model_busy": summary.encode_seconds / summary.seconds,
        "e2e_failed": summary.failed,
    }


def bound(result: dict, workers: int) -> str:
    decode_rate = result["decode_videos_per_s_per_worker"] * max(1, workers)
    return "decode" if decode_rate < result["model_videos_per_s"] else "model"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", action="store_true", help="ViT-L-14 + HTSAT-tiny at real size (random weights)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", help="CLIP precision: auto, fp32, fp16, bf16")
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each synthetic video")
    parser.add_argument("--decode-videos", type=int, default=8, help="videos timed in the single-process decode")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--num-frames", type=int, default=32)
    parser.add_argument("--video-batch", type=int, default=256, help="frames per CLIP batch")
    parser.add_argument("--audio-batch", type=int, default=64, help="windows per CLAP batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("video", "audio"))
    parser.add_argument("--json", default="bench_extract_speed.json")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    results: dict = {
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else
        f"CPU, {os.cpu_count()} cores ({platform.processor() or platform.machine()})",
        "torch_threads": torch.get_num_threads(),
        "videos": args.videos, "seconds_per_video": args.seconds, "workers": args.workers,
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "videos").mkdir()
        start = time.perf_counter()
        paths = make_videos(work / "videos", args.videos, args.seconds)
        print(f"made {len(paths)} videos of {args.seconds:g} s in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        if not args.real:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
            from media import tiny_extractor_files  # the tiny random CLIP/CLAP of the tests

            args.tiny = tiny_extractor_files(work / "tiny")
        for kind, run in (("video", bench_video), ("audio", bench_audio)):
            if args.only in (None, kind):
                results[kind] = run(args, paths, work)
                results[kind]["bound"] = bound(results[kind], args.workers)

    print(f"\n{results['device']}, {args.workers} decode workers, {args.videos} videos x {args.seconds:g} s")
    print("| extractor | model | decode videos/s per core | model videos/s | end-to-end videos/s | model busy | bound |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("video", "audio"):
        if kind in results:
            r = results[kind]
            print(f"| {kind} | {r['model']} | {r['decode_videos_per_s_per_worker']:.3g} | {r['model_videos_per_s']:.3g} "
                  f"| {r['e2e_videos_per_s']:.3g} | {100 * r['e2e_model_busy']:.0f}% | {r['bound']} |")
    atomic_write_json(args.json, results, indent=2)
    print(f"wrote {args.json}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
