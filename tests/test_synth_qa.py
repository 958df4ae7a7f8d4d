"""The synthetic audio-visual QA benchmark (videoblip2.synth, avqa-*.json): caption files and features untouched,
same videos and splits, answers derivable from the true factors, factor reference = 1.0 through eval.evaluate,
majority baselines well below 1."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest

from videoblip2.eval.evaluate import main as evaluate
from videoblip2.eval.qa import qa_scores
from videoblip2 import synth
from videoblip2.annotations import is_qa_annotation, load_annotations, load_qa_annotations, save_qa_predictions

# sha256 of the files `generate(seed=3, num_videos=18)` wrote before the QA files existed (commit 1acfe05):
# the text files depend only on integer draws, so these hold on every platform.
BEFORE_QA = {
    "train_val_videodatainfo.json": "f10771858ff5ac4a917d10de5785a013190025daef28caea9d66b1a0a0768ac4",
    "test_videodatainfo.json": "393cc134835bc71fb95f60b29e7fc11a06d4b6fb4ef4f42e71a72ed2bcaf2172",
    "meta.json": "506065736eb575847071529aef458adb1eb02a50839e02323b41ea736a24fd91",
    "synth_latents.json": "679d56abd70996ad11fecbe97189b831faf0231f2f7fd06f978e611c74b96a1f",
}


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_qa")
    synth.generate(root / "qa", seed=3, num_videos=18, progress=False)
    synth.generate(root / "no_qa", seed=3, num_videos=18, progress=False, qa=False)
    return root


def test_caption_files_and_features_unchanged(data):
    with_qa, without = _files(data / "qa"), _files(data / "no_qa")
    assert sorted(set(with_qa) - set(without)) == ["avqa-test.json", "avqa-train.json", "avqa-val.json"]
    assert all(with_qa[name] == without[name] for name in without)  # every .npy and caption file
    assert {name: hashlib.sha256(with_qa[name]).hexdigest() for name in BEFORE_QA} == BEFORE_QA


def test_same_videos_and_splits_as_the_captions(data):
    root = data / "qa"
    captions = {split: set(load_annotations(root / file, split)) for split, file in
                [("train", "train_val_videodatainfo.json"), ("validate", "train_val_videodatainfo.json"),
                 ("test", "test_videodatainfo.json")]}
    ids = []
    for split, name in synth.QA_FILES.items():
        assert is_qa_annotation(root / name)
        items = load_qa_annotations(root / name)
        assert {item.video_id for item in items} == captions[split]
        assert all(sum(i.video_id == v and i.qtype == "Visual/Identification" for i in items) == 1
                   for v in captions[split])
        ids += [item.question_id for item in items]
    assert len(ids) == len(set(ids))  # question ids unique over the three files


def test_answers_follow_from_the_true_factors(data):
    """Re-derive every answer by hand from synth_latents.json (and the audio files on disk)."""
    root = data / "qa"
    latents = synth.latent_factors(root)
    nouns = {synth.SOUNDS[name][1][0]: name for name in synth.SOUNDS}
    seen_types = Counter()
    for name in synth.QA_FILES.values():
        for item in load_qa_annotations(root / name):
            latent = latents[item.video_id]
            has_audio = (root / "audio" / f"{item.video_id}.npy").exists()
            assert has_audio == (latent.sound is not None)
            seen_types[item.qtype] += 1
            if item.question == "Who is in the video?":
                expected = latent.subject
            elif item.question == "Where is this?":
                expected = latent.place
            elif item.question == "What sound can be heard?":
                expected = latent.sound
            elif item.question == "Is there any sound?":
                expected = "yes" if has_audio else "no"
            elif item.question.startswith("Can you hear "):
                expected = "yes" if nouns[item.question[len("Can you hear "):-1]] == latent.sound else "no"
            else:
                assert item.qtype == "Audio-Visual/Temporal" and item.modality == "Audio-Visual"
                assert item.question.startswith(f"Does the {latent.subject} ")
                first, second = item.question.split(f"Does the {latent.subject} ")[1].split(" or ")
                assert latent.action.replace("_", " ") in (first, second.split(" the ")[0].rstrip("?"))
                expected = latent.action.replace("_", " ")
            assert item.answer == expected, item
            assert synth.answer_from_latents(item.question, latent) == expected
    assert set(seen_types) == {"Visual/Identification", "Visual/Location", "Audio/Identification",
                               "Audio/Existential", "Audio-Visual/Temporal"}
    with pytest.raises(KeyError, match="not a synthetic question"):
        synth.answer_from_latents("How many dogs?", latents["video0"])


def test_factor_reference_scores_one_and_majority_is_far_below(data, tmp_path, capsys):
    root = data / "qa"
    latents = synth.latent_factors(root)
    items = load_qa_annotations(root / "avqa-test.json")
    preds = tmp_path / "reference.json"
    save_qa_predictions([{"question_id": i.question_id, "video_id": i.video_id, "question": i.question,
                          "answer": synth.answer_from_latents(i.question, latents[i.video_id]).upper() + "."}
                         for i in items], preds)
    result = evaluate(["--predictions", str(preds), "--ann", str(root / "avqa-test.json"),
                       "--out", str(tmp_path / "m.json")])
    assert result["accuracy"] == 1.0 and result["num_questions"] == len(items)
    assert all(row["accuracy"] == 1.0 for row in result["per_type"].values())
    assert "Audio-Visual/Temporal" in capsys.readouterr().out
    # a wrong input (the audio of another video) breaks the audio questions only
    shifted = {v: latents[f"video{(int(v[5:]) + 1) % 18}"].sound for v in latents}
    wrong = {i.question_id: synth.answer_from_latents(i.question, {**vars(latents[i.video_id]),
                                                                  "sound": shifted[i.video_id]})
             for i in items}
    scores = qa_scores(wrong, items)
    assert scores["per_modality"]["Visual"]["accuracy"] == 1.0
    assert scores["per_modality"]["Audio"]["accuracy"] < 0.9


def test_balanced_answers_default_size(tmp_path):
    """On the default size (questions only, no features written): majority baselines well below 1."""
    latents = synth.sample_latents(0, synth.SIZES["default"])
    test = [latent for latent in latents if latent.split == "test"]
    records = synth.qa_records(test, seed=0)
    (tmp_path / "avqa-test.json").write_text(json.dumps(records))
    items = load_qa_annotations(tmp_path / "avqa-test.json")
    scores = qa_scores({i.question_id: "" for i in items}, items)
    assert scores["majority_baseline"] < 0.2
    assert scores["majority_baseline_per_type"] < 0.4
    assert scores["per_type"]["Audio/Existential"]["majority_baseline"] < 0.6  # yes / no balanced
    for qtype in ("Visual/Identification", "Visual/Location", "Audio/Identification", "Audio-Visual/Temporal"):
        assert scores["per_type"][qtype]["majority_baseline"] < 0.3, qtype
    # given the question, a temporal answer is one of two (time-reversal pair): chance is 1/2
    by_question = Counter((r["question_content"], r["anser"]) for r in records
                          if r["type"] == json.dumps(["Audio-Visual", "Temporal"]))
    for template in ("Does the <Object> open or close the door?", "Does the <Object> stand up or sit down?"):
        answers = {a: c for (q, a), c in by_question.items() if q == template}
        assert len(answers) == 2 and max(answers.values()) / sum(answers.values()) < 0.65



def test_bench_synth_qa_reference_orders_the_inputs(tmp_path, capsys):
    from bench import synth_qa_reference

    result = synth_qa_reference.main(["--num-videos", "90", "--out", str(tmp_path / "b.json")])
    acc = result["accuracy"]
    assert json.loads((tmp_path / "b.json").read_text())["accuracy"] == acc
    assert all(value == 1.0 for value in acc["factor reference"].values())
    assert acc["factor reference, audio-blind"]["Visual/Location"] == 1.0
    assert acc["factor reference, audio-blind"]["Audio/Identification"] < 0.6
    assert acc["factor reference, time-blind"]["Audio/Existential"] == 1.0
    assert acc["factor reference, time-blind"]["Audio-Visual/Temporal"] < 1.0
    assert acc["majority (test, per type)"]["all"] < 0.6 and acc["question-only prior (train)"]["all"] < 0.6
