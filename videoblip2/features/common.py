"""What the video and audio extractors share: inputs, sharding, resume, atomic files, failures, meta.json,
and the loop that packs decoded videos into large model batches.

Pipeline of one run::

    list inputs -> --shard i/N -> drop finished ids (resume) -> DataLoader workers decode (PyAV)
        -> RowBatcher packs rows (frames / audio windows) of many videos into fixed-size model batches
        -> encode on the device -> split back per video -> tmp file + rename -> progress bar
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import logging
import os
import socket
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from .args import TRIM_MODES, add_common_arguments  # noqa: F401  (re-exported)
from videoblip2.data import FAILURES_NAME  # noqa: F401  (re-exported: the extractors' name)
from videoblip2.extract import VIDEO_EXTENSIONS, ExtractionError, ExtractorModelError, videos_in
from videoblip2.fileio import atomic_open, atomic_write_json, check_writable_dir, stale_temp_files
from videoblip2.ids import UnsafeIdError, check_video_id
from videoblip2.sources import SourceError

META_NAME = "meta.json"
LIST_SUFFIXES = (".txt", ".lst", ".list")


class InputError(ValueError):
    """The extractor's inputs cannot be used: a missing path, a bad list/annotation file, duplicate ids."""


class MetaMismatchError(RuntimeError):
    """The output folder holds features made with other settings (mixing them would be silent corruption)."""


@dataclass(frozen=True)
class VideoItem:
    video_id: str  # the file stem (of the clip: with --trim, not of the full video at `path`)
    path: str
    segment: tuple[float, float] | None = None  # --trim: (start_s, end_s) of the clip in the video at `path`


# ----------------------------------------------------------------------------------------------
# inputs


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _safe_id(video_id: str, where: str) -> str:
    """``video_id`` if it is a plain file name (`videoblip2.ids.check_video_id`), else an InputError naming
    ``where``, the id and the rule: the features go to ``{out}/{kind}/{id}.npy``, never outside."""
    try:
        return check_video_id(video_id, where)
    except UnsafeIdError as error:
        raise InputError(str(error)) from None


def _segments(path: Path, video_ids: Sequence[str], trim: str, split: str | None,
              ann_format: str) -> dict[str, tuple[str, float, float]]:
    """``{clip id: (full video's id, start_s, end_s)}``: from the clip names or the annotation's own fields."""
    from videoblip2.annotations import AnnotationError, load_segments, parse_clip_name

    if trim == "ann":
        try:
            return load_segments(path, split, ann_format)
        except AnnotationError as e:
            raise InputError(str(e)) from None
    segments, bad = {}, []
    for video_id in video_ids:
        try:
            segments[video_id] = parse_clip_name(video_id)
        except ValueError:
            bad.append(video_id)
    if bad:
        raise InputError(f"{path}: --trim name: {len(bad)} video ids are not clip names "
                         f"{{youtube_id}}_{{start}}_{{end}}, e.g. {', '.join(bad[:3])}")
    for video_id, (source, _, _) in segments.items():  # the full video's name: '..' from '.._1_2'
        _safe_id(source, f"{path}: video {video_id!r} (--trim name: the full video's id)")
    return segments


def _from_annotations(path: Path, video_dir: str | None, split: str | None, ann_format: str = "auto",
                      trim: str | None = None, qa_mapping: str | None = None) -> list[VideoItem]:
    """Items of the videos an annotation file lists, looked up as ``{video_dir}/{id}.*``; with ``trim``, the
    clips' segments of the full videos ``{video_dir}/{youtube_id}.*`` (:data:`TRIM_MODES`). A QA file
    (``videoblip2.annotations.load_qa_annotations``) lists its questions' videos, MSVD-QA's integer ids mapped
    to clip names through ``qa_mapping`` or the ``youtube_mapping.txt`` beside it."""
    from videoblip2.annotations import AnnotationError, is_qa_annotation, load_annotations, load_qa_annotations

    if not video_dir:
        raise InputError(f"{path}: an annotation file needs --video-dir, the folder holding the videos")
    folder = Path(video_dir)
    if not folder.is_dir():
        raise InputError(f"--video-dir {folder}: no such folder")
    try:
        if ann_format == "auto" and is_qa_annotation(path):
            if trim is not None:
                raise InputError(f"{path}: --trim needs a caption annotation file with the clips' times, not QA")
            video_ids = list(dict.fromkeys(item.video_id for item in load_qa_annotations(path, video_map=qa_mapping)))
        else:
            # videos without captions (VATEX's test file without enCap) still get features
            video_ids = list(load_annotations(path, split, ann_format, require_captions=False))
    except AnnotationError as e:
        raise InputError(str(e)) from None
    by_stem: dict[str, Path] = {}
    for file in sorted(folder.iterdir()):
        if _is_video(file):
            by_stem.setdefault(file.stem, file)
    # A listed video without a file still becomes an item: it fails ("no such file") into failures.jsonl.
    if trim is None:
        return [VideoItem(v, str(by_stem.get(v, folder / f"{v}.mp4"))) for v in video_ids]
    segments = _segments(path, video_ids, trim, split, ann_format)
    return [VideoItem(v, str(by_stem.get(source, folder / f"{source}.mp4")), (start, end))
            for v, (source, start, end) in segments.items()]


