"""MSVD, VATEX, VALOR-32K and CSV/TSV annotations (videoblip2.annotations): small files in each format written
here, the real releases' quirks (comments, language column, per-split files, a test file without captions),
splits, errors that name file and record, clip-name segments; then one run per format on synthetic features:
load -> train_ce a few steps -> predict -> evaluate."""

import csv
import json
import shutil

import numpy as np
import pytest

from videoblip2.annotations import (
    AnnotationError,
    detect_format,
    has_splits,
    load_annotations,
    load_segments,
    parse_clip_name,
)

MSVD_TXT = """\
###############################################################
# Microsoft Research Video Description Corpus
###############################################################
-4wsuPCjDBc_5_15 A squirrel is eating a peanut in it's shell.
-4wsuPCjDBc_5_15 a chipmunk is eating
zv2RIbUsnSw_335_341 a man is cooking
zv2RIbUsnSw_335_341 A man cooks.

abc_def_1_9 a dog runs
"""


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _msvd_mapping(folder, clips):
    return _write(folder / "youtube_mapping.txt", "".join(f"{clip} vid{n}\n" for clip, n in clips))


# ------------------------------------------------------------------------------------------------ MSVD


def test_msvd_caption_list_and_standard_split(tmp_path):
    captions = _write(tmp_path / "AllVideoDescriptions.txt", MSVD_TXT)
    assert detect_format(captions) == "msvd" and not has_splits(captions)
    assert load_annotations(captions) == {
        "-4wsuPCjDBc_5_15": ["a squirrel is eating a peanut in it's shell", "a chipmunk is eating"],
        "zv2RIbUsnSw_335_341": ["a man is cooking", "a man cooks"],
        "abc_def_1_9": ["a dog runs"],
    }
    with pytest.raises(AnnotationError, match="youtube_mapping.txt"):
        load_annotations(captions, "train")

    # vid1-1200 train, 1201-1300 validate, 1301-1970 test, in vidN order (not file order)
    _msvd_mapping(tmp_path, [("zv2RIbUsnSw_335_341", 7), ("-4wsuPCjDBc_5_15", 1201), ("abc_def_1_9", 3)])
    assert has_splits(captions)
    assert list(load_annotations(captions, "train")) == ["abc_def_1_9", "zv2RIbUsnSw_335_341"]
    assert list(load_annotations(captions, "val")) == ["-4wsuPCjDBc_5_15"]
    assert len(load_annotations(captions)) == 3
    with pytest.raises(AnnotationError, match=r"split 'test' is empty: no clip .* vid1301-vid1970"):
        load_annotations(captions, "test")  # an empty split: nothing mapped to vid1301-1970


def test_msvd_split_needs_every_mapped_clip_captioned(tmp_path):
    captions = _write(tmp_path / "AllVideoDescriptions.txt", "a_1_2 a cat\n")
    _msvd_mapping(tmp_path, [("a_1_2", 1), ("b_1_2", 2)])
    with pytest.raises(AnnotationError, match=r"1 train clips .* no English caption, e\.g\. b_1_2"):
        load_annotations(captions, "train")


@pytest.mark.parametrize("text, message", [
    ("clip_only_1_2\n", r"line 1: expected 'clip_name caption words...'"),
    ("# c\nx_1_2 a cat\ny_1_2 ...\n", r"line 3 \(y_1_2\): empty caption"),
    ("a_1_2 vid1\nb_1_2 vid2\n", "this is the clip name -> vidN mapping"),
    ("# only comments\n", "no annotations"),
])
def test_msvd_txt_errors_name_file_and_line(tmp_path, text, message):
    path = _write(tmp_path / "captions.txt", text)
    with pytest.raises(AnnotationError, match=message) as error:
        load_annotations(path)
    assert str(path) in str(error.value)


