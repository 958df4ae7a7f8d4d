"""QA annotations: MUSIC-AVQA, MSRVTT-QA / MSVD-QA (release + LAVIS), plain JSON / JSONL; prediction files."""

from __future__ import annotations

import json
import os

import pytest

from videoblip2.annotations import (
    AnnotationError,
    QAItem,
    is_qa_annotation,
    load_annotations,
    load_qa_annotations,
    load_qa_predictions,
    save_qa_predictions,
)
from videoblip2.fileio import DiskFullError


def write(tmp_path, data, name="qa.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def avqa(**change):
    record = {"video_id": "00000272", "question_id": 50, "type": "[\"Audio-Visual\", \"Temporal\"]",
              "question_content": "Where is the <FL> sounding instrument?", "templ_values": "[\"first\"]",
              "question_deleted": 0, "anser": "left"}
    record.update(change)
    return {k: v for k, v in record.items() if v is not None}


def test_music_avqa_placeholders_type_and_modality(tmp_path):
    records = [
        avqa(),
        avqa(video_id="sa00007434", question_id=28884, type="[\"Visual\", \"Counting\"]",
             question_content="Are there <Object> and <Object>   instruments in the video?",
             templ_values="[\"piano\", \"ukulele\"]", anser="no"),
        avqa(question_id=7, type="[\"Audio\", \"Counting\"]", templ_values="[]", anser=None, answer="two",
             question_content="How many instruments are sounding in the video?"),
    ]
    path = write(tmp_path, records, "avqa-test.json")
    assert is_qa_annotation(path)
    items = load_qa_annotations(path)
    assert items == [
        QAItem("50", "00000272", "Where is the first sounding instrument?", "left", "Audio-Visual/Temporal",
               "Audio-Visual"),
        QAItem("28884", "sa00007434", "Are there piano and ukulele instruments in the video?", "no",
               "Visual/Counting", "Visual"),
        QAItem("7", "00000272", "How many instruments are sounding in the video?", "two", "Audio/Counting", "Audio"),
    ]


def test_msrvtt_qa_release_lavis_and_msvd_mapping(tmp_path):
    release = [{"answer": "man", "id": 0, "question": "who is talking  about a car?", "video_id": 7010},
               {"answer": "car", "id": 1, "question": "What is shown?", "video_id": 7011}]
    items = load_qa_annotations(write(tmp_path, release, "test_qa.json"))
    assert [(i.question_id, i.video_id, i.question, i.qtype, i.modality) for i in items] == [
        ("0", "video7010", "who is talking about a car?", "who", None),
        ("1", "video7011", "What is shown?", "what", None)]

    lavis = [{"question_id": "q9", "video": "videos/video7010.mp4", "question": "how many people?",
              "answer": "2"}]
    (item,) = load_qa_annotations(write(tmp_path, lavis, "lavis.json"))
    assert (item.question_id, item.video_id, item.qtype, item.answer) == ("q9", "video7010", "how", "2")

    # MSVD-QA: integer ids N -> "vidN" -> clip name from youtube_mapping.txt, or a "vid{}" template
    msvd = [{"answer": "dog", "id": 3, "question": "what runs?", "video_id": 2}]
    mapping = tmp_path / "youtube_mapping.txt"
    mapping.write_text("-4wsuPCjDBc_5_15 vid1\n-7KMZQEsJW4_205_208 vid2\n")
    path = write(tmp_path, msvd, "msvd.json")
    assert load_qa_annotations(path, video_map=mapping)[0].video_id == "-7KMZQEsJW4_205_208"
    assert load_qa_annotations(path, video_map={"vid2": "clip2"})[0].video_id == "clip2"
    assert load_qa_annotations(path, int_video_template="vid{}")[0].video_id == "vid2"
    with pytest.raises(AnnotationError, match=r"msvd.json: record 0 \(question_id '3'\).*vid2.*not in the video map"):
        load_qa_annotations(path, video_map={"vid1": "clip1"})


def test_plain_json_and_jsonl(tmp_path):
    records = [{"video_id": "video1", "question": "Who is in the video?", "answer": "a man", "type": "Visual"},
               {"video_id": "video2", "question": "what plays?", "answer": "Music", "question_id": 12}]
    expected = [QAItem("plain:0", "video1", "Who is in the video?", "a man", "Visual", None),
                QAItem("12", "video2", "what plays?", "Music", "", None)]
    assert load_qa_annotations(write(tmp_path, records, "plain.json")) == expected
    jsonl = write(tmp_path, "\n".join(json.dumps(r) for r in records) + "\n\n", "plain.jsonl")
    assert is_qa_annotation(jsonl)
    assert load_qa_annotations(jsonl) == expected
    # a question-only file (to be answered): answer None everywhere
    questions = [{"video_id": "video1", "question": "Where is this?"}]
    assert load_qa_annotations(write(tmp_path, questions, "plain.json"))[0].answer is None


def test_caption_loader_names_a_qa_file(tmp_path):
    path = write(tmp_path, [avqa()], "avqa-train.json")
    with pytest.raises(AnnotationError, match=r"avqa-train.json: a question-answer file .*load_qa_annotations"):
        load_annotations(path)


def test_caption_files_are_not_qa(tmp_path):
    assert not is_qa_annotation(write(tmp_path, [{"video_id": "video1", "caption": "a man"}]))
    assert not is_qa_annotation(write(tmp_path, {"videos": [], "sentences": []}))
    assert not is_qa_annotation(write(tmp_path, "{not json"))
    assert not is_qa_annotation(tmp_path / "missing.json")


@pytest.mark.parametrize("records, message", [
    ({"a": 1}, r"qa.json: a QA annotation file is a list"),
    ([], r"qa.json: no questions"),
    ([avqa(), avqa()], r"qa.json: record 1: duplicate question_id '50' \(first in record 0\)"),
    ([avqa(templ_values="[]")], r"record 0 \(question_id '50'\): 1 placeholder\(s\) <FL> but only 0"),
    ([avqa(templ_values="first")], r"record 0 \(question_id '50'\): 'templ_values' is not a JSON list"),
    ([avqa(type="[\"Audio\"]")], r"record 0 \(question_id '50'\): 'type' must name \[modality, question type\]"),
    ([avqa(type=None)], r"record 0 \(question_id '50'\): 'type' must be a JSON list of strings"),
    ([avqa(anser="  ")], r"record 0 \(question_id '50'\): 'anser' must be a non-empty string"),
    ([avqa(), avqa(question_id=51, anser=None)], r"record 1 \(question_id '51'\): no answer, unlike record 0"),
    ([{"video_id": "v", "answer": "x"}], r"record 0: missing 'question'"),
    ([{"question": "who?", "answer": "x"}], r"record 0: missing 'video_id'"),
    ([{"video_id": "", "question": "who?", "answer": "x"}], r"record 0: 'video_id' must be a non-empty"),
    ([{"video_id": "v", "question": "who?", "answer": "x", "question_id": [1]}], r"record 0: question id must"),
    ([{"video_id": "v", "question": "who?", "answer": ["x"]}], r"record 0: 'answer' must be a non-empty string"),
    ([{"video_id": "v", "question": "who?", "answer": "x"}, 3], r"record 1: expected an object, got int"),
])
def test_bad_records_name_file_and_record(tmp_path, records, message):
    with pytest.raises(AnnotationError, match=message):
        load_qa_annotations(write(tmp_path, records))


def test_bad_jsonl_line(tmp_path):
    path = write(tmp_path, json.dumps({"video_id": "v", "question": "q?", "answer": "a"}) + "\n{oops\n", "x.jsonl")
    with pytest.raises(AnnotationError, match=r"x.jsonl: line 2: malformed JSON"):
        load_qa_annotations(path)


def test_predictions_round_trip_atomic_and_errors(tmp_path, monkeypatch):
    path = tmp_path / "out" / "answers.json"
    records = [{"question_id": 50, "video_id": "00000272", "question": "Where?", "answer": "left"},
               {"question_id": "q2", "answer": ""}]
    save_qa_predictions(records, path)
    assert json.loads(path.read_text())[0] == {"question_id": "50", "video_id": "00000272", "question": "Where?",
                                               "answer": "left"}
    assert load_qa_predictions(path) == {"50": "left", "q2": ""}
    assert os.listdir(path.parent) == ["answers.json"]  # no temporary file left behind

    # a failed write leaves the previous file intact
    with pytest.raises(ValueError, match="record 1 needs 'question_id' and 'answer'"):
        save_qa_predictions([{"question_id": 1, "answer": "x"}, {"answer": "y"}], path)
    assert load_qa_predictions(path) == {"50": "left", "q2": ""}
    assert os.listdir(path.parent) == ["answers.json"]
    # ... and so does a disk that fails in the middle of the write (temporary file, then rename)
    def disk_full(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(DiskFullError, match="answers.json"):
        save_qa_predictions([{"question_id": 7, "answer": "new"}], path)
    monkeypatch.undo()
    assert load_qa_predictions(path) == {"50": "left", "q2": ""}
    assert os.listdir(path.parent) == ["answers.json"]

    for bad, message in [
        ([{"question_id": 1, "answer": "a"}, {"question_id": "1", "answer": "b"}],
         r"record 1 \(question_id '1'\): question answered twice"),
        ([{"answer": "a"}], r"record 0: missing 'question_id'"),
        ([{"question_id": 1}], r"record 0 \(question_id '1'\): missing 'answer'"),
        ([{"question_id": 1, "answer": 2}], r"answer must be a string"),
        ({"question_id": 1}, r"must be a list"),
    ]:
        with pytest.raises(AnnotationError, match=message):
            load_qa_predictions(write(tmp_path, bad, "bad.json"))


def test_msvd_qa_release_layout_from_the_command_line(tmp_path):
    """MSVD-QA as released (train_qa.json, val_qa.json, youtube_mapping.txt in one folder, integer video ids):
    the mapping beside the files is found, or named with --qa-mapping, in train_ce, predict and the extractors
    (issue 19: they loaded the questions without it, so every id became videoN and nothing matched)."""
    from features.common import list_videos
    from train import train_ce
    from train.data import load_qa_train_val
    from videoblip2 import predict

    release = tmp_path / "MSVD-QA"
    release.mkdir()
    write(release, [{"answer": "dog", "id": 0, "question": "what runs?", "video_id": 1},
                    {"answer": "man", "id": 1, "question": "who cooks?", "video_id": 2}], "train_qa.json")
    write(release, [{"answer": "cat", "id": 2, "question": "what sleeps?", "video_id": 3}], "val_qa.json")
    (release / "youtube_mapping.txt").write_text("-4wsuPCjDBc_5_15 vid1\n-7KMZQEsJW4_205_208 vid2\nabc_1_2 vid3\n")
    clips = ["-4wsuPCjDBc_5_15", "-7KMZQEsJW4_205_208"]

    assert [i.video_id for i in load_qa_annotations(release / "train_qa.json")] == clips
    args = train_ce.parse_args(["--tiny", "--features", "f", "--qa-ann", str(release / "train_qa.json"),
                                "--qa-val-ann", str(release / "val_qa.json"), "--out", "o"])
    train, val = load_qa_train_val(args)
    assert [i.video_id for i in train] == clips and [i.video_id for i in val] == ["abc_1_2"]

    # the mapping elsewhere: --qa-mapping names it (train_ce, predict, extractors)
    moved = tmp_path / "maps" / "youtube_mapping.txt"
    moved.parent.mkdir()
    (release / "youtube_mapping.txt").rename(moved)
    assert [i.video_id for i in load_qa_annotations(release / "train_qa.json")] == ["video1", "video2"]
    args = train_ce.parse_args(["--tiny", "--features", "f", "--qa-ann", str(release / "train_qa.json"),
                                "--qa-mapping", str(moved), "--out", "o"])
    assert [i.video_id for i in load_qa_train_val(args)[0]] == clips
    assert predict.parse_args(["--model", "m", "--features", "f", "--ann", "a", "--out", "p",
                               "--qa-mapping", str(moved)]).qa_mapping == str(moved)
    videos = tmp_path / "YouTubeClips"
    videos.mkdir()
    for clip in clips:
        (videos / f"{clip}.avi").write_bytes(b"")
    items = list_videos([str(release / "train_qa.json")], str(videos), qa_mapping=str(moved))
    assert [(i.video_id, i.path) for i in items] == [(c, str(videos / f"{c}.avi")) for c in sorted(clips)]
    from features import audio, video

    for module in (audio, video):
        parsed = module.parse_args([str(release / "train_qa.json"), "--out", "o", "--qa-mapping", str(moved)])
        assert parsed.qa_mapping == str(moved)


def test_question_types_from_category_id_and_contractions(tmp_path):
    """MSRVTT-QA's category_id groups the questions (named after their most common question word); without it
    the question word, contraction dropped: "what's" is a "what" question (issue 19)."""
    release = [{"answer": "cook", "category_id": 0, "id": 0, "question": "what's the man doing?", "video_id": 1},
               {"answer": "pan", "category_id": 0, "id": 1, "question": "what is in the pan?", "video_id": 1},
               {"answer": "man", "category_id": 1, "id": 2, "question": "who is cooking?", "video_id": 2},
               {"answer": "man", "category_id": 1, "id": 3, "question": "who's cooking?", "video_id": 2},
               {"answer": "kitchen", "category_id": 4, "id": 4, "question": "what place is shown?", "video_id": 2}]
    types = [i.qtype for i in load_qa_annotations(write(tmp_path, release, "test_qa.json"))]
    assert types == ["what (0)", "what (0)", "who", "who", "what (4)"]  # two categories both mostly "what"
    plain = [{k: v for k, v in r.items() if k != "category_id"} for r in release]
    types = [i.qtype for i in load_qa_annotations(write(tmp_path, plain, "msvd_qa.json"))]
    assert types == ["what", "what", "who", "who", "what"]


def test_answer_vocabulary_deduplicates_normalised_answers():
    from videoblip2.data import answer_vocabulary

    answers = ["Two", "2", "2", "dog", "Dog.", "the dog", "cat", "two"]
    items = [QAItem(str(i), "v", "q?", a, "", None) for i, a in enumerate(answers)]
    assert answer_vocabulary(items) == ["2", "dog", "cat"]  # "Two"/"2"/"two" one candidate (4), dog 3, cat 1