def _from_list(path: Path) -> list[VideoItem]:
    items = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        file = Path(line)
        if not file.is_absolute():
            file = path.parent / file
        items.append(VideoItem(_safe_id(file.stem, f"{path}: line {lineno}"), str(file)))
    return items


def list_videos(inputs: Sequence[str], video_dir: str | None = None, split: str | None = None,
                ann_format: str = "auto", trim: str | None = None, qa_mapping: str | None = None) -> list[VideoItem]:
    """Videos to process, sorted by id (the file stem).

    Each input is a video file, a folder (searched recursively for video files), a list file
    (.txt/.lst/.list: one path per line, relative to the list file), or an annotation file (captions or QA
    questions, MSVD-QA with ``qa_mapping``): .json, .csv,
    .tsv, or a .txt when ``ann_format`` names a format (``videoblip2.annotations`` formats; ids looked up as
    ``{video_dir}/{id}.*``, ``split`` selects). ``trim`` ("name" or "ann") takes each annotated clip from the
    full video ``{video_dir}/{youtube_id}.*``, its segment parsed from the clip name or read from the
    annotation's start/end fields.

    Every id (an annotation's, a file's stem) must be a plain file name (`videoblip2.ids.check_video_id`).

    Raises:
        InputError: a missing input, two different files with the same id, --trim without an annotation,
            an unsafe video id (the message names the file, the line or record, the id and the rule).
    """
    items: list[VideoItem] = []
    for raw in inputs:
        path = Path(raw)
        is_annotation = path.suffix.lower() in (".json", ".csv", ".tsv") or (
            ann_format != "auto" and path.suffix.lower() in LIST_SUFFIXES)
        if trim is not None and not is_annotation:
            raise InputError(f"{path}: --trim {trim} takes the clips of an annotation file (.json/.csv/.tsv, or "
                             "a .txt with --ann-format msvd); videos, folders and lists are used whole")
        if path.is_dir():
            items += [VideoItem(f.stem, str(f)) for f in _videos_in(path)]  # checked ids
        elif is_annotation:
            if not path.is_file():
                raise InputError(f"{path}: no such annotation file")
            items += _from_annotations(path, video_dir, split, ann_format, trim, qa_mapping)
        elif path.suffix.lower() in LIST_SUFFIXES:
            if not path.is_file():
                raise InputError(f"{path}: no such list file")
            items += _from_list(path)
        elif path.is_file() or _is_video(path):
            # a missing video file fails later, per video
            items.append(VideoItem(_safe_id(path.stem, f"{path}: file name"), str(path)))
        else:
            raise InputError(f"{path}: not a video file, folder, list file (.txt) or annotation file (.json)")
    unique: dict[str, VideoItem] = {}
    for item in items:
        other = unique.setdefault(item.video_id, item)
        if os.path.abspath(other.path) != os.path.abspath(item.path):
            raise InputError(f"two videos share the id {item.video_id!r}: {other.path} and {item.path}")
    return [unique[k] for k in sorted(unique)]


def _videos_in(folder: Path) -> list[Path]:
    """`videoblip2.extract.videos_in`: a file name that is no safe video id is an InputError."""
    try:
        return videos_in(folder)
    except UnsafeIdError as error:
        raise InputError(str(error)) from None


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> (i, N): this machine takes every N-th video starting at i (0 <= i < N)."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise InputError(f"--shard {text!r}: expected i/N, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard {text!r}: need 0 <= i < N")
    return index, count