def test_msvd_mapping_errors(tmp_path):
    captions = _write(tmp_path / "AllVideoDescriptions.txt", "a_1_2 a cat\n")
    _write(tmp_path / "youtube_mapping.txt", "a_1_2 vid1\nb_1_2 video2\n")
    with pytest.raises(AnnotationError, match=r"youtube_mapping.txt: line 2: expected 'clip_name vidN'"):
        load_annotations(captions, "train")
    _write(tmp_path / "youtube_mapping.txt", "a_1_2 vid1\nb_1_2 vid1\n")
    with pytest.raises(AnnotationError, match="line 2: b_1_2 / vid1 is listed twice"):
        load_annotations(captions, "train")


def _msvd_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["VideoID", "Start", "End", "WorkerID", "Source", "AnnotationTime", "Language",
                         "Description"])
        writer.writerows(rows)
    return path


def test_msvd_corpus_csv_english_only_and_segments(tmp_path):
    path = _msvd_csv(tmp_path / "MSR Video Description Corpus.csv", [
        ["-4wsuPCjDBc", "5", "15", "1", "clean", "17", "English", "A squirrel, eating a nut."],
        ["-4wsuPCjDBc", "5", "15", "2", "clean", "17", "German", "Ein Eichhoernchen"],
        ["-4wsuPCjDBc", "5", "15", "3", "clean", "17", "English", ""],  # the release has such rows
        ["mv89psg6zh4", "33", "46", "4", "unverified", "9", "English", "a bird in a sink"],
    ])
    assert detect_format(path) == "msvd"
    assert load_annotations(path) == {"-4wsuPCjDBc_5_15": ["a squirrel, eating a nut"],
                                      "mv89psg6zh4_33_46": ["a bird in a sink"]}
    assert load_segments(path) == {"-4wsuPCjDBc_5_15": ("-4wsuPCjDBc", 5.0, 15.0),
                                   "mv89psg6zh4_33_46": ("mv89psg6zh4", 33.0, 46.0)}
    bad = _msvd_csv(tmp_path / "bad.csv", [["abc", "five", "15", "1", "clean", "1", "English", "a cat"]])
    with pytest.raises(AnnotationError, match=r"bad.csv: line 2: expected a VideoID and whole-second Start/End"):
        load_annotations(bad)
    short = _msvd_csv(tmp_path / "short.csv", [["abc", "1", "15", "English", "a cat"]])
    with pytest.raises(AnnotationError, match=r"short.csv: line 2: 5 fields, the header has 8"):
        load_annotations(short)


# ------------------------------------------------------------------------------------------------ VATEX


def test_vatex_english_captions_and_a_test_file_without_them(tmp_path):
    records = [{"videoID": "Ptf_2VRj-V0_000122_000132", "enCap": ["A man plays a drum.", "Someone drums"],
                "chCap": ["一个男人在打鼓"]},
               {"videoID": "abc_000001_000011", "enCap": ["a dog barks"]}]
    path = _write(tmp_path / "vatex_training_v1.0.json", json.dumps(records, ensure_ascii=False))
    assert detect_format(path) == "vatex"
    assert load_annotations(path) == {"Ptf_2VRj-V0_000122_000132": ["a man plays a drum", "someone drums"],
                                      "abc_000001_000011": ["a dog barks"]}
    assert load_annotations(path, "train") == load_annotations(path)  # its own split, from the name
    with pytest.raises(AnnotationError, match="split 'test' requested from a single VATEX file"):
        load_annotations(path, "test")

    test = _write(tmp_path / "vatex_public_test_without_annotations.json",
                  json.dumps([{"videoID": "xyz_000010_000020"}, {"videoID": "uvw_000000_000010"}]))
    with pytest.raises(AnnotationError, match="2 of 2 videos have no .*captioned .* but not trained on or scored"):
        load_annotations(test)
    assert load_annotations(test, require_captions=False) == {"xyz_000010_000020": [], "uvw_000000_000010": []}


