"""Issue 27: annotation files are untrusted; a video id never reaches outside its folders.

One rule (videoblip2.ids.check_video_id), applied by every annotation and QA format reader, the extractors'
inputs, FeatureStore, predict and caption; the extractors are run for real (tiny CLIP / CLAP, synthetic videos)
with a real video waiting at each traversal target.
"""

import csv
import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import av
from features import audio as audio_cli
from features import video as video_cli
from features.common import InputError, list_videos
from videoblip2.annotations import (
    AnnotationError,
    load_annotations,
    load_predictions,
    load_qa_annotations,
    load_segments,
)
from videoblip2.data import NO_AUDIO_SUFFIX, FeatureStore
from videoblip2.extract import VIDEO_EXTENSIONS, videos_in
from videoblip2.fileio import temp_sibling
from videoblip2.ids import ID_SUFFIXES, MAX_ID_BYTES, NAME_MAX, UnsafeIdError, check_video_id

# ids of every supported real data set (their shapes as the format tests and the releases write them)
REAL_IDS = [
    "video123", "video0", "video9999",  # MSR-VTT, MSRVTT-QA (video{N})
    "-4wsuPCjDBc_5_15", "-7KMZQEsJW4_205_208", "vid1", "vid1970",  # MSVD (clip names, leading '-'), MSVD-QA
    "Ptf_2VRj-V0_000122_000132", "--33Lscn6sk_000004_000014",  # VATEX
    "-0KkA4q0nX4_000030_000040", "video_0001", # VALOR-32K (AudioSet-style YouTube clips)
    "00000272", "sa00007434",  # MUSIC-AVQA
    "clip.with.dots", "ünïcödé-视频", "a" * MAX_ID_BYTES,
]

# (id, the rule's words in the message): the five the issue names
BAD_IDS = [
    ("../../outside/evil", "path separator"),
    ("..\\..\\outside\\evil", "path separator"),
    ("/abs/olute/evil", "absolute path"),
    ("evil\x00name", "NUL character"),
    ("x" * 300, f"at most {MAX_ID_BYTES} bytes"),
]
LEGIT = "-4wsuPCjDBc_5_15"  # MSVD: a leading '-' is a legitimate id


@pytest.mark.parametrize("video_id", REAL_IDS)
def test_real_data_set_ids_pass(video_id):
    assert check_video_id(video_id, "ann.json: record 0") == video_id


@pytest.mark.parametrize("video_id, rule", BAD_IDS + [
    ("", "must not be empty"), (".", "'.' or '..'"), ("..", "'.' or '..'"), ("\\\\server\\share", "absolute"),
    ("C:", "drive"), ("c:evil", "drive"), ("a/b", "path separator"), ("a\\b", "path separator"),
    ("é" * 122, "(this one has 244)"), ("a" * (MAX_ID_BYTES + 1), "at most"), ("\ud800x", "lone surrogate"),
    (7010, "must be a string"), (None, "must be a string"),
])
def test_unsafe_ids_are_refused_with_file_entry_id_and_rule(video_id, rule):
    with pytest.raises(UnsafeIdError) as caught:
        check_video_id(video_id, "data/ann.csv: line 7")
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert message.startswith("data/ann.csv: line 7: unsafe video id ")
    assert repr(video_id)[:40] in message and rule in message and "\n" not in message
    assert len(message) < 400  # a 300-byte id is shown cut short