def take_shard(items: Sequence[VideoItem], index: int, count: int) -> list[VideoItem]:
    """Every ``count``-th item from ``index``, over the id-sorted list (the same split on every machine)."""
    return list(items[index::count])


# ----------------------------------------------------------------------------------------------
# files


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` via a temporary file and a rename: readers never see half a file."""
    with atomic_open(path, "wb") as f:
        np.save(f, array)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_json(path, obj, indent=2, sort_keys=True)


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` (fcntl; the video and audio extractors both edit meta.json)."""
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_meta(root: str | os.PathLike) -> dict[str, Any]:
    path = Path(root) / META_NAME
    if not path.is_file():
        return {}
    meta = json.loads(path.read_text())
    if not isinstance(meta, dict):
        raise MetaMismatchError(f"{path}: not a JSON object")
    return meta


def update_meta(root: str | os.PathLike, section: str, entry: dict[str, Any] | Callable[[], dict[str, Any]],
                check: Sequence[str] = (), has_features: bool = False) -> dict[str, Any]:
    """Merge ``entry`` into ``meta.json[section]`` (locked read-modify-write, atomic replace).

    ``entry`` may be a function: it is then called under the lock, so what it reads from disk (the no-audio
    markers of every shard) cannot change before the write. If the folder already has features
    (``has_features``) and the recorded section disagrees with ``entry`` on any key in ``check``, raise
    MetaMismatchError instead of mixing two kinds of features (a key the folder's meta.json does not record,
    from an older extractor, is not compared).
    """
    root = Path(root)
    with _locked(root / ".meta.lock"):
        if callable(entry):
            entry = entry()
        meta = read_meta(root)
        old = meta.get(section) or {}
        if has_features and old:
            _check_settings(root, section, old, entry, check)
        meta[section] = {**old, **entry}
        write_json_atomic(root / META_NAME, meta)
    return meta


def check_settings(root: str | os.PathLike, section: str, entry: dict[str, Any], check: Sequence[str]) -> None:
    """MetaMismatchError if ``meta.json[section]`` records other values for the keys of ``check`` that ``entry``
    holds (a run with nothing left to do is refused all the same: its settings are not the folder's)."""
    old = read_meta(root).get(section) or {}
    if old:
        _check_settings(Path(root), section, old, entry, [k for k in check if k in entry])


def _check_settings(root: Path, section: str, old: dict[str, Any], entry: dict[str, Any],
                    check: Sequence[str]) -> None:
    unrecorded = [k for k in check if k not in old and entry.get(k) is not None]
    if unrecorded:
        logging.getLogger("features").warning(
            "%s: the %s section does not record %s (an older extractor); cannot check them",
            root / META_NAME, section, ", ".join(unrecorded))
    diff = {k: (old.get(k), entry.get(k)) for k in check if k in old and old.get(k) != entry.get(k)}
    if diff:
        shown = ", ".join(f"{k}: {a!r} (on disk) vs {b!r} (now)" for k, (a, b) in diff.items())
        raise MetaMismatchError(
            f"{root / META_NAME}: the {section} features there were extracted with other settings "
            f"({shown}); use another --out folder or delete {root / section}")


def weights_fingerprint(path: str | None) -> str | None:
    """``"sha256:<hex>"`` of a local weights file (what identifies its content; every OpenAI CLIP file is
    called ``open_clip_model.safetensors``), None for a tag (``openai``: open_clip pins it) or random weights.
    Costs one read of the file: ~2 s for 1.7 GB (BENCHMARKS.md), once per run that has videos to do."""
    if not path or not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def check_output(out: Path, kind: str, failures: str | None) -> Path:
    """Before any work: ``out`` is (or can be made) a writable folder, and so are ``out/kind`` and the
    failure log's folder. A read-only mount or a file in the way is an InputError (exit 2), not a traceback
    after the model was loaded. Also removes temporary files left by a killed run (`stale_temp_files`)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file, expected the features folder")
    folder = out / kind
    places = [(out, "--out"), (folder, "--out")] + ([(Path(failures).parent, "--failures")] if failures else [])
    for place, flag in places:
        try:
            place.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"{flag}: cannot create the folder {place} ({error.strerror or error})") from None
        try:
            check_writable_dir(place, what=flag)
        except PermissionError as error:
            raise InputError(str(error)) from None
    stale = stale_temp_files(folder) + stale_temp_files(out)
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        logging.getLogger("features").info("removed %d temporary files of a killed run in %s", len(stale), out)
    return folder


class FailureLog:
    """Appends one JSON line per failed video: ``{"video_id", "path", "extractor", "error", "time", "host"}``."""

    def __init__(self, path: str | os.PathLike, extractor: str):
        self.path = Path(path)
        self.extractor = extractor
        self.count = 0

    def record(self, item: VideoItem, error: str, traceback_text: str | None = None) -> None:
        self.count += 1
        entry = {"video_id": item.video_id, "path": item.path, "extractor": self.extractor, "error": error,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": socket.gethostname()}
        if traceback_text:  # unexpected exceptions (not ExtractionError) keep their trace
            entry["traceback"] = traceback_text
        line = json.dumps(entry)
        with open(self.path, "a") as f:  # one small O_APPEND write per line: shards can share the file
            f.write(line + "\n")


def finished_ids(folder: Path, suffixes: Sequence[str]) -> set[str]:
    """Ids that already have an output file (``{id}{suffix}``) in ``folder``: skipped on resume."""
    done: set[str] = set()
    if folder.is_dir():
        for entry in os.scandir(folder):
            for suffix in suffixes:
                if entry.name.endswith(suffix) and not entry.name.startswith("."):
                    done.add(entry.name[: -len(suffix)])
    return done


@dataclass
class ShardPlan:
    """What an extraction run works on (:func:`plan_shard`)."""

    out: Path  # --out
    folder: Path  # --out/kind, the feature files
    items: list[VideoItem]  # this shard's videos
    done: set[str]  # ids with an output file already (skipped on resume)
    pending: list[VideoItem]  # what is left to extract (at most --limit)
    skipped: int  # this shard's videos that are done
    failures: FailureLog


def plan_shard(args: argparse.Namespace, kind: str, suffixes: Sequence[str],
               check_args: Callable[[], None] | None = None) -> ShardPlan:
    """The start of both extractors' runs: this shard's videos (`list_videos`, `take_shard`), ``check_args``
    (argument checks that follow the listing), the output folders (`check_output`), what is done and what is
    left (`finished_ids` with ``suffixes``, `iter_pending`), the failure log; logs the counts."""
    out = Path(args.out)
    shard_index, shard_count = parse_shard(args.shard)
    videos = list_videos(args.inputs, args.video_dir, args.split, args.ann_format, args.trim, args.qa_mapping)
    items = take_shard(videos, shard_index, shard_count)
    if check_args is not None:
        check_args()
    folder = check_output(out, kind, args.failures)
    done = finished_ids(folder, suffixes)
    skipped = sum(item.video_id in done for item in items)
    pending = list(iter_pending(items, done, args.limit))
    failures = FailureLog(args.failures or out / FAILURES_NAME, kind)
    logging.getLogger(f"videoblip2.features.{kind}").info(
        "%d videos in shard %s, %d already done, %d to do", len(items), args.shard, skipped, len(pending))
    return ShardPlan(out, folder, items, done, pending, skipped, failures)


# ----------------------------------------------------------------------------------------------
# decoding workers + batching


class DecodeDataset(torch.utils.data.Dataset):
    """Runs ``decode(item)`` in a DataLoader worker; a failure becomes ``{"error": ...}`` instead of a crash."""

    def __init__(self, items: Sequence[VideoItem], decode: Callable[[VideoItem], dict[str, Any]]):
        self.items = list(items)
        self.decode = decode

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        try:
            out = self.decode(item)
        except ExtractionError as e:
            out = {"error": str(e)}
        except Exception as e:  # a bug or an odd file must not stop a 10k-video run; the log keeps the trace
            out = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=4)}
        out["index"] = index
        return out


def decode_loader(dataset: DecodeDataset, workers: int, device: torch.device) -> torch.utils.data.DataLoader:
    """Decoded videos as they come (not in order): ``workers`` processes, each a few videos ahead."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,  # one video per item; RowBatcher does the batching across videos
        num_workers=workers,
        prefetch_factor=4 if workers > 0 else None,
        pin_memory=device.type == "cuda",
        in_order=False,  # a slow video must not hold back the ones decoded after it
    )


