"""videoblip2.annotations: format detection, splits, normalisation, errors that name the file and the record."""

from __future__ import annotations

import json

import pytest

from videoblip2.annotations import (
    AnnotationError,
    load_annotations,
    load_predictions,
    normalize_caption,
    save_predictions,
)


def official(videos, sentences):
    return {"info": {"year": 2016}, "videos": videos, "sentences": sentences}


def video(i, split):
    return {"category": 3, "url": "https://youtu.be/x", "video_id": f"video{i}", "start time": 1.0,
            "end time": 11.0, "split": split, "id": i}


@pytest.fixture
def official_file(tmp_path):
    videos = [video(0, "train"), video(1, "train"), video(2, "validate"), video(3, "test")]
    sentences, sen_id = [], 0
    for v in (1, 0, 2, 3, 0, 1, 2, 3):  # captions interleaved across videos, as in the real file
        sentences.append({"caption": f"Caption {sen_id} of video {v}.", "video_id": f"video{v}", "sen_id": sen_id})
        sen_id += 1
    path = tmp_path / "train_val_videodatainfo.json"
    path.write_text(json.dumps(official(videos, sentences)))
    return path


def write(tmp_path, data, name="ann.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.mark.parametrize("raw, expected", [
    ("A man is cooking.", "a man is cooking"),
    ("  A   man\tis\ncooking .  ", "a man is cooking"),
    ("a dog runs...", "a dog runs"),
    ("Mr. Bean, on T.V. now", "mr. bean, on t.v. now"),  # inner punctuation is kept
    ("...", ""),
    ("", ""),
])
def test_normalize_caption(raw, expected):
    assert normalize_caption(raw) == expected


def test_official_format_all_and_splits(official_file):
    everything = load_annotations(official_file)
    assert list(everything) == ["video0", "video1", "video2", "video3"]  # order of "videos"
    assert everything["video0"] == ["caption 1 of video 0", "caption 4 of video 0"]  # order of "sentences"
    assert everything["video1"] == ["caption 0 of video 1", "caption 5 of video 1"]
    assert list(load_annotations(official_file, split="train")) == ["video0", "video1"]
    assert list(load_annotations(official_file, split="validate")) == ["video2"]
    assert load_annotations(official_file, split="val") == load_annotations(official_file, split="validate")
    assert list(load_annotations(official_file, split="test")) == ["video3"]


def test_unknown_split_lists_existing_ones(official_file):
    with pytest.raises(AnnotationError, match=r"train_val_videodatainfo.json.*'dev'.*test, train, validate"):
        load_annotations(official_file, split="dev")


def test_list_and_mapping_formats(tmp_path):
    records = [{"video_id": "video9", "caption": "A cat."}, {"video_id": "video8", "caption": "a dog"},
               {"video_id": "video9", "caption": "The  cat sleeps"}]
    assert load_annotations(write(tmp_path, records)) == {"video9": ["a cat", "the cat sleeps"],
                                                          "video8": ["a dog"]}
    mapping = {"video9": ["A cat.", "The cat sleeps"], "video8": ["a dog"]}
    assert load_annotations(write(tmp_path, mapping)) == {"video9": ["a cat", "the cat sleeps"],
                                                          "video8": ["a dog"]}
    with pytest.raises(AnnotationError, match="this file has no splits"):
        load_annotations(write(tmp_path, mapping), split="test")


@pytest.mark.parametrize("data, message", [
    ('{"videos": [', r"malformed JSON at line 1"),
    ([{"caption": "a cat"}], r"record 0: missing 'video_id'"),
    ([{"video_id": "v1", "caption": "a"}, {"video_id": "v2", "caption": " . "}],
     r"record 1 \(video_id 'v2'\): empty caption"),
    ([{"video_id": "v1", "caption": 3}], r"record 0 .*caption must be a string"),
    ([{"video_id": "v1", "caption": "a", "sen_id": 4}, {"video_id": "v2", "caption": "b", "sen_id": 4}],
     r"record 1 .*duplicate sen_id 4"),
    ('{"v1": ["a"], "v1": ["b"]}', r"duplicate key 'v1'"),
    ({"v1": []}, r"video 'v1': expected a non-empty list"),
    ({"v1": ["fine", ""]}, r"video 'v1' caption 1: empty caption"),
    ("42", r"unknown annotation format"),
    ([], r"no annotations"),
])
def test_simple_format_errors_name_file_and_record(tmp_path, data, message):
    path = write(tmp_path, data, "bad_ann.json")
    with pytest.raises(AnnotationError, match=message) as info:
        load_annotations(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["videos"].append(video(0, "test")), r"videos\[2\]: duplicate video_id 'video0'"),
    (lambda d: d["videos"].append({"split": "train"}), r"videos\[2\]: missing 'video_id'"),
    (lambda d: d["videos"][1].pop("split"), r"videos\[1\] \(video1\): missing or invalid 'split'"),
    (lambda d: d["sentences"][1].pop("video_id"), r"sentences\[1\]: missing 'video_id'"),
    (lambda d: d["sentences"][1].update(caption="  "), r"sentences\[1\] \(video_id 'video1'\): empty caption"),
    (lambda d: d["sentences"][2].update(sen_id=0), r"sentences\[2\] .*duplicate sen_id 0"),
    (lambda d: d["sentences"][0].update(video_id="video77"), r"sentences\[0\] .*not listed in 'videos'"),
    (lambda d: d["sentences"].__delitem__(slice(1, 3)), r"1 video\(s\) have no caption, e.g. video1"),
])
def test_official_format_errors(tmp_path, change, message):
    data = official([video(0, "train"), video(1, "test")],
                    [{"caption": "a", "video_id": "video0", "sen_id": 0},
                     {"caption": "b", "video_id": "video1", "sen_id": 1},
                     {"caption": "c", "video_id": "video1", "sen_id": 2}])
    change(data)
    path = write(tmp_path, data, "broken_videodatainfo.json")
    with pytest.raises(AnnotationError, match=message) as info:
        load_annotations(path)
    assert "broken_videodatainfo.json" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_annotations(tmp_path / "nope.json")


def test_predictions_round_trip_and_validation(tmp_path):
    predictions = {"video7010": "A man is cooking.", "video7011": ""}
    path = tmp_path / "out" / "preds.json"
    save_predictions(predictions, path)
    assert json.loads(path.read_text()) == [{"video_id": "video7010", "caption": "A man is cooking."},
                                            {"video_id": "video7011", "caption": ""}]
    assert load_predictions(path) == predictions
    for data, message in [
        ({"video1": "a"}, "must be a list"),
        ([{"video_id": "v1"}], r"record 0 \(video_id 'v1'\): missing 'caption'"),
        ([{"caption": "a"}], r"record 0: missing 'video_id'"),
        ([{"video_id": "v1", "caption": "a"}, {"video_id": "v1", "caption": "b"}], r"record 1 .*predicted twice"),
        ([{"video_id": "v1", "caption": None}], "caption must be a string"),
    ]:
        with pytest.raises(AnnotationError, match=message):
            load_predictions(write(tmp_path, data, "bad_preds.json"))
