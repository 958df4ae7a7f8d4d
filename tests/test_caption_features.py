"""videoblip2.caption in two steps: extract_video once per video, generate_from_features per question/ablation."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from videoblip2.caption import (
    VideoFeatures,
    caption_videos,
    extract_video,
    features_batch,
    generate_from_features,
    main,
    read_questions,
)
from videoblip2.data import ablate_features
from videoblip2.decoding import DecodingOptions
from videoblip2.extract import load_clap, load_clip, sample_frame_indices

QUESTIONS = ["Who is in the video?", "Is there a dog?", "What sound is heard?"]


@pytest.fixture(scope="module")
def encoders(tiny_files):
    return (load_clip(tiny_files["clip_config"], tiny_files["clip_ckpt"], device="cpu"),
            load_clap(tiny_files["clap_config"], tiny_files["clap_ckpt"], device="cpu"))


@pytest.fixture
def counted(encoders, monkeypatch):
    """The encoders, with their CLIP / CLAP forward calls counted (one call = one extraction's model run)."""
    calls = {"clip": 0, "clap": 0}
    for name, encoder in zip(("clip", "clap"), encoders):
        original = encoder.encode

        def encode(x, _original=original, _name=name):
            calls[_name] += 1
            return _original(x)

        monkeypatch.setattr(encoder, "encode", encode)
    return (*encoders, calls)


def test_extract_video_gives_the_encoders_features_and_where_they_come_from(encoders, media):
    clip, clap = encoders
    f = extract_video(media["tone"], clip, clap, max_frames=16, window_s=1.0, hop_s=0.5, max_audio_windows=8)
    assert isinstance(f, VideoFeatures) and (f.path, f.video_id, f.error) == (str(media["tone"]), "tone", None)
    assert f.video.dtype == np.float32 and f.audio.dtype == np.float32
    np.testing.assert_array_equal(f.video, clip.encode_video(media["tone"], 16).astype(np.float32))
    np.testing.assert_array_equal(f.audio, clap.encode_video(media["tone"], 1.0, 0.5, 8).astype(np.float32))
    assert f.frame_indices.tolist() == sample_frame_indices(20, 16)  # 20 frames at 8 fps
    np.testing.assert_allclose(f.frame_times, f.frame_indices / 8.0, atol=1e-6)
    # ~2.5 s of audio (AAC adds a little), 1 s windows every 0.5 s, the last one flush with the end
    assert len(f.audio_window_times) == len(f.audio) >= 4
    np.testing.assert_allclose(f.audio_window_times[:4], [[0, 1], [0.5, 1.5], [1, 2], [1.5, 2.5]], atol=1e-9)
    np.testing.assert_allclose(np.diff(f.audio_window_times, axis=1), 1.0)
    assert 2.5 <= f.audio_window_times[-1, 1] < 2.7
    assert f.duration == pytest.approx(2.5, abs=0.1)

    mute = extract_video(media["mute"], clip, clap, max_frames=16)  # no audio stream: no sound
    assert mute.audio is None and mute.audio_window_times.shape == (0, 2) and len(mute.video) == 10
    webm = extract_video(media["webm"], clip, None, max_frames=4, fps=2.0)  # no CLAP: silent; 12 frames at 6 fps
    assert webm.audio is None and webm.frame_indices.tolist() == [1, 4, 7, 10]


def test_questions_ablations_and_captions_cost_one_extraction_per_video(tiny_model, counted, media):
    clip, clap, calls = counted
    paths = [media["tone"], media["webm"]]
    questions = QUESTIONS[:2]
    decoding = DecodingOptions(max_new_tokens=5)
    kwargs = dict(clip=clip, clap=clap, window_s=1.0, hop_s=0.5, decoding=decoding)

    # today's way: one caption_videos call per question, each extracting every video again
    per_question = [caption_videos(paths, tiny_model, question=q, **kwargs) for q in questions]
    assert calls == {"clip": 2 * len(paths), "clap": 2 * len(paths)}
    expected = [[entries[v]["answer"] for entries in per_question] for v in range(len(paths))]
    assert len({a for answers in expected for a in answers}) > 1  # the answers differ: the comparison can fail

    calls.update(clip=0, clap=0)
    together = caption_videos(paths, tiny_model, question=questions, **kwargs)
    assert calls == {"clip": len(paths), "clap": len(paths)}  # one extraction per video for two questions
    assert [(e["video_id"], e["question"], e["answer"]) for e in together] == [
        (stem, q, expected[v][i]) for v, stem in enumerate(("tone", "webm")) for i, q in enumerate(questions)]

    # the two public steps: extract once, then caption, answer and ablate the same features
    calls.update(clip=0, clap=0)
    features = [extract_video(p, clip, clap, max_frames=tiny_model.config.max_frames, window_s=1.0, hop_s=0.5,
                              max_audio_windows=tiny_model.config.max_audio_windows) for p in paths]
    assert calls == {"clip": len(paths), "clap": len(paths)}
    calls.update(clip=0, clap=0)
    # all four (video, question) rows in one call, one question per row
    rows = [f for f in features for _ in questions]
    answers = generate_from_features(tiny_model, rows, question=questions * len(paths), decoding=decoding)
    assert answers == [a for per_video in expected for a in per_video]
    assert generate_from_features(tiny_model, features, question=questions[1], decoding=decoding) == \
        [expected[v][1] for v in range(len(paths))]

    # captions and ablations: the features batch (rewritten by videoblip2.data.ablate_features, as predict
    # --ablate does) straight into VideoBLIP2.generate
    batch = features_batch(features, tiny_model.config)
    kw = decoding.generate_kwargs(tiny_model.t5_tokenizer)
    for ablate, mode in ((None, None), ("no_audio", "audio"), ("shuffle_frames", "frame-order"),
                         ("no_video", "video")):
        ablated = batch if mode is None else ablate_features(batch, mode, seed=3)
        reference = tiny_model.generate(ablated["video"], ablated["video_mask"], ablated["audio"],
                                        ablated["audio_mask"], **kw)
        assert generate_from_features(tiny_model, features, decoding=decoding, ablate=ablate, seed=3) == reference
    assert calls == {"clip": 0, "clap": 0}  # nothing above extracted again
    with pytest.raises(ValueError, match="unknown ablation"):
        generate_from_features(tiny_model, features, ablate="audio")
    with pytest.raises(ValueError, match="one per video"):
        generate_from_features(tiny_model, features, question=QUESTIONS)


def _questions_files(folder, media):
    """The same 4 (video, question) pairs as CSV, JSON and JSONL, videos relative to the file's folder."""
    def rel(name):
        return os.path.relpath(media[name], folder)

    pairs = [(rel("tone"), QUESTIONS[0]), (rel("webm"), QUESTIONS[1]), (rel("tone"), QUESTIONS[2]),
             (rel("broken"), QUESTIONS[0])]
    objects = [{"video": v, "question": q} for v, q in pairs]
    (folder / "q.csv").write_text("video,question\n" + "".join(f'{v},"{q}"\n' for v, q in pairs))
    (folder / "q.json").write_text(json.dumps(objects))
    (folder / "q.jsonl").write_text("\n".join(json.dumps(o) for o in objects) + "\n\n")
    return [folder / "q.csv", folder / "q.json", folder / "q.jsonl"]


def test_caption_command_asks_many_questions_extracting_each_video_once(tiny_model, tiny_files, counted, media,
                                                                        tmp_path, capsys, monkeypatch):
    clip, clap, calls = counted
    import videoblip2.extract as extract  # caption's main imports the loaders when it runs (a light --help)

    monkeypatch.setattr(extract, "load_clip", lambda *a, **k: clip)  # the counted encoders
    monkeypatch.setattr(extract, "load_clap", lambda *a, **k: clap)
    tiny_model.save_pretrained(tmp_path / "model")
    common = ["--model", str(tmp_path / "model"), "--clip", tiny_files["clip_config"], "--clip-pretrained",
              tiny_files["clip_ckpt"], "--clap", tiny_files["clap_ckpt"], "--clap-model", tiny_files["clap_config"],
              "--window", "1", "--hop", "0.5", "--device", "cpu", "--max-new-tokens", "6", "--num-beams", "1"]
    argv = [str(media["tone"]), str(media["webm"]), *common, "--question", QUESTIONS[0], "--question", QUESTIONS[1]]
    assert main([*argv, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert calls == {"clip": 2, "clap": 2}
    direct = caption_videos([media["tone"], media["webm"]], tiny_model, clip=clip, clap=clap, window_s=1.0,
                            hop_s=0.5, max_new_tokens=6, question=QUESTIONS)  # answers as asked one by one
    answer = {(r["video_id"], r["question"]): r["answer"] for r in direct}
    assert [(r["video"], r["question"], r["answer"]) for r in results] == [
        (str(p), q, answer[p.stem, q]) for p in (media["tone"], media["webm"]) for q in QUESTIONS[:2]]

    # --questions FILE: per-video questions, each video extracted once, the broken one reported
    (tmp_path / "asked").mkdir()
    files = _questions_files(tmp_path / "asked", media)
    pairs = read_questions(files[0])
    assert [read_questions(f) for f in files[1:]] == [pairs, pairs]
    assert [(os.path.samefile(v, media[name]), q) for (v, q), name in zip(pairs, ("tone", "webm", "tone", "broken"))] \
        == [(True, QUESTIONS[0]), (True, QUESTIONS[1]), (True, QUESTIONS[2]), (True, QUESTIONS[0])]
    calls.update(clip=0, clap=0)
    assert main([*common, "--questions", str(files[0])]) == 1  # 1: the broken video
    assert calls == {"clip": 2, "clap": 2}
    lines = capsys.readouterr().out.splitlines()  # plain: path<TAB>answer per pair, in file order
    assert lines[:3] == [f"{v}\t{answer[Path(v).stem, q]}" for v, q in pairs[:3]]
    assert lines[3].startswith(f"{pairs[3][0]}\tERROR: ") and "cannot open" in lines[3]


@pytest.mark.parametrize("content, suffix, message", [
    ("video,question\n", ".csv", "no questions"),
    ("clip,text\na.mp4,why?\n", ".csv", "must name the columns video,question"),
    ('{"video": "a.mp4"}', ".json", "expected a JSON list"),
    ('[{"video": "a.mp4", "question": ""}]', ".json", "item 0: needs a non-empty"),
    ('{"video": "a.mp4", "question": "why?"}\n{oops', ".jsonl", "not valid JSONL"),
    ("a.mp4\twhy?", ".tsv", "unknown format '.tsv'"),
    ('{"video": "...mp4", "question": "why?"}', ".jsonl", "unsafe video id '..'"),  # refused before loading
])
def test_questions_file_errors_are_one_line_exit_2(tmp_path, capsys, content, suffix, message):
    file = tmp_path / f"q{suffix}"
    file.write_text(content)
    assert main(["--questions", str(file), "--model", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(file) in err and message in err and "Traceback" not in err


def test_caption_command_needs_videos_or_a_questions_file(tmp_path, capsys):
    file = tmp_path / "q.jsonl"
    file.write_text('{"video": "a.mp4", "question": "why?"}\n')
    assert main(["--model", str(tmp_path)]) == 2
    assert "give video files or folders, or --questions FILE" in capsys.readouterr().err
    assert main(["a.mp4", "--questions", str(file), "--model", str(tmp_path)]) == 2
    assert "not both" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a question for every video and per-video questions do not mix
        main(["--questions", str(file), "--question", "why?", "--model", str(tmp_path)])
