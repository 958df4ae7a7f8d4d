"""Feature datasets: precomputed CLIP frame / CLAP audio features -> padded, masked batches.

On-disk layout (written by ``features/`` or ``videoblip2.synth``)::

    FEATURES/video/{video_id}.npy   float16/32 [T_v, video_dim]   (one row per sampled frame)
    FEATURES/audio/{video_id}.npy   float16/32 [T_a, audio_dim]   (one row per audio window)
    FEATURES/meta.json              optional; meta["audio"]["no_audio"] lists videos without sound

A video that meta.json lists as ``no_audio`` or that has an ``audio/{video_id}.noaudio.json`` marker is a video
without sound: its ``audio_mask`` row is all False. A video without an audio file is silent too, unless
meta.json records an audio extraction (``audio.window_s``): then it failed or was never processed, an error.

Batch contract (a plain dict, what ``VideoBLIP2.forward`` / ``generate`` take)::

    "video_ids":  list[str]                  B
    "video":      float32 (B, max_frames, video_dim)
    "video_mask": bool    (B, max_frames)    True = real frame
    "audio":      float32 (B, max_audio_windows, audio_dim)
    "audio_mask": bool    (B, max_audio_windows)  all False for a video without sound
    "labels":     int64   (B, L)  caption token ids ending with EOS, padded with -100  (CaptionDataset)
    "caption_index": int64 (B,)   index of the caption in annotations[video_id]          (CaptionDataset)
    "refs":       list[list[str]] reference captions                     (VideoDataset with refs)
    "prompt":     PromptTokens    the question in the QA template, pre-tokenized for both tokenizers (QADataset)
    "labels":     int64   (B, L)  answer token ids ending with EOS, padded with -100    (QADataset with answers)
    "question_ids": list[str]     B                                                     (QADataset)

The fast path: ``FeatureStore(preload=True)`` holds every video in padded float16 tensors (optionally on
the GPU, ``store.to("cuda")``), so ``dataset.batch(indices)`` is a handful of tensor gathers with no
per-item Python work and no worker processes; iterate with :func:`index_batches`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
import torch

from .ids import check_video_id

if TYPE_CHECKING:
    from .annotations import QAItem
    from .config import VideoBLIP2Config

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label padding, ignored by the cross-entropy loss

Indices = Sequence[int] | np.ndarray | torch.Tensor


class FeatureError(ValueError):
    """A feature file is missing, unreadable or has bad contents; the message names the file."""


class FeatureFileError(FeatureError):
    """A feature file is missing or cannot be read as a numeric .npy array."""


class FeatureShapeError(FeatureError):
    """A feature array has the wrong number of dimensions, the wrong feature dim, or no rows."""


class FeatureValueError(FeatureError):
    """A feature array contains NaN or inf."""


class DataError(ValueError):
    """Annotations and features do not fit together (e.g. a video without captions)."""


# ----------------------------------------------------------------------------------------------
# pure helpers


def uniform_indices(length: int, max_len: int) -> np.ndarray:
    """Row indices that subsample a sequence of ``length`` rows to at most ``max_len`` rows, uniformly.

    If ``length <= max_len`` every row is kept: ``arange(length)``. Otherwise the sequence is cut into
    ``max_len`` equal segments and the middle row of each is taken:
    ``index_i = floor((i + 0.5) * length / max_len)`` for ``i = 0 .. max_len-1`` (integer arithmetic,
    strictly increasing, first/last segments both represented). E.g. ``uniform_indices(10, 4) ->
    [1, 3, 6, 8]``, ``uniform_indices(32, 16) -> [1, 3, ..., 31]``.

    Returns:
        int64 array of shape ``(min(length, max_len),)``.
    """
    if length < 0 or max_len < 1:
        raise ValueError(f"uniform_indices needs length >= 0 and max_len >= 1, got {length}, {max_len}")
    if length <= max_len:
        return np.arange(length, dtype=np.int64)
    i = np.arange(max_len, dtype=np.int64)
    return ((2 * i + 1) * length) // (2 * max_len)


def pad_or_subsample(features: np.ndarray, max_len: int) -> tuple[np.ndarray, int]:
    """Fit a ``[T, D]`` array into ``[max_len, D]``: uniform subsampling if too long, zero padding after.

    Returns:
        (float16 array ``[max_len, D]``, number of real rows ``min(T, max_len)``).
    """
    rows = features[uniform_indices(features.shape[0], max_len)]
    out = np.zeros((max_len, features.shape[1]), dtype=np.float16)
    out[: rows.shape[0]] = rows
    return out, rows.shape[0]


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) int lengths -> (B, max_len) bool mask, True for positions ``< length``."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def index_batches(
    num_items: int,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
) -> Iterator[np.ndarray]:
    """Yield int64 index arrays covering ``range(num_items)`` in batches (the sampler for ``batch()``).

    Shuffling is deterministic given ``(seed, epoch)``.
    """
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(num_items)
    else:
        order = np.arange(num_items)
    stop = num_items - num_items % batch_size if drop_last else num_items
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def load_feature_file(path: str | os.PathLike, expected_dim: int) -> np.ndarray:
    """Load and validate one ``[T, expected_dim]`` float feature file.

    Raises:
        FeatureFileError: missing or unreadable/corrupt file, non-float dtype.
        FeatureShapeError: ndim != 2, wrong feature dim, zero rows.
        FeatureValueError: NaN or inf values.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise FeatureFileError(f"{path}: feature file not found")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:  # numpy raises ValueError/OSError/EOFError/... for corrupt files
        raise FeatureFileError(f"{path}: cannot read .npy file ({type(error).__name__}: {error})") from None
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
        raise FeatureFileError(f"{path}: expected a float16/float32 array, got {getattr(array, 'dtype', type(array))}")
    if array.ndim != 2:
        raise FeatureShapeError(f"{name} has shape {tuple(array.shape)}, expected 2 dims [T, {expected_dim}] ({path})")
    if array.shape[1] != expected_dim:
        raise FeatureShapeError(f"{name} has dim {array.shape[1]}, config expects {expected_dim} ({path})")
    if array.shape[0] == 0:
        raise FeatureShapeError(f"{name} has 0 rows ({path})")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise FeatureValueError(f"{name} contains {bad} NaN/inf values ({path})")
    if array.dtype != np.float16 and np.abs(array).max() > np.finfo(np.float16).max:
        raise FeatureValueError(f"{name} has values beyond the float16 range used for storage ({path})")
    return array


