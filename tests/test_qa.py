"""Question answering on the model side: QADataset, the QA training task, answering and candidate ranking."""

import dataclasses

import numpy as np
import pytest
import torch

from videoblip2.annotations import QAItem, load_qa_annotations
from videoblip2.data import IGNORE_INDEX, DataError, FeatureStore, QADataset


@pytest.fixture(scope="module")
def qa_items(synth_data):
    return load_qa_annotations(synth_data / "avqa-train.json")


@pytest.fixture(scope="module")
def qa_model(qa_items):
    """A tiny model whose tokenizers know the questions, answers and the QA template."""
    from videoblip2.config import VideoBLIP2Config
    from videoblip2.tiny import build_tiny_model

    template = VideoBLIP2Config().qa_prompt_template
    corpus = [template.format(question=i.question) for i in qa_items] + [i.answer for i in qa_items]
    return build_tiny_model(corpus, seed=0, hidden=32, layers=1).eval()


def _store(root, video_ids, config, **kwargs):
    return FeatureStore(root, video_ids, max_frames=config.max_frames, max_audio_windows=config.max_audio_windows,
                        **kwargs)


def test_qa_dataset_tokenizes_prompts_and_answers_once(synth_data, qa_items, qa_model):
    config = qa_model.config
    videos = sorted({i.video_id for i in qa_items})
    data = QADataset(_store(synth_data, videos, config), qa_items, qa_model.t5_tokenizer,
                     qa_model.qformer_tokenizer, config)
    assert len(data) == len(qa_items) and data.question_ids == [i.question_id for i in qa_items]
    rows = [0, 4, 2]  # "Who is in the video?", a longer temporal question, ...
    batch = data.batch(rows)
    prompts = [config.qa_prompt(qa_items[r].question) for r in rows]
    ref = qa_model.tokenize_prompts(prompts)
    for got, want in zip(batch["prompt"], ref):
        assert torch.equal(got, want)
    assert batch["prompt"].t5_mask.sum(1).unique().numel() > 1  # prompts of different lengths, padded
    assert batch["question_ids"] == [qa_items[r].question_id for r in rows]
    assert batch["video_ids"] == [qa_items[r].video_id for r in rows]
    eos = qa_model.t5_tokenizer.eos_token_id
    for row, r in zip(batch["labels"], rows):
        ids = row[row != IGNORE_INDEX].tolist()
        assert ids[-1] == eos and qa_model.t5_tokenizer.decode(ids, skip_special_tokens=True) == qa_items[r].answer
    # the pre-tokenized prompts give the model exactly what the strings give it
    inputs = {k: batch[k] for k in ("video", "video_mask", "audio", "audio_mask")}
    with torch.no_grad():
        a = qa_model(**inputs, labels=batch["labels"], prompt=batch["prompt"]).logits
        b = qa_model(**inputs, labels=batch["labels"], prompt=prompts).logits
    assert torch.equal(a, b)


def test_qa_dataset_without_answers_and_with_bad_videos(synth_data, qa_items, qa_model, tmp_path):
    config = qa_model.config
    unanswered = [dataclasses.replace(i, answer=None) for i in qa_items]
    videos = sorted({i.video_id for i in qa_items})
    data = QADataset(_store(synth_data, videos, config), unanswered, qa_model.t5_tokenizer,
                     qa_model.qformer_tokenizer, config, template="Q: {question} A:")
    assert data.labels is None and "labels" not in data.batch([0, 1])
    assert torch.equal(data.batch([0])["prompt"].t5_ids, qa_model.tokenize_prompts(["Q: Who is in the video? A:"]).t5_ids)
    # a video the store skipped: its questions are left out and listed; a video it never had: an error
    import shutil

    root = tmp_path / "feats"
    shutil.copytree(synth_data / "video", root / "video")
    shutil.copytree(synth_data / "audio", root / "audio")
    (root / "video" / "video0.npy").write_bytes(b"broken")
    store = _store(root, videos, config, skip_bad=True)
    data = QADataset(store, qa_items, qa_model.t5_tokenizer, qa_model.qformer_tokenizer, config)
    assert {i.video_id for i in data.dropped} == {"video0"} and len(data) + len(data.dropped) == len(qa_items)
    assert "video0" not in {i.video_id for i in data.items}
    stranger = QAItem("x", "video99", "Who is in the video?", "man", "Visual/Identification", "Visual")
    with pytest.raises(DataError, match="video99"):
        QADataset(store, [*qa_items, stranger], qa_model.t5_tokenizer, qa_model.qformer_tokenizer, config)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_score_candidates_equals_the_naive_per_candidate_log_likelihood(qa_model, feature_batch, attn):
    from videoblip2.data import tokenize_captions

    model = qa_model
    model.t5.get_base_model().set_attn_implementation(attn)
    try:
        prompts = ["Question: Who is in the video? Short answer:", "Question: Where is this? Short answer:",
                   "Question: Does the robot stand up or sit down? Short answer:"]
        candidates = ["yes", "no", "stand up", "kitchen", "robot", "engine"]
        scores = model.score_candidates(**feature_batch, prompt=prompts, candidates=candidates, candidate_chunk=4)
        assert scores.shape == (3, 6)
        ids = tokenize_captions(candidates, model.t5_tokenizer, model.config.max_caption_len)
        assert len({len(i) for i in ids}) > 1  # candidates of different lengths share a packed sequence
        for a, tokens in enumerate(ids):  # the naive reference: one teacher-forced pass per (video, candidate)
            labels = torch.tensor([tokens] * 3)
            with torch.no_grad():
                logits = model(**feature_batch, labels=labels, prompt=prompts).logits
            ref = torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1).sum(1)
            torch.testing.assert_close(scores[:, a], ref, atol=1e-4, rtol=1e-5)
        assert scores.std() > 0.01  # not all equal
    finally:
        model.t5.get_base_model().set_attn_implementation("sdpa")