def test_the_longest_written_name_fits_the_file_name_limit():
    assert MAX_ID_BYTES + len(".noaudio.json") == NAME_MAX
    assert NO_AUDIO_SUFFIX in ID_SUFFIXES and ".npy" in ID_SUFFIXES  # the names the extractors write
    assert max(len(ext) for ext in VIDEO_EXTENSIONS) <= len(".noaudio.json")
    # the temporary sibling of the longest name stays within the limit too (it is renamed over the target)
    longest = Path("/f") / ("é" * (MAX_ID_BYTES // 2) + ".noaudio.json")
    assert len(os.fsencode(longest.name)) == NAME_MAX
    assert len(os.fsencode(temp_sibling(longest).name)) <= NAME_MAX
    assert temp_sibling(Path("/f/a.npy")).name.startswith(".a.npy.")  # short names keep the readable form


# ------------------------------------------------------------------------------------------------
# every annotation format the project reads


def _table(rows, delimiter):
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return text.getvalue()


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# name -> (write(folder, video_id) -> path, load(path) -> ids, where the refusal points)
CAPTION_FORMATS = {
    "msrvtt-official": (
        lambda d, v: _write(d / "train_val_videodatainfo.json", json.dumps(
            {"videos": [{"video_id": "video1", "split": "train"}, {"video_id": v, "split": "train"}],
             "sentences": [{"video_id": "video1", "caption": "a dog"}, {"video_id": v, "caption": "a cat"}]})),
        lambda p: list(load_annotations(p, "train")), "videos[1]"),
    "msrvtt-records": (
        lambda d, v: _write(d / "train.json", json.dumps([{"video_id": "video1", "caption": "a dog"},
                                                          {"video_id": v, "caption": "a cat"}])),
        lambda p: list(load_annotations(p)), "record 1"),
    "msrvtt-mapping": (
        lambda d, v: _write(d / "refs.json", json.dumps({"video1": ["a dog"], v: ["a cat"]})),
        lambda p: list(load_annotations(p)), "key"),
    "msvd-txt": (
        lambda d, v: _write(d / "AllVideoDescriptions.txt", f"# MSVD\nvid1_1_2 a dog runs\n{v} a cat sits\n"),
        lambda p: list(load_annotations(p)), "line 3"),
    "msvd-corpus-csv": (  # the id is built: {VideoID}_{Start}_{End}
        lambda d, v: _write(d / "MSR Video Description Corpus.csv", _table(
            [["VideoID", "Start", "End", "WorkerID", "Source", "AnnotationTime", "Language", "Description"],
             ["abc", "1", "2", "7", "clean", "20", "English", "a dog"],
             [v.rsplit("_", 2)[0] if v == LEGIT else v, "5" if v == LEGIT else "1", "15" if v == LEGIT else "2",
              "7", "clean", "20", "English", "a cat"]], ",")),
        lambda p: list(load_annotations(p, format="msvd")), "line 3"),
    "vatex": (
        lambda d, v: _write(d / "vatex_training_v1.0.json", json.dumps(
            [{"videoID": "abc_000001_000011", "enCap": ["a dog"]}, {"videoID": v, "enCap": ["a cat"]}])),
        lambda p: list(load_annotations(p)), "record 1"),
    "valor-file": (
        lambda d, v: _write(d / "desc_train.json", json.dumps([{"video_id": "a", "desc": "a dog barks"},
                                                               {"video_id": v, "desc": "a cat meows"}])),
        lambda p: list(load_annotations(p)), "record 1"),
    "valor-folder": (
        lambda d, v: _write(d / "desc_test.json", json.dumps([{"video_id": v, "desc": "a cat meows"}])).parent,
        lambda p: list(load_annotations(p, "test")), "record 0"),
    "csv": (
        lambda d, v: _write(d / "own.csv", _table([["video_id", "caption"], ["clip1", "a dog"], [v, "a cat"]], ",")),
        lambda p: list(load_annotations(p)), "line 3"),
    "tsv": (
        lambda d, v: _write(d / "own.tsv", _table([["clip1", "a dog"], [v, "a cat"]], "\t")),
        lambda p: list(load_annotations(p)), "line 2"),
    "predictions": (
        lambda d, v: _write(d / "pred.json", json.dumps([{"video_id": "video1", "caption": "a dog"},
                                                         {"video_id": v, "caption": "a cat"}])),
        lambda p: list(load_predictions(p)), "record 1"),
    "msrvtt-segments-url": (  # --trim ann: the full video is named by the YouTube id of the url
        lambda d, v: _write(d / "train_val_videodatainfo.json", json.dumps(
            {"videos": [{"video_id": "video1", "split": "train", "url": f"https://www.youtube.com/watch?v={v}",
                         "start time": 1, "end time": 2}],
             "sentences": [{"video_id": "video1", "caption": "a cat"}]})),
        lambda p: [source for source, _, _ in load_segments(p, "train").values()], "videos[0]"),
}

QA_FORMATS = {
    "music-avqa": (
        lambda d, v: _write(d / "avqa-test.json", json.dumps([{
            "video_id": v, "question_id": 50, "type": "[\"Audio-Visual\", \"Temporal\"]",
            "question_content": "Where is the <FL> sounding instrument?", "templ_values": "[\"first\"]",
            "question_deleted": 0, "anser": "left"}])),
        lambda p: [i.video_id for i in load_qa_annotations(p)], "record 0 (question_id '50')"),
    "msrvtt-qa-jsonl-plain": (
        lambda d, v: _write(d / "qa.jsonl", json.dumps({"video_id": v, "question": "who?", "answer": "a man"}) + "\n"),
        lambda p: [i.video_id for i in load_qa_annotations(p)], "record 0"),
    "msvd-qa-video-map": (  # integer N -> vidN -> the clip name of the (untrusted) mapping
        lambda d, v: _write(d / "msvd_qa.json", json.dumps([{"id": 3, "video_id": 2, "question": "what runs?",
                                                             "answer": "dog"}])),
        None, "record 0 (question_id '3')"),
}


def _msvd_qa_loader(video_id):
    return lambda p: [i.video_id for i in load_qa_annotations(p, video_map={"vid2": video_id})]


@pytest.mark.parametrize("bad, rule", BAD_IDS, ids=["dotdot-slash", "dotdot-backslash", "absolute", "nul", "300-bytes"])
@pytest.mark.parametrize("fmt", list(CAPTION_FORMATS) + list(QA_FORMATS))
def test_every_format_refuses_unsafe_ids_and_reads_a_leading_dash(fmt, bad, rule, tmp_path):
    write, load, where = {**CAPTION_FORMATS, **QA_FORMATS}[fmt]
    if fmt == "msvd-qa-video-map":
        load = _msvd_qa_loader(bad)
    if fmt == "msvd-corpus-csv":
        bad_id = f"{bad}_1_2"  # what the reader builds from the row
    else:
        bad_id = bad
    path = write(tmp_path, bad)
    with pytest.raises(UnsafeIdError) as caught:
        load(path)
    message = str(caught.value)
    assert isinstance(caught.value, AnnotationError)  # every caller's AnnotationError handling applies: exit 2
    shown = path if path.is_file() else next(path.iterdir())
    assert message.startswith(f"{shown}: {where}") and "unsafe video id" in message
    assert repr(bad_id)[:40] in message and rule in message and "\n" not in message

    # a legitimate id with a leading '-' (MSVD) is read as written, by the same format
    legit = tmp_path / "legit"
    legit.mkdir()
    if fmt == "msvd-qa-video-map":
        load = _msvd_qa_loader(LEGIT)
    assert LEGIT in load(write(legit, LEGIT))


@pytest.mark.parametrize("bad, expected", [
    ("../../outside/evil", "evil"),  # LAVIS 'video' is a file name: only its stem is the id, never a path
    ("/abs/olute/evil", "evil"),
    ("..\\..\\outside\\evil", None), ("evil\x00name", None), ("x" * 300, None),
])
def test_lavis_video_file_names_keep_only_a_safe_stem(bad, expected, tmp_path):
    path = _write(tmp_path / "lavis.json", json.dumps([{"question_id": "q9", "video": f"{bad}.mp4",
                                                        "question": "how many?", "answer": "2"}]))
    if expected is None:
        with pytest.raises(UnsafeIdError, match=r"lavis.json: record 0 \(question_id 'q9'\) video id: unsafe"):
            load_qa_annotations(path)
    else:
        assert [i.video_id for i in load_qa_annotations(path)] == [expected]


# ------------------------------------------------------------------------------------------------
# the extractors, run for real: nothing written outside --out, nothing read outside --video-dir


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root``: {relative path: (size, mtime_ns)} (folders: size 0)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            stat = path.lstat()
            # a folder's mtime changes with any new entry anywhere in it: the new entry itself is what counts
            out[str(path.relative_to(root))] = (0, 0) if path.is_dir() else (stat.st_size, stat.st_mtime_ns)
    return out


@pytest.fixture
def opened(monkeypatch):
    """Every path the extractors open: with PyAV (videos) and with Python's open (everything else)."""
    import builtins

    paths: list[str] = []
    real_av_open, real_open = av.open, builtins.open

    def av_open(file, *args, **kwargs):
        paths.append(os.fspath(file))
        return real_av_open(file, *args, **kwargs)

    def py_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)):
            paths.append(os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", av_open)
    monkeypatch.setattr(builtins, "open", py_open)
    return paths


def _dataset(tmp_path: Path, media) -> dict[str, Path]:
    """vids/ (the --video-dir) with two legitimate videos, and real videos at the traversal targets."""
    vids, outside, absolute = tmp_path / "DS" / "vids", tmp_path / "DS" / "outside", tmp_path / "abs"
    for folder in (vids, outside, absolute):
        folder.mkdir(parents=True)
    shutil.copy(media["tone"], vids / "ok.mp4")
    shutil.copy(media["tone"], vids / f"{LEGIT}.mp4")
    shutil.copy(media["tone"], outside / "evil.mp4")
    shutil.copy(media["tone"], absolute / "evil.mp4")
    return {"vids": vids, "outside": outside, "abs": absolute, "out": tmp_path / "DS" / "feat"}


def _extractor_args(kind, tiny_files, inputs, dataset, *extra):
    model = (["--clip-model", tiny_files["clip_config"], "--clip-pretrained", tiny_files["clip_ckpt"],
              "--num-frames", "4"]
             if kind == "video" else
             ["--clap-model", tiny_files["clap_config"], "--clap-pretrained", tiny_files["clap_ckpt"], "--window", "1",
              "--hop", "1"])
    return [*inputs, "--video-dir", str(dataset["vids"]), "--out", str(dataset["out"]), *model,
            "--device", "cpu", "--workers", "0", *extra]


TRAVERSALS = {  # annotation file -> (name, text) with an id aimed at a real video outside --video-dir
    "csv-dotdot": ("own.csv", lambda ds: "video_id,caption\nok,a tone\n../outside/evil,a caption\n", "line 3"),
    "csv-backslash": ("own.csv", lambda ds: "ok,a tone\n..\\outside\\evil,a caption\n", "line 2"),
    "msrvtt-absolute": ("train.json", lambda ds: json.dumps([{"video_id": "ok", "caption": "a tone"}, {
        "video_id": str(ds["abs"] / "evil"), "caption": "a caption"}]), "record 1"),
    "msvd-txt-nul": ("AllVideoDescriptions.txt", lambda ds: "ok a tone\nevil\x00x a caption\n", "line 2"),
    "vatex-300-bytes": ("vatex_test.json", lambda ds: json.dumps([{"videoID": "ok"}, {"videoID": "e" * 300}]),
                        "record 1"),
    "valor-dotdot": ("desc_test.json", lambda ds: json.dumps([{"video_id": "../outside/evil", "desc": "a caption"}]),
                     "record 0"),
}


@pytest.mark.parametrize("kind", ["video", "audio"])
@pytest.mark.parametrize("case", list(TRAVERSALS))
def test_extractors_refuse_traversal_before_any_work(kind, case, media, tiny_files, tmp_path, opened, capsys):
    dataset = _dataset(tmp_path, media)
    name, text, where = TRAVERSALS[case]
    ann = _write(tmp_path / "DS" / name, text(dataset))
    before = _tree(tmp_path)
    opened.clear()  # from here on: what the command opens
    cli = video_cli if kind == "video" else audio_cli
    extra = ("--ann-format", "msvd") if name.endswith(".txt") else ()
    assert cli.main(_extractor_args(kind, tiny_files, [str(ann)], dataset, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {ann}: {where}") and "unsafe video id" in err[0]
    assert _tree(tmp_path) == before  # nothing written anywhere: no out folder, no failure log, no feature
    assert not any(Path(p).suffix in VIDEO_EXTENSIONS for p in opened)  # no video opened at all


@pytest.mark.parametrize("kind", ["video", "audio"])
def test_trim_names_cannot_reach_outside(kind, media, tiny_files, tmp_path, opened, capsys):
    dataset = _dataset(tmp_path, media)
    ann = _write(tmp_path / "DS" / "clips.csv", "ok_0_1,a tone\n.._0_1,a clip of the video '..'\n")
    before = _tree(tmp_path)
    opened.clear()  # from here on: what the command opens
    cli = video_cli if kind == "video" else audio_cli
    assert cli.main(_extractor_args(kind, tiny_files, [str(ann)], dataset, "--trim", "name")) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {ann}: video '.._0_1' (--trim name: the full video's id): unsafe video id '..': "
                   "a video id must not be '.' or '..'")
    assert _tree(tmp_path) == before
    assert not any(Path(p).suffix in VIDEO_EXTENSIONS for p in opened)


def test_trim_ann_url_cannot_reach_outside(media, tiny_files, tmp_path, opened, capsys):
    dataset = _dataset(tmp_path, media)
    ann = _write(tmp_path / "DS" / "train_val_videodatainfo.json", json.dumps({
        "videos": [{"video_id": "ok", "split": "train", "start time": 0, "end time": 1,
                    "url": "https://www.youtube.com/watch?v=../outside/evil"}],
        "sentences": [{"video_id": "ok", "caption": "a tone"}]}))
    before = _tree(tmp_path)
    opened.clear()  # from here on: what the command opens
    assert video_cli.main(_extractor_args("video", tiny_files, [str(ann)], dataset, "--trim", "ann")) == 2
    assert "videos[0] (ok) url's YouTube id: unsafe video id '../outside/evil'" in capsys.readouterr().err
    assert _tree(tmp_path) == before
    assert not any(Path(p).suffix in VIDEO_EXTENSIONS for p in opened)


def test_msvd_corpus_segments_name_safe_full_videos(tmp_path):
    rows = [["VideoID", "Start", "End", "WorkerID", "Source", "AnnotationTime", "Language", "Description"],
            [LEGIT.rsplit("_", 2)[0], "5", "15", "1", "clean", "20", "English", "a squirrel eats"],
            ["..", "1", "2", "1", "clean", "20", "English", "a clip of the video '..'"]]
    path = _write(tmp_path / "MSR Video Description Corpus.csv", _table(rows, ","))
    with pytest.raises(UnsafeIdError, match=r"clip '\.\._1_2' \(its VideoID, the full video's name\): unsafe video id '\.\.'"):
        load_segments(path)
    path = _write(tmp_path / "MSR Video Description Corpus.csv", _table(rows[:2], ","))
    assert load_segments(path) == {LEGIT: ("-4wsuPCjDBc", 5.0, 15.0)}


def test_file_names_that_are_no_safe_id_are_refused(media, tmp_path):
    folder = tmp_path / "vids"
    folder.mkdir()
    shutil.copy(media["tone"], folder / "ok.mp4")
    shutil.copy(media["tone"], folder / "...mp4")  # stem '..'
    with pytest.raises(UnsafeIdError, match=r"\.\.\.mp4: file name: unsafe video id '\.\.'"):
        videos_in(folder)
    with pytest.raises(InputError, match=r"\.\.\.mp4: file name: unsafe video id '\.\.'"):
        list_videos([str(folder)])
    with pytest.raises(InputError, match=r"\.\.\.mp4: file name: unsafe video id"):
        list_videos([str(folder / "...mp4")])
    listing = _write(tmp_path / "videos.txt", "ok.mp4\nvids/...mp4\n")
    with pytest.raises(InputError, match=r"videos.txt: line 2: unsafe video id '\.\.'"):
        list_videos([str(listing)])


@pytest.mark.parametrize("kind", ["video", "audio"])
def test_legitimate_ids_are_extracted_inside_out_only(kind, media, tiny_files, tmp_path, opened, capsys):
    """A leading '-' (MSVD) and the longest id allowed (its .noaudio.json marker is exactly 255 bytes) are
    extracted; every new file is under --out and only videos of --video-dir are opened."""
    dataset = _dataset(tmp_path, media)
    longest = "m" * MAX_ID_BYTES
    shutil.copy(media["silent"], dataset["vids"] / f"{longest}.mkv")  # silent: audio writes the marker
    ann = _write(tmp_path / "DS" / "own.csv", f"{LEGIT},a tone\n{longest},silence\n")
    before = _tree(tmp_path)
    opened.clear()  # from here on: what the command opens
    cli = video_cli if kind == "video" else audio_cli
    assert cli.main(_extractor_args(kind, tiny_files, [str(ann)], dataset)) == 0, capsys.readouterr().err
    after = _tree(tmp_path)
    new = sorted(set(after) - set(before))
    out = dataset["out"].relative_to(tmp_path)
    assert new and all(Path(p).is_relative_to(out) for p in new)
    assert all(after[p] == before[p] for p in before if not Path(p).is_relative_to(out))  # nothing changed
    if kind == "video":
        assert np.load(dataset["out"] / "video" / f"{LEGIT}.npy").shape == (4, 768)
        assert (dataset["out"] / "video" / f"{longest}.npy").is_file()
    else:
        assert (dataset["out"] / "audio" / f"{LEGIT}.npy").is_file()
        marker = dataset["out"] / "audio" / f"{longest}.noaudio.json"
        assert len(marker.name.encode()) == NAME_MAX and json.loads(marker.read_text())["reason"] == "silent"
    videos = {Path(p).resolve() for p in opened if Path(p).suffix in VIDEO_EXTENSIONS}
    assert videos == {(dataset["vids"] / f"{LEGIT}.mp4").resolve(), (dataset["vids"] / f"{longest}.mkv").resolve()}


# ------------------------------------------------------------------------------------------------
# the data sets, predict, caption


def test_feature_store_refuses_ids_outside_its_folder(tmp_path):
    root, outside = tmp_path / "feat", tmp_path / "outside"
    (root / "video").mkdir(parents=True)
    outside.mkdir()
    np.save(root / "video" / "ok.npy", np.zeros((2, 8), np.float16))
    np.save(outside / "evil.npy", np.ones((2, 8), np.float16))  # a real feature file at the traversal target
    for bad, rule in BAD_IDS[:4]:
        bad = bad.replace("/abs/olute", str(outside))
        with pytest.raises(UnsafeIdError, match=rf"{re.escape(str(root))}: requested video 1: unsafe video id .*{rule}"):
            FeatureStore(root, ["ok", bad], max_frames=2, max_audio_windows=1, video_dim=8, audio_dim=4)
    store = FeatureStore(root, ["ok"], max_frames=2, max_audio_windows=1, video_dim=8, audio_dim=4)
    assert store.video_ids == ["ok"]


@pytest.mark.parametrize("qa", [False, True])
def test_predict_refuses_an_unsafe_annotation_before_loading_the_model(qa, tmp_path, capsys):
    from videoblip2 import predict
    from videoblip2.cli import cli

    (tmp_path / "feat" / "video").mkdir(parents=True)
    record = {"video_id": "../outside/evil", "question": "who?", "answer": "a man"} if qa else \
        {"video_id": "../outside/evil", "caption": "a man"}
    ann = _write(tmp_path / "ann.json", json.dumps([record]))
    with pytest.raises(SystemExit) as stop:  # no such model: the annotation must be refused first
        cli(lambda: predict.main(["--model", str(tmp_path / "no-model"), "--features", str(tmp_path / "feat"),
                                  "--ann", str(ann), "--out", str(tmp_path / "pred.json"), "--device", "cpu"]))
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{ann}: record 0" in err[0] and "unsafe video id '../outside/evil'" in err[0]
    assert not (tmp_path / "pred.json").exists()


def test_caption_refuses_an_unsafe_file_name_before_loading_models(media, tmp_path, capsys):
    from videoblip2 import caption

    video = shutil.copy(media["tone"], tmp_path / "...mp4")
    assert caption.main([str(video), "--model", str(tmp_path / "no-model"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {video}: file name: unsafe video id '..': a video id must not be '.' or '..'"]