# ----------------------------------------------------------------------------------------------
# feature store


NO_AUDIO_SUFFIX = ".noaudio.json"  # features.audio's marker of a video without sound
FAILURES_NAME = "failures.jsonl"  # the extractors' failure log in the features folder


def _read_failures(path: Path, extractor: str) -> dict[str, str]:
    """``{video_id: error}`` of an extractor's failure log (last record wins; unreadable lines are skipped)."""
    failures: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("extractor") == extractor and "video_id" in record:
                failures[str(record["video_id"])] = str(record.get("error"))
    return failures


class FeatureStore:
    """Padded video + audio features for a fixed list of videos, preloaded once (or read lazily).

    Args:
        root: the features directory (``video/``, ``audio/``, optional ``meta.json``).
        video_ids: the videos to load, in order; ``store.video_ids`` keeps that order (minus skipped ones).
        max_frames: frames per video after padding / uniform subsampling (``config.max_frames``).
        max_audio_windows: audio windows per video after padding / subsampling.
        video_dim: expected video feature dim (a mismatch raises ``FeatureShapeError``).
        audio_dim: expected audio feature dim (likewise).
        preload: read every file now into float16 tensors ``[N, max_T, D]`` (the fast path). If False,
            only the video files' existence is checked now and files are read on each access.
        skip_bad: instead of raising, skip videos whose files are missing/corrupt/wrong and list them in
            ``store.skipped`` as ``(video_id, message)``. With ``preload=False`` every file is then
            validated once at construction.

    Raises:
        videoblip2.ids.UnsafeIdError: a video id that is not a plain file name (``../x``, ``/abs``, a NUL...),
            before any file is read.

    Attributes (preload=True):
        video: float16 ``(N, max_frames, video_dim)``; video_lengths: int64 ``(N,)``;
        video_mask: bool ``(N, max_frames)``; audio: float16 ``(N, max_audio_windows, audio_dim)``;
        audio_lengths: int64 ``(N,)`` (0 = no sound); audio_mask: bool ``(N, max_audio_windows)``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        video_ids: Sequence[str],
        *,
        max_frames: int,
        max_audio_windows: int,
        video_dim: int = 768,
        audio_dim: int = 512,
        preload: bool = True,
        skip_bad: bool = False,
    ) -> None:
        self.root = Path(root)
        self.max_frames = max_frames
        self.max_audio_windows = max_audio_windows
        self.video_dim = video_dim
        self.audio_dim = audio_dim
        self.preloaded = preload
        self.skipped: list[tuple[str, str]] = []
        self.device = torch.device("cpu")
        if len(set(video_ids)) != len(video_ids):
            raise DataError(f"{self.root}: duplicate video ids in the requested list")
        for position, video_id in enumerate(video_ids):  # {root}/video/{id}.npy: never a path outside root
            check_video_id(video_id, f"{self.root}: requested video {position}")

        self.meta = self._read_meta()
        audio_meta = self.meta.get("audio") or {}
        self._listed_no_audio = set(audio_meta.get("no_audio") or [])
        # audio extraction settings (features.audio and videoblip2.synth write them): the folder was extracted
        self._audio_extracted = "window_s" in audio_meta
        self._audio_failures: dict[str, str] | None = None

        kept: list[str] = []
        has_audio: list[bool] = []
        if preload:  # filled row by row, rows of skipped videos are dropped at the end
            total = len(video_ids)
            video_array = np.zeros((total, max_frames, video_dim), dtype=np.float16)
            audio_array = np.zeros((total, max_audio_windows, audio_dim), dtype=np.float16)
            video_lengths = np.zeros(total, dtype=np.int64)
            audio_lengths = np.zeros(total, dtype=np.int64)
        iterator: Sequence[str] | Any = video_ids
        if preload and len(video_ids) > 200:
            from tqdm.auto import tqdm

            iterator = tqdm(video_ids, desc=f"loading features from {self.root}", unit="video")
        for video_id in iterator:
            try:
                if not self.video_path(video_id).is_file():  # named first: no video features, no audio question
                    raise FeatureFileError(f"{self.video_path(video_id)}: feature file not found")
                sound = self._has_sound(video_id)
                if preload or skip_bad:
                    video = load_feature_file(self.video_path(video_id), video_dim)
                    audio = load_feature_file(self.audio_path(video_id), audio_dim) if sound else None
                    if preload:
                        row = len(kept)
                        video_array[row], video_lengths[row] = pad_or_subsample(video, max_frames)
                        if audio is not None:
                            audio_array[row], audio_lengths[row] = pad_or_subsample(audio, max_audio_windows)
            except FeatureError as error:
                if not skip_bad:
                    raise
                self.skipped.append((video_id, str(error)))
                continue
            kept.append(video_id)
            has_audio.append(sound)

        self.video_ids: list[str] = kept
        self.index: dict[str, int] = {video_id: i for i, video_id in enumerate(kept)}
        self.has_audio = torch.tensor(has_audio, dtype=torch.bool)
        self.no_audio: list[str] = [v for v, s in zip(kept, has_audio) if not s]
        if self.skipped:
            shown = "; ".join(message for _, message in self.skipped[:5])
            logger.warning("%s: skipped %d bad videos (store.skipped lists them): %s%s", self.root,
                           len(self.skipped), shown, " ..." if len(self.skipped) > 5 else "")
        if self.no_audio:
            logger.warning("%s: %d of %d videos have no audio features and are treated as silent (e.g. %s)",
                           self.root, len(self.no_audio), len(kept), ", ".join(self.no_audio[:5]))

        if preload:
            n = len(kept)
            if n < total:
                video_array, audio_array = video_array[:n].copy(), audio_array[:n].copy()
            self.video = torch.from_numpy(video_array)
            self.audio = torch.from_numpy(audio_array)
            self.video_lengths = torch.from_numpy(video_lengths[:n].copy())
            self.audio_lengths = torch.from_numpy(audio_lengths[:n].copy())
            self.video_mask = lengths_to_mask(self.video_lengths, max_frames)
            self.audio_mask = lengths_to_mask(self.audio_lengths, max_audio_windows)

    # paths / metadata ---------------------------------------------------------------------------
    def video_path(self, video_id: str) -> Path:
        return self.root / "video" / f"{video_id}.npy"

    def audio_path(self, video_id: str) -> Path:
        return self.root / "audio" / f"{video_id}.npy"

    def _has_sound(self, video_id: str) -> bool:
        """Audio features exist; False for a silent video (listed in meta.json's ``no_audio`` or marked by
        ``audio/{id}.noaudio.json``). Where meta.json records audio extraction settings (``audio.window_s``:
        the extractor ran on this folder), a video with neither file is an error: it failed or was never
        processed, which is not the same as silent. Without them a missing file means silent (hand-made
        folders)."""
        if video_id in self._listed_no_audio:
            return False
        if self.audio_path(video_id).is_file():
            return True
        if not self._audio_extracted or (self.root / "audio" / f"{video_id}{NO_AUDIO_SUFFIX}").is_file():
            return False
        if self._audio_failures is None:
            self._audio_failures = _read_failures(self.root / FAILURES_NAME, "audio")
        failure = self._audio_failures.get(video_id)
        why = (f"its audio extraction failed ({FAILURES_NAME}: {failure})" if failure else
               "the audio extractor has not processed it (run python -m features.audio on it again)")
        raise FeatureFileError(f"{self.audio_path(video_id)}: no audio features and no {video_id}{NO_AUDIO_SUFFIX} "
                               f"marker, but meta.json records an audio extraction: {why}")

    def _read_meta(self) -> dict[str, Any]:
        path = self.root / "meta.json"
        if not path.is_file():
            return {}
        try:
            meta = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise FeatureFileError(f"{path}: cannot read meta.json ({error})") from None
        if not isinstance(meta, dict):
            raise FeatureFileError(f"{path}: expected a JSON object")
        for key, expected in (("video", self.video_dim), ("audio", self.audio_dim)):
            dim = (meta.get(key) or {}).get("dim")
            if dim is not None and int(dim) != expected:
                raise FeatureShapeError(f"{path}: {key} features have dim {dim}, config expects {expected}")
        return meta

    def __len__(self) -> int:
        return len(self.video_ids)

    def to(self, device: str | torch.device) -> "FeatureStore":
        """Move the preloaded tensors to ``device`` once (in place); returns self."""
        self.device = torch.device(device)
        if self.preloaded:
            for name in ("video", "audio", "video_lengths", "audio_lengths", "video_mask", "audio_mask"):
                setattr(self, name, getattr(self, name).to(self.device))
        return self

    # access -------------------------------------------------------------------------------------
    def item(self, index: int) -> dict[str, Any]:
        """One video, unbatched, read from disk (the per-item path; same values as ``batch``).

        Returns ``{"video_id", "video": float32 (max_frames, video_dim), "video_mask": (max_frames,),
        "audio": float32 (max_audio_windows, audio_dim), "audio_mask": (max_audio_windows,)}`` on CPU.
        """
        video_id = self.video_ids[index]
        video, video_len = pad_or_subsample(load_feature_file(self.video_path(video_id), self.video_dim),
                                            self.max_frames)
        if bool(self.has_audio[index]):
            audio, audio_len = pad_or_subsample(load_feature_file(self.audio_path(video_id), self.audio_dim),
                                                self.max_audio_windows)
        else:
            audio, audio_len = np.zeros((self.max_audio_windows, self.audio_dim), dtype=np.float16), 0
        return {
            "video_id": video_id,
            "video": torch.from_numpy(video).float(),
            "video_mask": torch.arange(self.max_frames) < video_len,
            "audio": torch.from_numpy(audio).float(),
            "audio_mask": torch.arange(self.max_audio_windows) < audio_len,
        }

    def batch(self, indices: Indices, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
        """Gather videos ``indices`` (positions in ``store.video_ids``) into a batch dict, on ``store.device``.

        With ``preload=True`` this is four tensor gathers; otherwise files are read (per-item path).
        Returns the feature part of the batch contract: video_ids, video (B, T_v, Dv) in ``dtype``,
        video_mask (B, T_v), audio (B, T_a, Da), audio_mask (B, T_a).
        """
        if not self.preloaded:
            out = collate_features([self.item(i) for i in _as_list(indices)])
            for key in ("video", "audio"):
                out[key] = out[key].to(device=self.device, dtype=dtype)
            for key in ("video_mask", "audio_mask"):
                out[key] = out[key].to(self.device)
            return out
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64) if not isinstance(indices, torch.Tensor)
                                else indices, dtype=torch.long, device=self.device)
        return {
            "video_ids": [self.video_ids[i] for i in _as_list(indices)],
            "video": self.video.index_select(0, index).to(dtype),
            "video_mask": self.video_mask.index_select(0, index),
            "audio": self.audio.index_select(0, index).to(dtype),
            "audio_mask": self.audio_mask.index_select(0, index),
        }


def _as_list(indices: Indices) -> list[int]:
    if isinstance(indices, torch.Tensor):
        return indices.tolist()
    return np.asarray(indices, dtype=np.int64).tolist()


def collate_features(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack unbatched feature items (``FeatureStore.item``) into the feature part of a batch."""
    return {
        "video_ids": [item["video_id"] for item in items],
        "video": torch.stack([item["video"] for item in items]),
        "video_mask": torch.stack([item["video_mask"] for item in items]),
        "audio": torch.stack([item["audio"] for item in items]),
        "audio_mask": torch.stack([item["audio_mask"] for item in items]),
    }