@pytest.mark.parametrize("records, message", [
    ([{"videoID": "a_1_2", "enCap": ["x"]}, {"videoID": "a_1_2", "enCap": ["y"]}], "record 1 .*duplicate videoID"),
    ([{"videoID": "a_1_2", "enCap": "a cat"}], r"record 0 \(videoID 'a_1_2'\): 'enCap' must be a list"),
    ([{"videoID": "a_1_2", "enCap": ["a cat", 3]}], r"record 0 \(videoID 'a_1_2'\) enCap 1: caption must be a str"),
    ([{"videoID": ""}], "record 0: expected an object with a non-empty string 'videoID'"),
])
def test_vatex_errors(tmp_path, records, message):
    path = _write(tmp_path / "vatex.json", json.dumps(records))
    with pytest.raises(AnnotationError, match=message):
        load_annotations(path, format="vatex")


def test_vatex_folder_splits(tmp_path):
    for name, vid in [("vatex_training_v1.0.json", "t_000001_000011"), ("vatex_validation_v1.0.json", "v_000001_000011"),
                      ("vatex_public_test_english_v1.1.json", "e_000001_000011"),
                      ("vatex_public_test_without_annotations.json", "w_000001_000011")]:
        _write(tmp_path / name, json.dumps([{"videoID": vid, "enCap": ["a cat"]}]))
    assert detect_format(tmp_path) == "vatex" and has_splits(tmp_path)
    assert list(load_annotations(tmp_path, "test")) == ["e_000001_000011"]  # the English test file first
    assert list(load_annotations(tmp_path, "validate")) == ["v_000001_000011"]
    assert list(load_annotations(tmp_path)) == ["t_000001_000011", "v_000001_000011", "e_000001_000011"]


# ------------------------------------------------------------------------------------------------ VALOR


def test_valor_folder_and_files(tmp_path):
    for split, vids in [("train", ["a", "b"]), ("val", ["c"]), ("test", ["d"])]:
        _write(tmp_path / f"desc_{split}.json",
               json.dumps([{"video_id": v, "desc": f"A {v} is heard barking while a man talks."} for v in vids]))
    assert detect_format(tmp_path) == "valor" and detect_format(tmp_path / "desc_val.json") == "valor"
    assert load_annotations(tmp_path, "train") == {"a": ["a a is heard barking while a man talks"],
                                                   "b": ["a b is heard barking while a man talks"]}
    assert list(load_annotations(tmp_path, "val")) == ["c"]
    assert list(load_annotations(tmp_path)) == ["a", "b", "c", "d"]
    assert list(load_annotations(tmp_path / "desc_test.json", "test")) == ["d"]
    with pytest.raises(AnnotationError, match=r"desc_test.json: split 'train' .*single VALOR file \(its split: test\)"):
        load_annotations(tmp_path / "desc_test.json", "train")
    with pytest.raises(AnnotationError, match="split 'dev' does not exist"):
        load_annotations(tmp_path, "dev")
    (tmp_path / "desc_test.json").unlink()
    with pytest.raises(AnnotationError, match=r"no test file \(desc_test.json\) in this folder"):
        load_annotations(tmp_path, "test")


def test_valor_errors_and_overlapping_splits(tmp_path):
    path = _write(tmp_path / "desc_train.json", json.dumps([{"video_id": "a", "desc": "x"}, {"video_id": "b"}]))
    with pytest.raises(AnnotationError, match=r"desc_train.json: record 1 \(video_id 'b'\): missing 'desc'"):
        load_annotations(path)
    _write(path, json.dumps([{"video_id": "a", "desc": "a cat"}]))
    _write(tmp_path / "desc_val.json", json.dumps([{"video_id": "a", "desc": "a cat"}]))
    with pytest.raises(AnnotationError, match="desc_val.json: 1 videos also appear in another split"):
        load_annotations(tmp_path)