@dataclass
class _Pending:
    key: Any
    rows: Any
    size: int
    outputs: list[torch.Tensor] = field(default_factory=list)
    encoded: int = 0


class RowBatcher:
    """Packs the rows (frames, audio windows) of consecutive videos into model batches of exactly
    ``batch_size`` rows (only the last, at ``flush``, is smaller) and hands back each video, in order,
    once all its rows are encoded. A video's rows may span two batches.

    Args:
        encode: rows -> ``(n, D)`` tensor.
        batch_size: rows per model call.
        collate: joins row chunks into one batch (``torch.cat`` for tensors, list concat for lists).
    """

    def __init__(self, encode: Callable[[Any], torch.Tensor], batch_size: int,
                 collate: Callable[[list[Any]], Any] = torch.cat):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.encode = encode
        self.batch_size = batch_size
        self.collate = collate
        self._pending: deque[_Pending] = deque()
        self._cursor = 0  # index in _pending of the first video with rows not yet batched
        self._row = 0  # its first row not yet batched
        self._queued = 0  # rows added but not yet encoded
        self.batch_sizes: list[int] = []  # every model batch, for tests and benchmarks

    def add(self, key: Any, rows: Any) -> list[tuple[Any, torch.Tensor]]:
        """Queue a video's rows (at least one); returns the videos that the full batches completed."""
        if len(rows) == 0:
            raise ValueError(f"{key}: no rows to encode")
        self._pending.append(_Pending(key, rows, len(rows)))
        self._queued += len(rows)
        done = []
        while self._queued >= self.batch_size:
            done += self._run(self.batch_size)
        return done

    def flush(self) -> list[tuple[Any, torch.Tensor]]:
        """Encode whatever is queued; returns every remaining video."""
        done = []
        while self._queued > 0:
            done += self._run(min(self._queued, self.batch_size))
        return done

    def _run(self, size: int) -> list[tuple[Any, torch.Tensor]]:
        chunks, owners = [], []
        need = size
        while need > 0:
            video = self._pending[self._cursor]
            take = min(need, video.size - self._row)
            chunks.append(video.rows[self._row : self._row + take])
            owners.append((video, take))
            need -= take
            self._row += take
            if self._row == video.size:
                self._cursor, self._row = self._cursor + 1, 0
        out = self.encode(self.collate(chunks))  # (size, D)
        if len(out) != size:
            raise RuntimeError(f"encode returned {len(out)} rows for a batch of {size}")
        self.batch_sizes.append(size)
        self._queued -= size
        start = 0
        for video, take in owners:
            video.outputs.append(out[start : start + take])
            video.encoded += take
            start += take
        done = []
        while self._pending and self._pending[0].encoded == self._pending[0].size:
            video = self._pending.popleft()
            self._cursor -= 1
            done.append((video.key, torch.cat(video.outputs)))
        return done