# ----------------------------------------------------------------------------------------------
# modality ablations

from .defaults import ABLATIONS  # noqa: E402,F401  (re-exported; defined where the CLIs read it)


def _video_seed(video_id: str) -> int:
    """A stable 64-bit number per video id (Python's ``hash`` of a str changes between processes)."""
    return int.from_bytes(hashlib.sha256(video_id.encode("utf-8")).digest()[:8], "little")


def frame_permutation(num_frames: int, video_id: str, seed: int = 0) -> np.ndarray:
    """The frame order ``ablate_features(..., "frame-order", seed)`` gives video ``video_id``.

    A permutation of ``range(num_frames)`` drawn from ``np.random.default_rng([seed, sha256(video_id)])``:
    the same for a given (seed, video) whatever else is in the batch, different between videos and seeds.
    A plain random permutation (not a derangement), so with very few frames it can be the identity.
    """
    return np.random.default_rng([seed, _video_seed(video_id)]).permutation(num_frames)


def ablate_features(batch: Mapping[str, Any], mode: str, seed: int = 0) -> dict[str, Any]:
    """Remove or scramble one modality of a feature batch (the diagnostics of ``predict --ablate``).

    A pure function: returns a new dict (other keys such as "labels", "refs" pass through), the input
    batch and its tensors are left unchanged. Shapes, dtypes and devices stay as they are, so the result
    goes wherever the batch went (caption generation, QA answering, the loss).

    Modes:
        ``"audio"``: every video becomes a video without sound: ``audio`` zeroed, ``audio_mask`` all False
            (exactly how the model sees a video whose audio file is absent: its audio queries are masked out
            of T5).
        ``"frame-order"``: the real frames of each video are shuffled by :func:`frame_permutation`
            (needs "video_ids"); padded frames stay at the end, ``video_mask`` is unchanged, so only the
            frames' order (their time embeddings) changes.
        ``"video"``: the visual content is removed: ``video`` zeroed and ``video_mask`` showing only the first
            (zero) frame. One frame stays visible because the video Q-Former's cross-attention needs at least
            one key; a zero frame carries no content (its input is the projection's bias plus the first
            time embedding, the same for every video), so the video queries are a constant.

    Args:
        batch: the feature part of the batch contract (``video``, ``video_mask``, ``audio``, ``audio_mask``,
            and ``video_ids`` for "frame-order"); real frames first, padding after.
        mode: one of :data:`ABLATIONS`.
        seed: the shuffling seed ("frame-order" only).
    """
    if mode not in ABLATIONS:
        raise ValueError(f"unknown ablation {mode!r}; choose one of {', '.join(ABLATIONS)}")
    out = dict(batch)
    if mode == "audio":
        out["audio"] = torch.zeros_like(batch["audio"])
        out["audio_mask"] = torch.zeros_like(batch["audio_mask"], dtype=torch.bool)
    elif mode == "video":
        out["video"] = torch.zeros_like(batch["video"])
        video_mask = torch.zeros_like(batch["video_mask"], dtype=torch.bool)
        video_mask[:, 0] = True
        out["video_mask"] = video_mask
    else:
        if "video_ids" not in batch:
            raise ValueError("the frame-order ablation needs the batch's 'video_ids' (the shuffle is per video)")
        video, video_mask = batch["video"], batch["video_mask"]
        lengths = video_mask.sum(dim=1).tolist()
        order = np.tile(np.arange(video.shape[1], dtype=np.int64), (video.shape[0], 1))  # (B, T)
        for row, (video_id, length) in enumerate(zip(batch["video_ids"], lengths)):
            if not bool(video_mask[row, :length].all()):
                raise ValueError(f"video {video_id}: real frames must come first, padding after (video_mask)")
            order[row, :length] = frame_permutation(length, video_id, seed)
        index = torch.from_numpy(order).to(video.device)
        out["video"] = video.gather(1, index.unsqueeze(-1).expand_as(video))
    return out