# ------------------------------------------------------------------------------------------------ CSV / TSV


def test_csv_and_tsv(tmp_path):
    plain = _write(tmp_path / "own.csv", 'clip1,A cat sits.\nclip2,"a dog, barking"\nclip1,the cat\n')
    assert detect_format(plain) == "csv" and not has_splits(plain)
    assert load_annotations(plain) == {"clip1": ["a cat sits", "the cat"], "clip2": ["a dog, barking"]}
    header = _write(tmp_path / "own2.csv", "caption,video_id,annotator\na cat,clip1,7\n")
    assert load_annotations(header) == {"clip1": ["a cat"]}
    tsv = _write(tmp_path / "own.tsv", "video_id\tcaption\nclip1\ta cat, sitting\n")
    assert load_annotations(tsv) == {"clip1": ["a cat, sitting"]}
    # a .txt is read as MSVD unless named otherwise
    txt = _write(tmp_path / "own.txt", "clip1\ta cat sits\n")
    assert load_annotations(txt, format="tsv") == {"clip1": ["a cat sits"]}
    with pytest.raises(AnnotationError, match="has no splits"):
        load_annotations(plain, "train")


@pytest.mark.parametrize("text, message", [
    ("clip1,a cat,extra\n", r"line 1: expected 2 CSV fields \(video_id, caption\), got 3; quote captions"),
    ("clip1\n", r"line 1: expected 2 CSV fields"),
    (" ,a cat\n", "line 1: empty video_id"),
    ("clip1,a cat\nclip2, . \n", r"line 2 \(clip2\): empty caption"),
    ('clip1,"a cat\n', "malformed CSV"),
    ("video_id,caption\nclip1\n", r"line 2: expected 2 CSV fields \(the header's columns\), got 1"),
    # issue 20: with a header, an unquoted comma in a caption is an error too (it silently cut the caption)
    ("video_id,caption\nvideo0,a robot stands up, in the kitchen\n",
     r"line 2: expected 2 CSV fields \(the header's columns\), got 3; quote captions"),
    ("caption,video_id,annotator\na cat,clip1\n", r"line 2: expected 3 CSV fields"),
    # an unknown header is named as a header, not read as a caption of video "vid"
    ("vid,text\nclip1,a cat\n", r"line 1 \(vid,text\) looks like a header but does not name the video_id and "
                                 "caption columns"),
])
def test_csv_errors_name_file_and_line(tmp_path, text, message):
    path = _write(tmp_path / "own.csv", text)
    with pytest.raises(AnnotationError, match=message) as error:
        load_annotations(path)
    assert str(path) in str(error.value)


def test_unknown_format_name(tmp_path):
    with pytest.raises(AnnotationError, match="unknown annotation format 'msvdx'"):
        load_annotations(_write(tmp_path / "a.csv", "a,b\n"), format="msvdx")


# ------------------------------------------------------------------------------------------------ segments


@pytest.mark.parametrize("clip, expected", [
    ("Ptf_2VRj-V0_000122_000132", ("Ptf_2VRj-V0", 122.0, 132.0)),  # VATEX: zero-padded seconds
    ("-4wsuPCjDBc_5_15", ("-4wsuPCjDBc", 5.0, 15.0)),  # MSVD: whole seconds
    ("a_b_c_1.5_2.25", ("a_b_c", 1.5, 2.25)),
])
def test_parse_clip_name(clip, expected):
    assert parse_clip_name(clip) == expected


@pytest.mark.parametrize("clip", ["video7", "abc_5", "abc_x_15", "abc_15_5", "_1_2", "abc_3_3"])
def test_parse_clip_name_rejects(clip):
    with pytest.raises(ValueError, match="clip name|empty or negative"):
        parse_clip_name(clip)