# ----------------------------------------------------------------------------------------------
# command line + run


@dataclass
class RunSummary:
    total: int = 0  # videos in this shard
    skipped: int = 0  # already finished (resume)
    written: int = 0
    failed: int = 0
    no_audio: list[str] = field(default_factory=list)
    cut_short: list[str] = field(default_factory=list)  # --trim: clips whose segment ran past the video's end
    rotated: int = 0  # videos whose frames the display matrix turned upright (rotated / mirrored streams)
    seconds: float = 0.0  # wall time of the decode + encode loop (model loading excluded)
    encode_seconds: float = 0.0  # of which inside the model (incl. host<->device copies)
    failures: Path | None = None

    @property
    def videos_per_second(self) -> float:
        processed = self.written + self.failed + len(self.no_audio)
        return processed / self.seconds if self.seconds > 0 else 0.0

    def line(self, kind: str) -> str:
        text = (f"{kind}: {self.total} videos in this shard, {self.skipped} already done, {self.written} written, "
                f"{self.failed} failed")
        if kind == "audio":
            text += f", {len(self.no_audio)} without sound"
        if self.cut_short:
            shown = ", ".join(self.cut_short[:3]) + (", ..." if len(self.cut_short) > 3 else "")
            text += f", {len(self.cut_short)} cut short (segment past the end of the video: {shown})"
        if self.rotated:
            text += f", {self.rotated} turned upright by their display matrix"
        text += f" ({self.seconds:.1f} s, {self.videos_per_second:.2f} videos/s)"
        if self.failed:
            text += f"; see {self.failures}"
        return text