# ----------------------------------------------------------------------------------------------
# prompts


class PromptTokens(NamedTuple):
    """Pre-tokenized prompts, one per sample, for both tokenizers; right-padded, masks 1 = real token.

    What ``VideoBLIP2`` takes as ``prompt`` when each sample has its own (questions): datasets build them
    once, so no training or answering step tokenizes text. Padding sits after each prompt, where neither the
    Q-Former (absolute positions) nor T5 (relative positions) sees it.
    """

    qformer_ids: torch.Tensor  # int64 (B, P_q)
    qformer_mask: torch.Tensor  # int64 (B, P_q)
    t5_ids: torch.Tensor  # int64 (B, P_t)
    t5_mask: torch.Tensor  # int64 (B, P_t)

    def to(self, device: str | torch.device) -> PromptTokens:
        return PromptTokens(*(x.to(device) for x in self))

    def select(self, index: torch.Tensor) -> PromptTokens:
        """Rows ``index``, each side cut to its longest selected prompt (no all-padding columns)."""
        out = []
        for ids, mask in ((self.qformer_ids, self.qformer_mask), (self.t5_ids, self.t5_mask)):
            ids, mask = ids.index_select(0, index), mask.index_select(0, index)
            longest = int(mask.sum(dim=1).max()) if len(index) else 0
            out += [ids[:, :longest].contiguous(), mask[:, :longest].contiguous()]
        return PromptTokens(*out)

    @staticmethod
    def concat(parts: Sequence[PromptTokens]) -> PromptTokens:
        """Stack the rows of several ``PromptTokens``, padding each side to the longest (ids 0, mask 0)."""
        out = []
        for field in range(4):
            longest = max(part[field].shape[1] for part in parts)
            out.append(torch.cat([torch.nn.functional.pad(part[field], (0, longest - part[field].shape[1]))
                                  for part in parts]))
        return PromptTokens(*out)