def test_msrvtt_official_segments(tmp_path):
    data = {"videos": [{"video_id": "video0", "split": "train", "url": "https://www.youtube.com/watch?v=9lZi22qLlEo",
                        "start time": 137.72, "end time": 149.44},
                       {"video_id": "video1", "split": "test", "start time": 3, "end time": 9}],
            "sentences": [{"video_id": "video0", "caption": "a"}, {"video_id": "video1", "caption": "b"}]}
    path = _write(tmp_path / "train_val_videodatainfo.json", json.dumps(data))
    assert load_segments(path) == {"video0": ("9lZi22qLlEo", 137.72, 149.44), "video1": ("video1", 3.0, 9.0)}
    assert load_segments(path, "test") == {"video1": ("video1", 3.0, 9.0)}
    data["videos"][1]["end time"] = 2
    _write(path, json.dumps(data))
    with pytest.raises(AnnotationError, match=r"videos\[1\] \(video1\): need numeric 'start time' < 'end time'"):
        load_segments(path)
    vatex = _write(tmp_path / "v.json", json.dumps([{"videoID": "a_000001_000002", "enCap": ["x"]}]))
    with pytest.raises(AnnotationError, match="no start/end fields.*--trim name"):
        load_segments(vatex)


# ------------------------------------------------------------------------------------------------ end to end


def _renamed_features(synth, out, names):
    """The synthetic features under new video ids (the feature file stem is the video id)."""
    for kind in ("video", "audio"):
        (out / kind).mkdir(parents=True)
        for old, new in names.items():
            if (synth / kind / f"{old}.npy").exists():
                shutil.copy(synth / kind / f"{old}.npy", out / kind / f"{new}.npy")
    meta = json.loads((synth / "meta.json").read_text())
    meta["audio"]["no_audio"] = [names[v] for v in meta["audio"].get("no_audio", []) if v in names]
    (out / "meta.json").write_text(json.dumps(meta))


