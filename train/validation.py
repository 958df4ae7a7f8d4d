"""Validation during training: teacher-forced loss and greedy-decoding CIDEr-D."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from train.distributed import DistInfo, all_gather_objects, all_reduce_sum
from train.logger import print_main
from train.precision import autocast, uses_bf16
from videoblip2.annotations import QAItem
from videoblip2.data import IGNORE_INDEX, CaptionDataset, FeatureStore, QADataset, VideoDataset
from videoblip2.decoding import DecodingOptions, bad_ending_rate
from videoblip2.modeling import VideoBLIP2
from videoblip2.predict import predict_answers, predict_captions


def model_inputs(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The model's inputs in a batch: features, masks, and the per-sample prompts of a QA batch."""
    return {k: batch[k] for k in ("video", "video_mask", "audio", "audio_mask", "prompt") if k in batch}


def caption_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed token cross-entropy (fp32) of (B, L, V) logits against (B, L) labels padded with -100."""
    return F.cross_entropy(logits.float().flatten(0, 1), labels.to(logits.device).flatten(),
                           ignore_index=IGNORE_INDEX, reduction="sum")


@torch.no_grad()
def teacher_forced_loss(model: VideoBLIP2, dataset: CaptionDataset | QADataset, dist: DistInfo, batch_size: int,
                        precision: str) -> tuple[float, float]:
    """(summed token cross-entropy, label tokens) over every item of `dataset`, summed over the processes
    (each takes every world_size-th item)."""
    loss_sum, tokens = 0.0, 0.0
    rows = np.arange(dist.rank, len(dataset), dist.world_size)
    for start in range(0, len(rows), batch_size):
        batch = dataset.batch(rows[start: start + batch_size])
        with autocast(model.device, precision):
            logits = model(**model_inputs(batch), labels=batch["labels"], return_loss=False).logits
        loss_sum += caption_loss_sum(logits, batch["labels"]).item()
        tokens += float((batch["labels"] != IGNORE_INDEX).sum())
    loss_sum, tokens = all_reduce_sum(np.array([loss_sum, tokens]), dist)
    return float(loss_sum), float(tokens)


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

    metrics = ("val_loss", "val_cider")

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
        loss_sum, tokens = teacher_forced_loss(model, self.pairs, dist, self.batch_size, self.precision)
        captions = generate_captions(model, self.videos, batch_size=self.batch_size, precision=self.precision,
                                     decoding=self.decoding,
                                     positions=np.arange(dist.rank, len(self.videos), dist.world_size))
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


class QAValidator:
    """QA validation: teacher-forced answer loss and the accuracy of decoded answers (eval.qa.qa_scores).

    Open-ended answers by default (`decoding`: the validation decoding flags, default greedy); `candidates`
    (the training answers) ranks them instead, as `predict --closed-vocabulary` does. With several processes
    each answers every world_size-th question.
    """

    metrics = ("val_qa_loss", "val_qa_accuracy")

    def __init__(self, model: VideoBLIP2, store: FeatureStore, items: Sequence[QAItem], dist: DistInfo,
                 batch_size: int, precision: str, candidates: Sequence[str] | None = None,
                 decoding: DecodingOptions | None = None):
        self.dist, self.batch_size, self.precision, self.candidates = dist, batch_size, precision, candidates
        self.decoding = decoding or DecodingOptions()
        self.questions = QADataset(store, items, model.t5_tokenizer, model.qformer_tokenizer, model.config)
        if self.questions.truncation_note("validation questions"):
            print_main(dist, self.questions.truncation_note("validation questions"))
        if self.questions.labels is None:
            raise ValueError("the QA validation questions have no answers")

    @torch.no_grad()
    def __call__(self, model: VideoBLIP2) -> dict[str, Any]:
        from eval.qa import qa_scores

        dist, was_training = self.dist, model.training
        model.eval()
        loss_sum, tokens = teacher_forced_loss(model, self.questions, dist, self.batch_size, self.precision)
        use_bf16 = uses_bf16(model.device, self.precision)
        answers = predict_answers(model, self.questions, batch_size=self.batch_size, candidates=self.candidates,
                                  decoding=self.decoding,
                                  progress=False, indices=np.arange(dist.rank, len(self.questions), dist.world_size),
                                  autocast_dtype=torch.bfloat16 if use_bf16 else None)
        if dist.distributed:
            for part in all_gather_objects(answers, dist):
                answers.update(part)
        scores = qa_scores(answers, self.questions.items)
        model.train(was_training)
        items = self.questions.items
        return {
            "val_qa_loss": loss_sum / max(tokens, 1.0),
            "val_qa_accuracy": scores["accuracy"],
            "val_qa_majority": scores["majority_baseline"],
            "val_qa_questions": scores["num_questions"],
            "val_qa_per_type": {t: s["accuracy"] for t, s in scores["per_type"].items()},
            "qa_examples": [{"question_id": i.question_id, "question": i.question, "answer": answers[i.question_id],
                             "reference": i.answer} for i in items[:3]],
        }


class Validators:
    """Several validations (captions, QA) as one: their results merged. A QA-only run reports its answer loss
    as `val_loss` too, the loss every run plots."""

    def __init__(self, validators: Sequence[Validator | QAValidator]):
        self.validators = list(validators)
        metrics = [m for v in self.validators for m in v.metrics]
        if "val_loss" not in metrics and "val_qa_loss" in metrics:
            metrics.append("val_loss")
        self.metrics = tuple(metrics)

    def __call__(self, model: VideoBLIP2) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for validator in self.validators:
            out.update(validator(model))
        if "val_loss" not in out and "val_qa_loss" in out:
            out["val_loss"] = out["val_qa_loss"]
        return out
