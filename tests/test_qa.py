"""Question answering on the model side: QADataset, the QA training task, answering and candidate ranking."""

import dataclasses
import warnings

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
    reference = qa_model.tokenize_prompts(["Q: Who is in the video? A:"])
    assert torch.equal(data.batch([0])["prompt"].t5_ids, reference.t5_ids)
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


# ---------------------------------------------------------------------------------------------- training


def _records(out, kind):
    import json

    return [r for r in map(json.loads, open(out / "log.jsonl")) if r["type"] == kind]


@pytest.fixture(scope="module")
def qa_init_dir(synth_data, qa_items, tmp_path_factory):
    """A saved tiny model (dropout on) whose tokenizers know the captions, the QA prompts and the answers."""
    from train.model_setup import build_tiny
    from videoblip2.annotations import load_annotations
    from videoblip2.config import VideoBLIP2Config

    ann = load_annotations(synth_data / "train_val_videodatainfo.json", "train")
    template = VideoBLIP2Config().qa_prompt_template
    corpus = [c for caps in ann.values() for c in caps] + [template.format(question=i.question) for i in qa_items]
    model = build_tiny(corpus + [i.answer for i in qa_items], seed=0, hidden=32, layers=1, queries=4, dropout=None)
    path = tmp_path_factory.mktemp("qa_init") / "model"
    model.save_pretrained(path)
    return path


def _qa_args(data, init):
    return ["--model", str(init), "--features", str(data), "--qa-ann", str(data / "avqa-train.json"),
            "--qa-val-ann", str(data / "avqa-val.json"), "--no-progress", "--num-threads", "1", "--batch-size", "6",
            "--lr", "3e-3", "--log-every", "1"]


@pytest.mark.usefixtures("one_torch_thread")
def test_qa_run_learns_validates_accuracy_and_keeps_best_by_it(synth_data, qa_init_dir, qa_items, tmp_path):
    import json

    from train import train_ce
    from videoblip2.data import answer_vocabulary

    out = tmp_path / "qa"
    summary = train_ce.main([*_qa_args(synth_data, qa_init_dir), "--out", str(out), "--max-steps", "25",
                             "--eval-every", "5", "--warmup-steps", "2"])
    (start,) = _records(out, "start")
    assert start["task"] == "train_qa" and start["num_items"] == len(qa_items) == 30
    losses = [r["loss"] for r in _records(out, "train")]
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3]), losses
    vals = _records(out, "val")
    assert [v["step"] for v in vals] == [5, 10, 15, 20, 25]
    assert all("val_cider" not in v and 0 <= v["val_qa_accuracy"] <= 1 for v in vals)
    assert vals[-1]["val_qa_majority"] == pytest.approx(0.2) and vals[-1]["val_qa_questions"] == 5
    assert summary["best_metric"] == "val_qa_accuracy"
    best = max(range(len(vals)), key=lambda i: (vals[i]["val_qa_accuracy"], -i))  # the first of the best
    assert summary["best_val_qa_accuracy"] == vals[best]["val_qa_accuracy"]
    assert summary["best_step"] == vals[best]["step"]
    info = json.loads((out / "best" / "trainer_info.json").read_text())
    assert info["step"] == vals[best]["step"] and info["qa_answers"] == answer_vocabulary(qa_items)
    assert info["qa_prompt_template"] == "Question: {question} Short answer:"
    # the validation accuracy is what eval.qa says about the saved model's answers
    from eval.qa import qa_scores
    from videoblip2.modeling import VideoBLIP2
    from videoblip2.predict import predict_answers

    model = VideoBLIP2.from_pretrained(out / "last")
    val_items = load_qa_annotations(synth_data / "avqa-val.json")
    store = _store(synth_data, sorted({i.video_id for i in val_items}), model.config)
    answers = predict_answers(model, QADataset(store, val_items, model.t5_tokenizer, model.qformer_tokenizer,
                                               model.config), progress=False)
    assert qa_scores(answers, val_items)["accuracy"] == vals[-1]["val_qa_accuracy"]
    examples = vals[-1]["qa_examples"]
    assert [answers[e["question_id"]] for e in examples] == [e["answer"] for e in examples]