def _write_dataset(fmt, root, splits):
    """``splits``: {split: {video_id: [captions]}} -> files in ``fmt``; returns the train/predict/eval flags."""
    root.mkdir()
    if fmt == "msvd":
        lines, mapping, first = ["# MSVD-style caption list"], [], {"train": 1, "validate": 1201, "test": 1301}
        for split, videos in splits.items():
            for n, (clip, caps) in enumerate(videos.items(), first[split]):
                lines += [f"{clip} {c}" for c in caps]
                mapping.append(f"{clip} vid{n}")
        ann = _write(root / "AllVideoDescriptions.txt", "\n".join(lines) + "\n")
        _write(root / "youtube_mapping.txt", "\n".join(mapping) + "\n")
        return {"train": ["--ann", str(ann)], "test": ["--ann", str(ann), "--split", "test"]}
    if fmt == "vatex":
        names = {"train": "vatex_training_v1.0.json", "validate": "vatex_validation_v1.0.json",
                 "test": "vatex_public_test_english_v1.1.json"}
        for split, videos in splits.items():
            _write(root / names[split], json.dumps([{"videoID": v, "enCap": c, "chCap": ["中文"]} for v, c in videos.items()]))
        return {"train": ["--ann", str(root)], "test": ["--ann", str(root), "--split", "test"]}
    if fmt == "valor":
        names = {"train": "desc_train.json", "validate": "desc_val.json", "test": "desc_test.json"}
        for split, videos in splits.items():  # one audio-visual caption per video
            _write(root / names[split], json.dumps([{"video_id": v, "desc": c[0]} for v, c in videos.items()]))
        return {"train": ["--ann", str(root)], "test": ["--ann", str(root / "desc_test.json")]}
    files = {}
    for split, videos in splits.items():
        files[split] = root / f"{split}.{fmt}"
        with open(files[split], "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter="," if fmt == "csv" else "\t")
            writer.writerow(["video_id", "caption"])
            writer.writerows([v, c] for v, caps in videos.items() for c in caps)
    return {"train": ["--ann", str(files["train"]), "--val-ann", str(files["validate"])],
            "test": ["--ann", str(files["test"])]}


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("fmt", ["msvd", "vatex", "valor", "csv"])
def test_load_train_predict_evaluate(fmt, synth_data, tiny_init_dir, tmp_path):
    from eval import evaluate
    from train import train_ce
    from videoblip2 import predict

    # the synthetic videos under this data set's kind of id, with their synthetic captions
    ids = {"msvd": "yt{i}-x_{i}_{j}", "vatex": "Ptf_{i}_{i:06d}_{j:06d}", "valor": "av{i}", "csv": "clip {i}"}[fmt]
    splits, names = {}, {}
    for split in ("train", "validate", "test"):
        file = "test_videodatainfo.json" if split == "test" else "train_val_videodatainfo.json"
        for old, caps in load_annotations(synth_data / file, split).items():
            i = int(old[len("video"):])
            names[old] = ids.format(i=i, j=i + 10)
            splits.setdefault(split, {})[names[old]] = caps[:5]
    features = tmp_path / "features"
    _renamed_features(synth_data, features, names)
    flags = _write_dataset(fmt, tmp_path / "ann", splits)

    out = tmp_path / "ce"
    train_ce.main(["--model", str(tiny_init_dir), "--features", str(features), *flags["train"], "--out", str(out),
                   "--batch-size", "4", "--max-steps", "2", "--log-every", "1", "--no-progress", "--num-threads", "1"])
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["type"] == "train"] == [1, 2]
    vals = [r for r in log if r["type"] == "val"]  # validated on the validate split that the format holds
    assert vals and all(np.isfinite(r["val_loss"]) for r in vals)

    preds = tmp_path / "preds.json"
    captions = predict.main(["--model", str(out / "best"), "--features", str(features), *flags["test"],
                             "--out", str(preds), "--device", "cpu", "--batch-size", "4"])
    assert sorted(captions) == sorted(splits["test"])
    result = evaluate.main(["--predictions", str(preds), *flags["test"], "--no-meteor",
                            "--out", str(tmp_path / "metrics.json")])
    assert result["num_videos"] == len(splits["test"])
    assert 0 <= result["metrics"]["CIDEr"] < 10 and set(result["metrics"]) >= {"BLEU-4", "ROUGE_L", "CIDEr"}

    # a perfect prediction (a reference caption) beats the model's on the same references: the scores are real
    refs = load_annotations(*flags["test"][1:2], *flags["test"][3:4])
    oracle = tmp_path / "oracle.json"
    oracle.write_text(json.dumps([{"video_id": v, "caption": caps[0]} for v, caps in refs.items()]))
    best = evaluate.main(["--predictions", str(oracle), *flags["test"], "--no-meteor"])
    assert best["metrics"]["BLEU-1"] > 0.9


def test_vatex_test_file_without_captions_is_captioned_not_scored(synth_data, tiny_init_dir, tmp_path, capsys):
    from eval import evaluate
    from videoblip2 import predict

    features = tmp_path / "features"
    _renamed_features(synth_data, features, {"video7": "abc_000001_000011", "video8": "xyz_000005_000015"})
    test = _write(tmp_path / "vatex_public_test_without_annotations.json",
                  json.dumps([{"videoID": "abc_000001_000011"}, {"videoID": "xyz_000005_000015"}]))
    preds = tmp_path / "preds.json"
    captions = predict.main(["--model", str(tiny_init_dir), "--features", str(features), "--ann", str(test),
                             "--out", str(preds), "--device", "cpu"])
    assert sorted(captions) == ["abc_000001_000011", "xyz_000005_000015"]
    assert "note: 2 of 2 videos of" in capsys.readouterr().out
    with pytest.raises(AnnotationError, match="2 of 2 videos have no .*can be captioned .* not trained on or scored"):
        evaluate.main(["--predictions", str(preds), "--ann", str(test), "--no-meteor"])
