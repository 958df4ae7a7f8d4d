"""CLAP audio features: ``python -m features.audio VIDEOS... --out FEATURES --clap-pretrained 630k-audioset-best.pt``.

Writes ``FEATURES/audio/{video_id}.npy`` float16 ``[T_a, 512]``: the audio track decoded with PyAV, resampled
to 48 kHz, averaged to mono, cut into windows (default 5 s every 2.5 s, at most 16 spread over the clip;
see ``videoblip2.extract.DEFAULT_WINDOW_S`` for why) and embedded with LAION CLAP's audio tower. A video
with no audio stream or only silence gets no file, a marker ``FEATURES/audio/{video_id}.noaudio.json`` and
an entry in ``meta.json["audio"]["no_audio"]`` (the data loader treats it as a video without sound).
Failures, resume, sharding and the exit status work as in ``features.video``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .args import add_common_arguments
from videoblip2.cli import ArgumentParser, add_renamed_flag, non_negative_int, positive_float
from videoblip2.defaults import (
    DEFAULT_CLAP_MODEL,
    DEFAULT_HOP_S,
    DEFAULT_MAX_WINDOWS,
    DEFAULT_SILENCE_THRESHOLD,
    DEFAULT_WINDOW_S,
)

if TYPE_CHECKING:  # the model stack loads after the arguments are parsed (`--help` answers at once)
    from .common import RunSummary, VideoItem
    from videoblip2.extract import ClapWindowEncoder


CHECKED_KEYS = ("model", "ckpt", "ckpt_sha256", "sample_rate", "window_s", "hop_s", "max_windows", "dim", "dtype")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m features.audio", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_common_arguments(parser, batch_size=64, batch_unit="audio windows")
    model = parser.add_argument_group("model")
    model.add_argument("--clap-model", default=DEFAULT_CLAP_MODEL,
                       help="laion_clap audio config (HTSAT-tiny for 630k-*.pt, HTSAT-base for music_*.pt) or a .json")
    model.add_argument("--clap-pretrained", metavar="FILE",
                       help="local CLAP checkpoint file; omitted = RANDOM weights (benchmarks only)")
    add_renamed_flag(model, "--amodel", "--clap-model", "clap_model")
    add_renamed_flag(model, "--ckpt", "--clap-pretrained", "clap_pretrained")
    model.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                       help="fp16/bf16 autocast on a GPU (the spectrogram front end is happiest in fp32)")
    windows = parser.add_argument_group("windows")
    windows.add_argument("--window", type=positive_float, default=DEFAULT_WINDOW_S,
                         help="window length, seconds (<= 10)")
    windows.add_argument("--hop", type=positive_float, default=DEFAULT_HOP_S, help="hop between window starts, seconds")
    windows.add_argument("--max-windows", type=non_negative_int, default=DEFAULT_MAX_WINDOWS,
                         help="longer tracks get this many windows spread evenly (0: no limit)")
    windows.add_argument("--silence-threshold", type=float, default=DEFAULT_SILENCE_THRESHOLD,
                         help="peak amplitude below which a track counts as silent")
    return parser.parse_args(argv)


class DecodeWindows:
    """Worker-side job: the mono 48 kHz track quantised to int16 as CLAP does, plus its window starts."""

    def __init__(self, sample_rate: int, window: int, hop: int, max_windows: int | None, silence_threshold: float):
        self.sample_rate, self.window, self.hop = sample_rate, window, hop
        self.max_windows, self.silence_threshold = max_windows, silence_threshold

    def __call__(self, item: VideoItem) -> dict[str, Any]:
        import torch

        from videoblip2.extract import decode_audio, is_silent, quantize_int16, segment_in_video, window_starts

        # as features.video does: a segment outside the video fails, one past its end is cut (and noted)
        segment, cut = segment_in_video(item.path, item.segment) if item.segment else (None, None)
        noted = {"cut_short": cut} if cut else {}
        wave = decode_audio(item.path, self.sample_rate, segment)
        if wave is None:
            return {"no_audio": "no audio stream", **noted}
        if is_silent(wave, self.silence_threshold):
            return {"no_audio": "silent" if wave.size else "empty audio stream",
                    "seconds": wave.size / self.sample_rate, **noted}
        starts = window_starts(len(wave), self.window, self.hop, self.max_windows)
        return {"wave": torch.from_numpy(quantize_int16(wave)), "starts": torch.tensor(starts, dtype=torch.long),
                **noted}


def no_audio_ids(folder: Path) -> list[str]:
    from .common import finished_ids
    from videoblip2.data import NO_AUDIO_SUFFIX

    return sorted(finished_ids(folder, [NO_AUDIO_SUFFIX]))


def record_no_audio(out: Path) -> None:
    """meta.json's ``no_audio`` list rebuilt from every shard's marker files. The list is read under the
    meta.json lock: read before it, another shard's newer markers could be dropped by this shard's write."""
    from .common import update_meta

    folder = Path(out) / "audio"
    update_meta(out, "audio", lambda: {"no_audio": no_audio_ids(folder)})


def run(args: argparse.Namespace, encoder: ClapWindowEncoder | None = None) -> RunSummary:
    """The extraction behind :func:`main`; ``encoder`` reuses a loaded model (benchmarks).

    Raises:
        InputError, ExtractorModelError, MetaMismatchError: nothing was extracted.
    """
    import torch

    from .common import (
        InputError,
        RunSummary,
        check_settings,
        feature_writer,
        plan_shard,
        read_meta,
        run_extraction,
        update_meta,
        weights_fingerprint,
        write_json_atomic,
    )
    from videoblip2.data import NO_AUDIO_SUFFIX
    from videoblip2.extract import load_clap

    from videoblip2.sources import check_clap_source

    # a missing or offline-only weights source: one line, before the videos are listed
    check_clap_source(args.clap_model, args.clap_pretrained)
    def check_window() -> None:
        if args.window <= 0 or args.hop <= 0:
            raise InputError("--window and --hop must be > 0")

    plan = plan_shard(args, "audio", [".npy", NO_AUDIO_SUFFIX], check_window)
    out, folder, items, done, pending, skipped, failures = (
        plan.out, plan.folder, plan.items, plan.done, plan.pending, plan.skipped, plan.failures)
    settings = {
        "model": args.clap_model if not args.clap_model.endswith(".json") else Path(args.clap_model).stem,
        "ckpt": Path(args.clap_pretrained).name if args.clap_pretrained else "none",
        "ckpt_sha256": weights_fingerprint(args.clap_pretrained),  # the content: file names are all alike
        "window_s": args.window,
        "hop_s": args.hop,
        "max_windows": args.max_windows or None,
    }
    if not pending and done:  # nothing to extract, but other settings than the folder's are still refused
        check_settings(out, "audio", settings, CHECKED_KEYS)
    if not pending:
        if read_meta(out).get("audio"):
            record_no_audio(out)
        return RunSummary(total=len(items), skipped=skipped, failures=failures.path)

    if encoder is None:
        encoder = load_clap(args.clap_model, args.clap_pretrained, device=args.device, precision=args.precision)
    window = int(round(args.window * encoder.sample_rate))
    hop = int(round(args.hop * encoder.sample_rate))
    if window > encoder.clip_samples:
        raise InputError(f"--window {args.window} s is longer than the CLAP input "
                         f"({encoder.clip_samples / encoder.sample_rate:g} s)")
    entry = {
        **settings,
        "sample_rate": encoder.sample_rate,
        "silence_threshold": args.silence_threshold,
        "trim": args.trim,
        "windows": "every hop_s from 0, plus one flush with the end; > max_windows: spread evenly "
                   "(videoblip2.extract.window_starts); each repeat-padded to the CLAP input length",
        "dim": encoder.dim,
        "dtype": "float16",
        **encoder.describe(),  # normalization, preprocessing, precision
    }
    update_meta(out, "audio", entry, CHECKED_KEYS, has_features=bool(done))

    write = feature_writer(folder, "CLAP")

    def skip(item: VideoItem, decoded: dict[str, Any]) -> str | None:
        reason = decoded.get("no_audio")
        if reason is not None:
            write_json_atomic(folder / f"{item.video_id}{NO_AUDIO_SUFFIX}", {"reason": reason, "path": item.path})
        return reason

    def rows_of(decoded: dict[str, Any]) -> list[torch.Tensor]:
        wave = decoded["wave"]
        return [wave[start : start + window] for start in decoded["starts"].tolist()]

    summary = run_extraction(
        items=pending,
        decode=DecodeWindows(encoder.sample_rate, window, hop, args.max_windows or None, args.silence_threshold),
        rows_of=rows_of,
        encode=encoder.encode,
        collate=lambda chunks: [w for chunk in chunks for w in chunk],
        batch_size=args.batch_size,
        workers=args.workers,
        device=encoder.device,
        write=write,
        skip=skip,
        failures=failures,
        desc="audio features",
    )
    record_no_audio(out)
    summary.total, summary.skipped = len(items), skipped
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from .common import cli_main

    return cli_main(run, args, "audio")


if __name__ == "__main__":
    sys.exit(main())