def test_mixed_task_table_and_batches(synth_data, qa_items, qa_model):
    from train.tasks import MixedTask
    from videoblip2.annotations import load_annotations
    from videoblip2.data import CaptionDataset

    config = qa_model.config
    ann = load_annotations(synth_data / "train_val_videodatainfo.json", "train")
    captions = CaptionDataset(_store(synth_data, list(ann), config), ann, qa_model.t5_tokenizer, config.max_caption_len)
    questions = QADataset(_store(synth_data, sorted({i.video_id for i in qa_items}), config), qa_items,
                          qa_model.t5_tokenizer, qa_model.qformer_tokenizer, config)
    caption_prompt = qa_model.tokenize_prompts([config.prompt])
    natural = MixedTask(captions, questions, caption_prompt)
    assert natural.num_items == 120 + 30 and natural.qa_fraction == pytest.approx(30 / 150)
    half = MixedTask(captions, questions, caption_prompt, qa_ratio=0.5, seed=1)
    assert half.num_items == 240 and half.qa_fraction == pytest.approx(0.5)
    qa_rows = half.row[half.is_qa]
    assert set(qa_rows.tolist()) == set(range(30)) and np.bincount(qa_rows).min() == 4  # every question, 4 times
    assert sorted(half.row[~half.is_qa].tolist()) == list(range(120))  # every caption pair once
    # a mixed batch: caption rows with the caption prompt, question rows with theirs, labels and prompts padded
    indices = np.array([0, 200, 5, 230])  # caption, question, caption, question
    batch = half.batch(indices)
    assert batch["video"].shape[0] == 4 and batch["labels"].shape[0] == 4
    ref_caption = captions.batch(half.row[[0, 5]])
    ref_qa = questions.batch(half.row[[200, 230]])
    assert batch["video_ids"] == ref_caption["video_ids"] + ref_qa["video_ids"]
    qa_prompts = [config.qa_prompt(questions.items[half.row[i]].question) for i in (200, 230)]
    expected = [(config.prompt, ref_caption["labels"][0]), (config.prompt, ref_caption["labels"][1]),
                (qa_prompts[0], ref_qa["labels"][0]), (qa_prompts[1], ref_qa["labels"][1])]
    for row, (prompt, labels) in enumerate(expected):
        own = qa_model.tokenize_prompts([prompt])
        width = own.t5_ids.shape[1]
        assert torch.equal(batch["prompt"].t5_ids[row, :width], own.t5_ids[0])
        assert batch["prompt"].t5_mask[row].sum() == width
        n = int((labels != IGNORE_INDEX).sum())
        assert torch.equal(batch["labels"][row, :n], labels[:n]) and (batch["labels"][row, n:] == IGNORE_INDEX).all()
    assert half.normalizer(indices) == float((batch["labels"] != IGNORE_INDEX).sum())
    # the mixed batch gives each row what it gets in its own task's batch
    inputs = {k: batch[k] for k in ("video", "video_mask", "audio", "audio_mask", "prompt")}
    with torch.no_grad():
        mixed = qa_model(**inputs, labels=batch["labels"]).logits
        alone = qa_model(**{k: ref_qa[k] for k in ("video", "video_mask", "audio", "audio_mask", "prompt")},
                         labels=ref_qa["labels"]).logits
    torch.testing.assert_close(mixed[2:, :alone.shape[1]], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.usefixtures("one_torch_thread")
def test_multi_task_run_validates_both_and_keeps_best_by_the_named_metric(synth_data, qa_init_dir, tmp_path):
    from train import train_ce

    out = tmp_path / "mixed"
    captions = ["--ann", str(synth_data / "train_val_videodatainfo.json")]
    summary = train_ce.main([*_qa_args(synth_data, qa_init_dir), *captions, "--qa-ratio", "0.5",
                             "--best-metric", "val_qa_loss", "--out", str(out), "--max-steps", "6",
                             "--eval-every", "2"])
    (start,) = _records(out, "start")
    assert start["task"] == "train_ce+qa" and start["num_items"] == 240
    vals = _records(out, "val")
    assert all(k in v for v in vals for k in ("val_loss", "val_cider", "val_qa_loss", "val_qa_accuracy"))
    best = min(vals, key=lambda v: v["val_qa_loss"])
    assert summary["best_val_qa_loss"] == best["val_qa_loss"] and summary["best_step"] == best["step"]
    with pytest.raises(SystemExit):  # a ratio needs both tasks
        train_ce.parse_args([*_qa_args(synth_data, qa_init_dir), "--qa-ratio", "0.5", "--out", str(tmp_path / "x")])


@pytest.mark.usefixtures("one_torch_thread")
def test_qa_run_interrupted_after_a_save_resumes_exactly(synth_data, qa_init_dir, tmp_path, monkeypatch):
    from train import train_ce
    from train.trainer import Trainer

    args = [*_qa_args(synth_data, qa_init_dir), "--max-steps", "8", "--save-every", "2"]
    reference = tmp_path / "reference"
    train_ce.main([*args, "--out", str(reference)])

    original = Trainer.save

    def save_then_die(self, val):
        original(self, val)
        if self.progress.step == 4:
            raise KeyboardInterrupt("killed right after the step-4 save")

    monkeypatch.setattr(Trainer, "save", save_then_die)
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train_ce.main([*args, "--out", str(killed)])
    monkeypatch.setattr(Trainer, "save", original)
    train_ce.main([*args, "--out", str(killed)])
    assert [(s["step"], s["resumed"]) for s in _records(killed, "start")] == [(0, False), (4, True)]
    got, ref = _records(killed, "train"), _records(reference, "train")
    assert [r["step"] for r in got] == list(range(1, 9))
    assert [r["loss"] for r in got] == pytest.approx([r["loss"] for r in ref], rel=1e-6, abs=1e-6)
    assert _records(killed, "val")[-1]["val_qa_accuracy"] == _records(reference, "val")[-1]["val_qa_accuracy"]


@pytest.mark.usefixtures("one_torch_thread")
def test_bf16_qa_run_with_closed_vocabulary_validation_reproduces(synth_data, tmp_path):
    """--precision bf16 (CPU autocast here, the CUDA default) with a frozen T5 stored in bf16: QA training and
    closed-vocabulary validation run, and the reloaded model under autocast gives the same validation numbers."""
    from safetensors.torch import load_file

    from train import train_ce
    from train.data import feature_store
    from train.distributed import DistInfo
    from train.validation import QAValidator
    from videoblip2.data import answer_vocabulary
    from videoblip2.modeling import VideoBLIP2

    out = tmp_path / "qa_bf16"
    args = ["--tiny", "--tiny-hidden", "32", "--tiny-layers", "1", "--tiny-frozen-t5", "--features", str(synth_data),
            "--qa-ann", str(synth_data / "avqa-train.json"), "--qa-val-ann", str(synth_data / "avqa-val.json"),
            "--qa-closed-vocabulary", "--no-progress", "--num-threads", "1", "--out", str(out)]
    train_ce.main([*args, "--batch-size", "6", "--max-steps", "3", "--lr", "1e-3", "--log-every", "1",
                   "--precision", "bf16"])
    assert all(np.isfinite(r["loss"]) for r in _records(out, "train"))
    (val,) = _records(out, "val")
    assert load_file(out / "last" / "model.safetensors")["t5.base_model.model.lm_head.weight"].dtype == torch.bfloat16
    answers = answer_vocabulary(load_qa_annotations(synth_data / "avqa-train.json"))
    assert {e["answer"] for e in val["qa_examples"]} <= set(answers)  # closed vocabulary: training answers only
    model = VideoBLIP2.from_pretrained(out / "last")
    items = load_qa_annotations(synth_data / "avqa-val.json")
    dist = DistInfo()
    videos = sorted({i.video_id for i in items})
    store = feature_store(synth_data, videos, model.config, train_ce.parse_args(args), dist)
    again = QAValidator(model, store, items, dist, batch_size=12, precision="bf16", candidates=answers)(model)
    assert again["val_qa_loss"] == val["val_qa_loss"] and again["qa_examples"] == val["qa_examples"]


# ---------------------------------------------------------------------------------------------- answering


def test_predict_answers_a_qa_file_open_and_closed_vocabulary(synth_data, qa_init_dir, qa_items, tmp_path):
    import json
    import shutil

    from eval import evaluate
    from videoblip2 import predict
    from videoblip2.annotations import AnnotationError
    from videoblip2.data import answer_vocabulary
    from videoblip2.modeling import VideoBLIP2

    model_dir = tmp_path / "model"
    shutil.copytree(qa_init_dir, model_dir)
    ann = synth_data / "avqa-val.json"
    items = load_qa_annotations(ann)
    common = ["--model", str(model_dir), "--features", str(synth_data), "--ann", str(ann), "--batch-size", "2"]
    out = tmp_path / "answers.json"
    answers = predict.main([*common, "--out", str(out), "--num-beams", "1", "--max-new-tokens", "4"])
    records = json.loads(out.read_text())
    assert [r["question_id"] for r in records] == [i.question_id for i in items]
    assert [(r["video_id"], r["question"]) for r in records] == [(i.video_id, i.question) for i in items]
    assert {r["question_id"]: r["answer"] for r in records} == answers
    meta = json.loads((tmp_path / "answers.meta.json").read_text())
    assert meta["answers"] == "generated" and meta["qa_prompt_template"] == "Question: {question} Short answer:"
    # the answers are the model's greedy continuations of each question's prompt, asked alone
    model = VideoBLIP2.from_pretrained(model_dir)
    store = _store(synth_data, sorted({i.video_id for i in items}), model.config)
    for item in items:
        feats = store.batch([store.index[item.video_id]])
        (alone,) = model.generate(feats["video"], feats["video_mask"], feats["audio"], feats["audio_mask"],
                                  prompt=model.config.qa_prompt(item.question), max_new_tokens=4)
        assert answers[item.question_id] == alone
    scores = evaluate.main(["--predictions", str(out), "--ann", str(ann), "--out", str(tmp_path / "m.json")])
    assert scores["num_questions"] == len(items)

    # closed vocabulary: the training answers from trainer_info.json, each question's most likely one
    with pytest.raises(AnnotationError, match="trainer_info.json"):
        predict.main([*common, "--out", str(tmp_path / "x.json"), "--closed-vocabulary"])
    vocabulary = answer_vocabulary(qa_items)
    (model_dir / "trainer_info.json").write_text(json.dumps({"qa_answers": vocabulary}))
    closed = predict.main([*common, "--out", str(tmp_path / "closed.json"), "--closed-vocabulary"])
    assert set(closed.values()) <= set(vocabulary)
    for item in items:
        feats = store.batch([store.index[item.video_id]])
        scores = model.score_candidates(feats["video"], feats["video_mask"], feats["audio"], feats["audio_mask"],
                                        prompt=model.config.qa_prompt(item.question), candidates=vocabulary)
        assert closed[item.question_id] == vocabulary[int(scores.argmax())]
    assert predict.main([*common, "--out", str(tmp_path / "c2.json"),
                         "--candidates", str(synth_data / "avqa-train.json")]) == closed
    assert json.loads((tmp_path / "closed.meta.json").read_text())["answers"] == \
        f"closed vocabulary of {len(vocabulary)} answers"


def test_caption_command_answers_a_question(qa_model, tiny_files, media, tmp_path, capsys):
    import json

    from videoblip2.caption import caption_videos, main
    from videoblip2.extract import load_clip

    qa_model.save_pretrained(tmp_path / "model")
    question = "Who is in the video?"
    argv = [str(media["tone"]), "--model", str(tmp_path / "model"), "--clip-model", tiny_files["clip_config"],
            "--clip-pretrained", tiny_files["clip_ckpt"], "--device", "cpu", "--max-new-tokens", "5",
            "--num-beams", "1", "--question", question, "--json"]
    assert main(argv) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["question"] == question and result["caption"] is None and isinstance(result["answer"], str)
    clip = load_clip(tiny_files["clip_config"], tiny_files["clip_ckpt"], device="cpu")
    (direct,) = caption_videos([media["tone"]], qa_model, clip=clip, max_new_tokens=5, question=question)
    (prompted,) = caption_videos([media["tone"]], qa_model, clip=clip, max_new_tokens=5,
                                 prompt=qa_model.config.qa_prompt(question))
    assert result["answer"] == direct["answer"] == prompted["caption"]
    (captioned,) = caption_videos([media["tone"]], qa_model, clip=clip, max_new_tokens=5)
    assert captioned["caption"] != direct["answer"]  # the question changed the output
    with pytest.raises(SystemExit):
        main([*argv, "--prompt", "x"])
    # a question longer than the prompt limits: its last words are cut, the answer cue kept, with a warning
    limits = (qa_model.config.max_prompt_len, qa_model.config.qformer.max_prompt_len)
    qa_model.config.max_prompt_len, qa_model.config.qformer.max_prompt_len = 16, 20
    try:
        long_question = " ".join(["who is in the video"] * 5) + "?"
        (tokens, cut) = qa_model.tokenize_questions([long_question])
        assert cut[0]
        seen = []
        generate = qa_model.generate
        qa_model.generate = lambda *args, **kwargs: seen.append(kwargs["prompt"]) or generate(*args, **kwargs)
        caption_videos([media["tone"]], qa_model, clip=clip, max_new_tokens=5, question=long_question)
        for got, want in zip(seen[0], tokens):
            assert torch.equal(got.cpu(), want)
        text = qa_model.t5_tokenizer.decode(tokens.t5_ids[0], skip_special_tokens=True)
        assert text.lower().rstrip().endswith("short answer:") and len(tokens.t5_ids[0]) <= 16
    finally:
        qa_model.config.max_prompt_len, qa_model.config.qformer.max_prompt_len = limits
        qa_model.__dict__.pop("generate", None)


def test_long_questions_lose_words_never_the_answer_cue(synth_data, qa_items, qa_model):
    """A question longer than the prompt limits is cut at a word boundary; the template, "Short answer:"
    included, stays whole on both the Q-Former and the T5 side; the cut questions are counted and named
    (issue 19: the whole prompt used to be truncated, cue and all)."""
    config = dataclasses.replace(qa_model.config)
    config.qformer = dataclasses.replace(config.qformer, max_prompt_len=24)
    config.max_prompt_len = 20
    base = qa_items[0].question.rstrip("?")
    long_question = " ".join([base] * 6) + "?"
    items = [qa_items[0], dataclasses.replace(qa_items[1], question=long_question)]
    data = QADataset(_store(synth_data, sorted({i.video_id for i in items}), config), items, qa_model.t5_tokenizer,
                     qa_model.qformer_tokenizer, config)
    assert data.truncated == [items[1].question_id]
    note = data.truncation_note("val")
    assert note.startswith("val: 1 of 2 questions") and "max_prompt_len=20" in note and "\n" not in note
    prompts = data.batch([0, 1])["prompt"]
    for side, (ids, mask), limit, tokenizer in (("qformer", prompts[:2], 24, qa_model.qformer_tokenizer),
                                                ("t5", prompts[2:], 20, qa_model.t5_tokenizer)):
        short, cut = (ids[r][mask[r].bool()].tolist() for r in (0, 1))
        assert len(cut) <= limit
        text = " ".join(tokenizer.decode(cut, skip_special_tokens=True).replace(" :", ":").split())  # BERT: "a :"
        assert text.lower().rstrip().endswith("short answer:"), (side, text)
        words = text.split()[1:-2]  # between "Question:" and "Short answer:"
        assert 0 < len(words) < len(long_question.split())
        assert " ".join(words).lower() == " ".join(long_question.split()[:len(words)]).lower()
        # the short question is tokenized exactly as before
        assert short == tokenizer(config.qa_prompt(items[0].question))["input_ids"]
    # a template that alone does not fit: an error naming the limit
    config.max_prompt_len = 3
    with pytest.raises(DataError, match="max_prompt_len=3"):
        QADataset(_store(synth_data, sorted({i.video_id for i in items}), config), items, qa_model.t5_tokenizer,
                  qa_model.qformer_tokenizer, config)


def test_candidates_longer_than_the_caption_limit_warn(synth_data, qa_items, qa_model):
    """A closed-vocabulary candidate longer than max_caption_len is scored truncated: predict_answers warns."""
    from videoblip2.predict import predict_answers

    items = qa_items[:2]
    config = qa_model.config
    data = QADataset(_store(synth_data, sorted({i.video_id for i in items}), config), items, qa_model.t5_tokenizer,
                     qa_model.qformer_tokenizer, config)
    short = [i.answer for i in items]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict_answers(qa_model, data, candidates=short, progress=False)
    long_answer = " ".join(["left"] * (config.max_caption_len + 3))
    with pytest.warns(UserWarning, match=r"1 of 3 candidate answers are longer than max_caption_len=\d+"):
        predict_answers(qa_model, data, candidates=short + [long_answer], progress=False)


def test_qa_loss_weight_gives_per_task_means(synth_data, qa_items, qa_model):
    """--qa-loss-weight W: the loss of a global batch is the caption tokens' mean loss + W x the answer tokens'
    mean loss, whatever the micro-batches; without it the tokens of both are pooled (issue 19: at --qa-ratio
    0.5 the answers' ~2 tokens carried ~14% of a pooled loss)."""
    import torch.nn.functional as F

    from train.tasks import MixedTask
    from videoblip2.annotations import load_annotations
    from videoblip2.data import CaptionDataset

    config = qa_model.config
    ann = load_annotations(synth_data / "train_val_videodatainfo.json", "train")
    captions = CaptionDataset(_store(synth_data, list(ann), config), ann, qa_model.t5_tokenizer, config.max_caption_len)
    questions = QADataset(_store(synth_data, sorted({i.video_id for i in qa_items}), config), qa_items,
                          qa_model.t5_tokenizer, qa_model.qformer_tokenizer, config)
    prompt = qa_model.tokenize_prompts([config.prompt])
    pooled = MixedTask(captions, questions, prompt, qa_ratio=0.5, seed=1)
    weighted = MixedTask(captions, questions, prompt, qa_ratio=0.5, seed=1, qa_loss_weight=2.0)
    global_batch = np.array([0, 200, 5, 230, 7, 9])  # 4 captions, 2 questions, in two micro-batches
    micro = [global_batch[:3], global_batch[3:]]

    def token_losses(rows):
        batch = pooled.batch(np.asarray(rows))
        with torch.no_grad():
            logits = qa_model(**{k: batch[k] for k in ("video", "video_mask", "audio", "audio_mask", "prompt")},
                              labels=batch["labels"], return_loss=False).logits
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), reduction="none",
                               ignore_index=IGNORE_INDEX).view(batch["labels"].shape).sum(1)

    per_row = token_losses(global_batch)  # rows: captions 0, 5, 7, 9 then questions 200, 230
    lengths = pooled.label_lengths(np.array([0, 5, 7, 9, 200, 230]))
    caption_mean = per_row[:4].sum() / lengths[:4].sum()
    answer_mean = per_row[4:].sum() / lengths[4:].sum()
    qa_model.eval()  # no dropout: the task steps (which call train()) see the same numbers
    for task, expected in ((weighted, caption_mean + 2.0 * answer_mean),
                           (pooled, per_row.sum() / lengths.sum())):
        scale = 1.0 / task.normalizer(global_batch)
        total = 0.0
        for rows in micro:
            module = qa_model.eval()
            module.train = lambda mode=True: module  # keep eval mode: deterministic
            with torch.no_grad():
                total += task.micro_step(module, qa_model, rows).loss_sum.item() * scale
            del module.train
        assert total == pytest.approx(expected.item(), rel=1e-5)
    assert answer_mean > 0 and caption_mean > 0
    with pytest.raises(ValueError, match="qa_loss_weight"):
        MixedTask(captions, questions, prompt, qa_loss_weight=-1.0)