def run_extraction(
    *,
    items: Sequence[VideoItem],
    decode: Callable[[VideoItem], dict[str, Any]],
    rows_of: Callable[[dict[str, Any]], Any],
    encode: Callable[[Any], torch.Tensor],
    collate: Callable[[list[Any]], Any],
    batch_size: int,
    workers: int,
    device: torch.device,
    write: Callable[[VideoItem, torch.Tensor], None],
    skip: Callable[[VideoItem, dict[str, Any]], str | None] = lambda item, decoded: None,
    failures: FailureLog,
    desc: str,
) -> RunSummary:
    """Decode ``items`` in workers, encode in shared batches, ``write`` each video; never stops on a bad video.

    ``decode(item)`` runs in the workers and returns a dict; ``rows_of(decoded)`` gives the rows to encode;
    ``skip(item, decoded)`` returns a reason for a video that gets no features but is not a failure (no
    sound); ``write(item, features)`` may raise ExtractionError (e.g. non-finite features) -> a failure.
    """
    from tqdm.auto import tqdm

    summary = RunSummary(total=len(items), failures=failures.path)
    start = time.perf_counter()

    def timed_encode(rows: Any) -> torch.Tensor:
        begin = time.perf_counter()
        out = encode(rows)  # returns CPU tensors, so device work is finished here
        summary.encode_seconds += time.perf_counter() - begin
        return out

    batcher = RowBatcher(timed_encode, batch_size, collate)
    loader = decode_loader(DecodeDataset(items, decode), workers, device)
    with tqdm(total=len(items), desc=desc, unit="video", dynamic_ncols=True, file=sys.stderr) as bar:
        def finish(done: Iterable[tuple[VideoItem, torch.Tensor]]) -> None:
            for item, features in done:
                try:
                    write(item, features)
                    summary.written += 1
                except ExtractionError as e:
                    failures.record(item, str(e))
                    summary.failed += 1
                bar.update(1)

        for decoded in loader:
            item = items[int(decoded["index"])]
            if "error" in decoded:
                failures.record(item, decoded["error"], decoded.get("traceback"))
                summary.failed += 1
                bar.update(1)
                bar.set_postfix(failed=summary.failed)
                continue
            if decoded.get("cut_short"):
                logging.getLogger("features").warning("%s: %s", item.video_id, decoded["cut_short"])
                summary.cut_short.append(item.video_id)
            if decoded.get("orientation"):
                summary.rotated += 1
            reason = skip(item, decoded)
            if reason is not None:
                summary.no_audio.append(item.video_id)
                bar.update(1)
                continue
            finish(batcher.add(item, rows_of(decoded)))
        finish(batcher.flush())
    summary.seconds = time.perf_counter() - start
    return summary


def iter_pending(items: Sequence[VideoItem], done: set[str], limit: int | None) -> Iterator[VideoItem]:
    count = 0
    for item in items:
        if item.video_id in done:
            continue
        if limit is not None and count >= limit:
            return
        count += 1
        yield item


def feature_writer(folder: Path, model_name: str) -> Callable[[VideoItem, torch.Tensor], None]:
    """Writes one video's features as float16 `{folder}/{video_id}.npy`, atomically, refusing NaN/inf."""

    def write(item: VideoItem, features: torch.Tensor) -> None:
        array = features.numpy()
        if not np.isfinite(array).all():
            raise ExtractionError(f"{item.path}: non-finite {model_name} features")
        save_npy_atomic(folder / f"{item.video_id}.npy", array.astype(np.float16))

    return write


def cli_main(run: Callable[[argparse.Namespace], "RunSummary"], args: argparse.Namespace, kind: str) -> int:
    """Shared `main` of the extractors: exit 0 if every video worked, 1 if any failed, 2 for bad input."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("features").setLevel(logging.INFO)
    try:
        summary = run(args)
    except (InputError, ExtractorModelError, MetaMismatchError, SourceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # every file written so far is complete (temporary name + rename): a re-run resumes after the last one
        where = e.filename or args.out
        print(f"error: disk full while writing {where} (in {Path(args.out).resolve()}); the features written so "
              "far are complete: free some space and run the same command again to resume", file=sys.stderr)
        return 2
    print(summary.line(kind), file=sys.stderr)
    return 1 if summary.failed else 0
