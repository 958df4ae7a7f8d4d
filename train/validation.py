"""Validation during training: teacher-forced loss and greedy-decoding CIDEr-D."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from train.distributed import DistInfo, all_gather_objects, all_reduce_sum
from train.precision import autocast, uses_bf16
from videoblip2.data import IGNORE_INDEX, CaptionDataset, FeatureStore, VideoDataset
from videoblip2.decoding import DecodingOptions, bad_ending_rate
from videoblip2.modeling import VideoBLIP2
from videoblip2.predict import predict_captions


def model_inputs(batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {k: batch[k] for k in ("video", "video_mask", "audio", "audio_mask")}


def caption_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed token cross-entropy (fp32) of (B, L, V) logits against (B, L) labels padded with -100."""
    return F.cross_entropy(logits.float().flatten(0, 1), labels.to(logits.device).flatten(),
                           ignore_index=IGNORE_INDEX, reduction="sum")


def generate_captions(model: VideoBLIP2, videos: VideoDataset, *, batch_size: int = 32, precision: str = "auto",
                      decoding: DecodingOptions | None = None,
                      positions: Sequence[int] | np.ndarray | None = None) -> dict[str, str]:
    """{video_id: caption} for `videos` (or its `positions`), greedy by default, in eval mode."""
    use_bf16 = uses_bf16(model.device, precision)
    return predict_captions(model, videos, batch_size=batch_size, progress=False, decoding=decoding or DecodingOptions(),
                            indices=positions, autocast_dtype=torch.bfloat16 if use_bf16 else None)


class Validator:
    """Validation loss (teacher-forced, every (video, caption) pair), CIDEr-D and bad-ending rate of decoded captions.

    Decoding: `decoding` (the --num-beams, --block-bad-endings, ... flags of train_ce / train_scst; default greedy).

    The CIDEr-D is eval.cider.CiderD with document frequencies over the *validation* references (fast, no
    Java; close to pycocoevalcap's Cider on the same split, which also takes its df from the references
    scored). Final numbers come from `python -m eval.evaluate`. With several processes each one takes every
    world_size-th video / pair and the results are gathered.
    """

    def __init__(self, model: VideoBLIP2, store: FeatureStore, annotations: Mapping[str, Sequence[str]],
                 dist: DistInfo, batch_size: int, precision: str, decoding: DecodingOptions | None = None):
        from eval.cider import CiderD

        self.decoding = decoding or DecodingOptions()
        self.dist = dist
        self.batch_size = batch_size
        self.precision = precision
        refs = {v: list(annotations[v]) for v in store.video_ids}
        self.pairs = CaptionDataset(store, refs, model.t5_tokenizer, model.config.max_caption_len)
        self.videos = VideoDataset(store)
        self.refs = refs
        self.cider = CiderD(refs)

    @torch.no_grad()
    def __call__(self, model: VideoBLIP2) -> dict[str, Any]:
        dist, was_training = self.dist, model.training
        model.eval()
        loss_sum, tokens = 0.0, 0.0
        pair_idx = np.arange(dist.rank, len(self.pairs), dist.world_size)
        for start in range(0, len(pair_idx), self.batch_size):
            batch = self.pairs.batch(pair_idx[start: start + self.batch_size])
            with autocast(model.device, self.precision):
                logits = model(**model_inputs(batch), labels=batch["labels"], return_loss=False).logits
            loss_sum += caption_loss_sum(logits, batch["labels"]).item()
            tokens += float((batch["labels"] != IGNORE_INDEX).sum())
        captions = generate_captions(model, self.videos, batch_size=self.batch_size, precision=self.precision,
                                     decoding=self.decoding, positions=np.arange(dist.rank, len(self.videos), dist.world_size))
        loss_sum, tokens = all_reduce_sum(np.array([loss_sum, tokens]), dist)
        if dist.distributed:
            for part in all_gather_objects(captions, dist):
                captions.update(part)
        ids = self.videos.video_ids
        scores = self.cider.score([captions[v] for v in ids], ids)
        model.train(was_training)
        return {
            "val_loss": float(loss_sum / max(tokens, 1.0)),
            "val_cider": float(scores.mean()),
            "val_bad_endings": bad_ending_rate(captions[v] for v in ids),
            "val_videos": len(ids),
            "examples": [{"video_id": v, "caption": captions[v], "reference": self.refs[v][0]} for v in ids[:3]],
        }