def _pad_rows(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists -> right-padded int64 ids (N, longest) and their 0/1 mask."""
    longest = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for row, tokens in enumerate(rows):
        ids[row, : len(tokens)] = torch.as_tensor(list(tokens), dtype=torch.long)
        mask[row, : len(tokens)] = 1
    return ids, mask


def tokenize_prompts(prompts: Sequence[str], qformer_tokenizer: Any, t5_tokenizer: Any, *,
                     qformer_max_len: int, t5_max_len: int) -> PromptTokens:
    """Tokenize prompts as VideoBLIP2 does (special tokens on, truncated to each side's limit), right-padded.

    ``qformer_max_len`` is ``config.qformer.max_prompt_len``, ``t5_max_len`` is ``config.max_prompt_len``.
    """
    prompts = list(prompts)
    sides = []
    for tokenizer, max_len in ((qformer_tokenizer, qformer_max_len), (t5_tokenizer, t5_max_len)):
        rows = tokenizer(prompts, truncation=True, max_length=max_len)["input_ids"] if prompts else []
        sides += _pad_rows(rows, tokenizer.pad_token_id or 0)
    return PromptTokens(*sides)


def tokenize_questions(questions: Sequence[str], template: str, qformer_tokenizer: Any, t5_tokenizer: Any, *,
                       qformer_max_len: int, t5_max_len: int) -> tuple[PromptTokens, np.ndarray]:
    """Questions in the prompt template, tokenized as ``tokenize_prompts`` does, but a long question is cut,
    never the template: the answer cue ("Short answer:") stays on both sides.

    On each side whose limit the filled template exceeds, the question keeps its longest prefix of whole words
    that fits (binary search, one tokenization per try). Returns the tokens and a bool ``(N,)`` array: which
    questions were cut on either side. Raises DataError if the template alone does not fit a limit.
    """
    questions = list(questions)
    cut = np.zeros(len(questions), dtype=bool)
    sides = []
    for name, tokenizer, max_len in (("qformer.max_prompt_len", qformer_tokenizer, qformer_max_len),
                                     ("max_prompt_len", t5_tokenizer, t5_max_len)):
        def length(text: str) -> int:
            return len(tokenizer(text)["input_ids"])

        if length(template.format(question="")) > max_len:
            raise DataError(f"the QA prompt template {template!r} alone is longer than {name}={max_len} tokens")
        rows = tokenizer([template.format(question=q) for q in questions])["input_ids"] if questions else []
        rows = [list(r) for r in rows]
        for i, row in enumerate(rows):
            if len(row) <= max_len:
                continue
            words = questions[i].split()
            low, high = 0, len(words) - 1  # the longest prefix that fits has `low` words (0 always fits)
            while low < high:
                mid = (low + high + 1) // 2
                if length(template.format(question=" ".join(words[:mid]))) <= max_len:
                    low = mid
                else:
                    high = mid - 1
            rows[i] = list(tokenizer(template.format(question=" ".join(words[:low])))["input_ids"])
            cut[i] = True
        sides += _pad_rows(rows, tokenizer.pad_token_id or 0)
    return PromptTokens(*sides), cut


# ----------------------------------------------------------------------------------------------
# datasets


def tokenize_captions(captions: Sequence[str], tokenizer: Any, max_caption_len: int) -> list[list[int]]:
    """Token ids per caption, each ending with EOS and at most ``max_caption_len`` long.

    The text is tokenized without special tokens, cut to ``max_caption_len - 1`` tokens and EOS is
    appended, so every label sequence ends with EOS whatever the tokenizer's post-processor does.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise DataError("the tokenizer has no eos_token_id; T5 labels must end with EOS")
    if max_caption_len < 2:
        raise DataError(f"max_caption_len must be >= 2, got {max_caption_len}")
    encoded = tokenizer(list(captions), add_special_tokens=False)["input_ids"]
    out = []
    for ids in encoded:
        ids = list(ids)
        while ids and ids[-1] == eos:
            ids.pop()
        out.append(ids[: max_caption_len - 1] + [eos])
    return out


class CaptionDataset:
    """One item per (video, caption) pair, captions tokenized once at construction.

    Args:
        store: the features; its videos define the dataset (annotation keys not in it are ignored,
            e.g. videos the store skipped; a store video without captions is an error).
        annotations: ``{video_id: [caption, ...]}`` (``videoblip2.annotations.load_annotations``).
        tokenizer: the T5 tokenizer (``model.t5_tokenizer``); needs ``eos_token_id``.
        max_caption_len: longest label sequence, EOS included (``config.max_caption_len``).

    Attributes:
        pair_video: int64 ``(P,)`` store index of each pair; pair_caption: int64 ``(P,)`` caption index;
        captions: list[str] of length P; labels: int64 ``(P, max_caption_len)`` padded with -100;
        label_lengths: int64 ``(P,)``.
    """

    def __init__(self, store: FeatureStore, annotations: Mapping[str, Sequence[str]], tokenizer: Any,
                 max_caption_len: int) -> None:
        self.store = store
        missing = [video_id for video_id in store.video_ids if not annotations.get(video_id)]
        if missing:
            raise DataError(f"{len(missing)} videos of {store.root} have no captions: {', '.join(missing[:5])}"
                            + (" ..." if len(missing) > 5 else ""))
        pair_video, pair_caption, captions = [], [], []
        for index, video_id in enumerate(store.video_ids):
            for caption_index, caption in enumerate(annotations[video_id]):
                pair_video.append(index)
                pair_caption.append(caption_index)
                captions.append(caption)
        self.pair_video = np.asarray(pair_video, dtype=np.int64)
        self.pair_caption = np.asarray(pair_caption, dtype=np.int64)
        self.captions = captions
        token_ids = tokenize_captions(captions, tokenizer, max_caption_len)
        self.label_lengths = np.asarray([len(ids) for ids in token_ids], dtype=np.int64)
        labels = np.full((len(token_ids), max_caption_len), IGNORE_INDEX, dtype=np.int64)
        for row, ids in enumerate(token_ids):
            labels[row, : len(ids)] = ids
        self.labels = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.captions)

    def batch(self, indices: Indices) -> dict[str, Any]:
        """Batch of pairs ``indices``: features (``store.batch``) + "labels" (B, L) + "caption_index" (B,).

        ``L`` is the longest label sequence in the batch (padding with -100 after EOS).
        """
        pairs = np.asarray(_as_list(indices), dtype=np.int64)
        out = self.store.batch(self.pair_video[pairs])
        longest = int(self.label_lengths[pairs].max()) if len(pairs) else 0
        if self.labels.device != self.store.device:
            self.labels = self.labels.to(self.store.device)
        index = torch.from_numpy(pairs).to(self.store.device)
        out["labels"] = self.labels[:, :longest].index_select(0, index)  # contiguous: T5 calls labels.view(-1)
        out["caption_index"] = torch.from_numpy(self.pair_caption[pairs]).to(self.store.device)
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One pair, unbatched, read through ``store.item`` (for a torch DataLoader with ``collate``)."""
        item = self.store.item(int(self.pair_video[index]))
        item["labels"] = self.labels[index, : self.label_lengths[index]].cpu()
        item["caption_index"] = int(self.pair_caption[index])
        return item

    @staticmethod
    def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """DataLoader ``collate_fn``: same batch dict as ``batch()``."""
        out = collate_features(items)
        longest = max(len(item["labels"]) for item in items)
        labels = torch.full((len(items), longest), IGNORE_INDEX, dtype=torch.long)
        for row, item in enumerate(items):
            labels[row, : len(item["labels"])] = item["labels"]
        out["labels"] = labels
        out["caption_index"] = torch.tensor([item["caption_index"] for item in items], dtype=torch.long)
        return out


def answer_vocabulary(items: Sequence[QAItem]) -> list[str]:
    """The distinct answers of ``items``, most frequent first, ties in order of appearance: the candidates of
    closed-vocabulary answering ("the answers seen in training").

    Answers are distinct after ``eval.qa.normalize_answer`` (what scoring compares): "Two", "2" and "two."
    are one candidate, counted together and written in its most frequent form (ties: the first seen).
    """
    from .annotations import normalize_answer

    groups: dict[str, dict[str, int]] = {}  # normalised -> {as written (stripped): count}, in order of appearance
    for item in items:
        if item.answer is not None and item.answer.strip():
            answer = item.answer.strip()
            forms = groups.setdefault(normalize_answer(answer), {})
            forms[answer] = forms.get(answer, 0) + 1
    totals = {key: sum(forms.values()) for key, forms in groups.items()}
    order = sorted(groups, key=lambda key: -totals[key])  # sorted() is stable: ties keep their order
    return [max(groups[key], key=lambda form: groups[key][form]) for key in order]  # max: first of equals


class QADataset:
    """One item per question: its video's features, the question in the prompt template, the answer as labels.

    Everything text is tokenized once here: the prompts ``template.format(question=...)`` for both tokenizers
    (``batch()["prompt"]``, a ``PromptTokens`` the model takes as ``prompt``) and the answers as labels ending
    with EOS, like captions (``tokenize_captions``).

    Args:
        store: the features of the questions' videos. Questions about a video the store skipped (bad
            features, ``skip_bad``) are left out and listed in ``dropped``; a video it never had is an error.
        items: the questions (``videoblip2.annotations.load_qa_annotations``); answers may all be None
            (answering an unanswered file): then batches have no "labels".
        t5_tokenizer: the model's ``model.t5_tokenizer``.
        qformer_tokenizer: the model's ``model.qformer_tokenizer``.
        config: the model's config: prompt length limits, ``max_caption_len`` for answers, the template.
        template: overrides ``config.qa_prompt_template``.

    Attributes:
        items: the kept questions; item_video: int64 ``(N,)`` store index of each; prompts: ``PromptTokens``
        of all N; labels: int64 ``(N, max_caption_len)`` padded with -100, or None; label_lengths: ``(N,)``.
    """

    def __init__(self, store: FeatureStore, items: Sequence[QAItem], t5_tokenizer: Any, qformer_tokenizer: Any,
                 config: VideoBLIP2Config, template: str | None = None) -> None:
        self.store = store
        skipped = {video_id for video_id, _ in store.skipped}
        unknown = sorted({item.video_id for item in items if item.video_id not in store.index} - skipped)
        if unknown:
            raise DataError(f"questions about {len(unknown)} videos that are not in the feature store {store.root}: "
                            f"{', '.join(unknown[:5])}" + (" ..." if len(unknown) > 5 else ""))
        self.dropped = [item for item in items if item.video_id in skipped]
        self.items = [item for item in items if item.video_id in store.index]
        if not self.items:
            raise DataError(f"no questions left about the videos of {store.root}")
        self.template = config.qa_prompt_template if template is None else template
        self.item_video = np.asarray([store.index[item.video_id] for item in self.items], dtype=np.int64)
        self.question_ids = [item.question_id for item in self.items]
        self.prompts, truncated = tokenize_questions(
            [item.question for item in self.items], self.template, qformer_tokenizer, t5_tokenizer,
            qformer_max_len=config.qformer.max_prompt_len, t5_max_len=config.max_prompt_len)
        # questions cut to fit the prompt limits (the template, answer cue included, is always whole)
        self.truncated = [item.question_id for item, cut in zip(self.items, truncated) if cut]
        self.prompt_limits = (config.qformer.max_prompt_len, config.max_prompt_len)
        self.labels: torch.Tensor | None = None
        self.label_lengths = np.zeros(len(self.items), dtype=np.int64)
        if all(item.answer is not None for item in self.items):
            token_ids = tokenize_captions([item.answer for item in self.items], t5_tokenizer, config.max_caption_len)
            self.label_lengths = np.asarray([len(ids) for ids in token_ids], dtype=np.int64)
            labels = np.full((len(token_ids), config.max_caption_len), IGNORE_INDEX, dtype=np.int64)
            for row, ids in enumerate(token_ids):
                labels[row, : len(ids)] = ids
            self.labels = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.items)

    def truncation_note(self, name: str) -> str | None:
        """One line for the log when questions were cut to fit the prompt limits (None when none was)."""
        if not self.truncated:
            return None
        q_limit, t5_limit = self.prompt_limits
        return (f"{name}: {len(self.truncated)} of {len(self.items)} questions are longer than the prompt limits "
                f"(qformer.max_prompt_len={q_limit}, max_prompt_len={t5_limit} tokens with the template): their "
                f"last words are cut, the template and its answer cue kept (e.g. question_id "
                f"{self.truncated[0]!r})")

    @property
    def answers(self) -> list[str | None]:
        return [item.answer for item in self.items]

    def batch(self, indices: Indices) -> dict[str, Any]:
        """Questions ``indices``: features (``store.batch``) + "prompt" + "question_ids" (+ "labels" (B, L)).

        Prompts and labels are cut to the longest of the batch.
        """
        rows = np.asarray(_as_list(indices), dtype=np.int64)
        out = self.store.batch(self.item_video[rows])
        device = self.store.device
        if self.prompts.t5_ids.device != device:
            self.prompts = self.prompts.to(device)
            self.labels = self.labels.to(device) if self.labels is not None else None
        index = torch.from_numpy(rows).to(device)
        out["prompt"] = self.prompts.select(index)
        out["question_ids"] = [self.question_ids[i] for i in rows.tolist()]
        if self.labels is not None:
            longest = int(self.label_lengths[rows].max()) if len(rows) else 0
            out["labels"] = self.labels[:, :longest].index_select(0, index)
        return out


class VideoDataset:
    """One item per video (evaluation, generation, SCST).

    Args:
        store: the features.
        video_ids: the videos, in order (default: all of the store's); each must be in the store.
        refs: optional ``{video_id: [captions]}``; adds "refs" (list[list[str]]) to each batch.
    """

    def __init__(self, store: FeatureStore, video_ids: Sequence[str] | None = None,
                 refs: Mapping[str, Sequence[str]] | None = None) -> None:
        self.store = store
        self.video_ids = list(store.video_ids if video_ids is None else video_ids)
        unknown = [video_id for video_id in self.video_ids if video_id not in store.index]
        if unknown:
            raise DataError(f"{len(unknown)} videos are not in the feature store {store.root}: "
                            f"{', '.join(unknown[:5])}" + (" ..." if len(unknown) > 5 else ""))
        self.store_index = np.asarray([store.index[v] for v in self.video_ids], dtype=np.int64)
        self.refs = None
        if refs is not None:
            missing = [video_id for video_id in self.video_ids if not refs.get(video_id)]
            if missing:
                raise DataError(f"{len(missing)} videos have no reference captions: {', '.join(missing[:5])}")
            self.refs = [list(refs[video_id]) for video_id in self.video_ids]

    def __len__(self) -> int:
        return len(self.video_ids)

    def batch(self, indices: Indices) -> dict[str, Any]:
        """Batch of videos ``indices`` (positions in ``self.video_ids``): the feature part (+ "refs")."""
        positions = np.asarray(_as_list(indices), dtype=np.int64)
        out = self.store.batch(self.store_index[positions])
        if self.refs is not None:
            out["refs"] = [self.refs[i] for i in positions.tolist()]
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.store.item(int(self.store_index[index]))
        if self.refs is not None:
            item["refs"] = self.refs[index]
        return item

    @staticmethod
    def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """DataLoader ``collate_fn``: same batch dict as ``batch()``."""
        out = collate_features(items)
        if "refs" in items[0]:
            out["refs"] = [item["refs"] for item in items]
        return out
