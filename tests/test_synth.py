"""videoblip2.synth: determinism, real on-disk formats, no-audio videos, time-reversed actions."""

import json

import numpy as np
import pytest

from videoblip2 import synth
from videoblip2.annotations import load_annotations
from videoblip2.data import FeatureStore


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The "small" size (60 / 10 / 20 videos), written once through the command line entry point."""
    out = tmp_path_factory.mktemp("synth") / "small"
    summary = synth.main(["--out", str(out), "--size", "small", "--seed", "0", "--no-progress"])
    return out, summary


def _all_captions(out):
    return {**load_annotations(out / "train_val_videodatainfo.json"),
            **load_annotations(out / "test_videodatainfo.json")}


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path):
    a = synth.generate(tmp_path / "a", seed=5, num_videos=18, num_audio_windows=4, progress=False)
    synth.generate(tmp_path / "b", seed=5, num_videos=18, num_audio_windows=4, progress=False)
    synth.generate(tmp_path / "c", seed=6, num_videos=18, num_audio_windows=4, progress=False)
    files_a, files_b, files_c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert files_a.keys() == files_b.keys() and len(files_a) >= 18 + 4
    assert all(files_a[name] == files_b[name] for name in files_a)
    assert files_a["video/video0.npy"] != files_c["video/video0.npy"]
    assert a.splits == {"train": 12, "validate": 2, "test": 4}
    with pytest.raises(FileExistsError):
        synth.generate(tmp_path / "a", seed=5, num_videos=18, progress=False)
    synth.generate(tmp_path / "a", seed=5, num_videos=9, overwrite=True, progress=False)
    assert len(list((tmp_path / "a" / "video").iterdir())) == 9  # old files removed


def test_formats_load_like_msrvtt(small):
    out, summary = small
    assert summary.splits == {"train": 60, "validate": 10, "test": 20}
    train = load_annotations(out / "train_val_videodatainfo.json", split="train")
    validate = load_annotations(out / "train_val_videodatainfo.json", split="validate")
    test = load_annotations(out / "test_videodatainfo.json", split="test")
    assert list(train) == [f"video{i}" for i in range(60)]
    assert list(validate) == [f"video{i}" for i in range(60, 70)]
    assert list(test) == [f"video{i}" for i in range(70, 90)]
    assert all(len(captions) == 20 for split in (train, validate, test) for captions in split.values())
    raw = json.loads((out / "train_val_videodatainfo.json").read_text())
    assert set(raw) == {"info", "videos", "sentences"}
    assert set(raw["videos"][0]) == {"video_id", "split", "category", "url", "start time", "end time", "id"}
    assert set(raw["sentences"][0]) == {"sen_id", "video_id", "caption"}
    test_raw = json.loads((out / "test_videodatainfo.json").read_text())
    sen_ids = [s["sen_id"] for s in raw["sentences"] + test_raw["sentences"]]
    assert len(set(sen_ids)) == len(sen_ids) == 90 * 20
    # features: the real layout, dims and dtypes, loadable by the data module
    meta = json.loads((out / "meta.json").read_text())
    assert meta["video"]["dim"] == 768 and meta["audio"]["dim"] == 512 and meta["video"]["num_frames"] == 16
    video = np.load(out / "video" / "video0.npy")
    assert video.shape == (16, 768) and video.dtype == np.float16
    audio_files = sorted((out / "audio").glob("*.npy"))
    lengths = {np.load(p).shape[0] for p in audio_files}
    assert all(np.load(p).shape[1] == 512 and np.load(p).dtype == np.float16 for p in audio_files[:5])
    assert min(lengths) >= 6 and max(lengths) <= 10 and len(lengths) > 1  # 8 windows on average, varying
    store = FeatureStore(out, list(test), max_frames=16, max_audio_windows=8)
    assert len(store) == 20 and set(store.no_audio) == {v for v in test if v in meta["audio"]["no_audio"]}


def test_ten_percent_without_audio_and_no_sound_words(small):
    out, _ = small
    latents = synth.latent_factors(out)
    meta = json.loads((out / "meta.json").read_text())
    captions = _all_captions(out)
    silent = [v for v, latent in latents.items() if latent.sound is None]
    assert silent == meta["audio"]["no_audio"]
    for split, size in (("train", 60), ("validate", 10), ("test", 20)):
        assert sum(latents[v].split == split for v in silent) == round(0.1 * size)
    for video_id, latent in latents.items():
        has_file = (out / "audio" / f"{video_id}.npy").is_file()
        assert has_file == (latent.sound is not None)
        mentions = [bool(set(c.split()) & synth.SOUND_WORDS) for c in captions[video_id]]
        if latent.sound is None:
            assert not any(mentions), captions[video_id]
        else:
            assert all(mentions), captions[video_id]
            assert all(set(c.split()) & synth._words(sum(synth.SOUNDS[latent.sound], ())) for c in captions[video_id])


def test_reversed_actions_are_time_reversed_trajectories(small):
    out, _ = small
    prototypes = synth.make_prototypes(0)
    params = synth.sample_action_params(np.random.default_rng(1))
    for forward, backward in synth.REVERSE_PAIRS:
        a = synth.action_trajectory(forward, 16, params, prototypes)
        b = synth.action_trajectory(backward, 16, params, prototypes)
        np.testing.assert_array_equal(b, a[::-1])
        assert np.allclose(a.mean(0), b.mean(0))  # a time-blind average cannot separate them
        state_a, state_b = prototypes.action_states[forward]
        np.testing.assert_allclose(a[0], state_a)
        np.testing.assert_allclose(a[-1], state_b)
    # in the written features, frame order carries the direction: project onto (state_b - state_a)
    latents = synth.latent_factors(out)
    for forward, backward in synth.REVERSE_PAIRS:
        direction = np.subtract(*prototypes.action_states[forward][::-1])
        for video_id, latent in latents.items():
            if latent.action in (forward, backward):
                frames = np.load(out / "video" / f"{video_id}.npy").astype(np.float64) @ direction
                change = frames[-4:].mean() - frames[:4].mean()
                assert change > 0.5 if latent.action == forward else change < -0.5, (video_id, latent.action)


def test_captions_and_latents(small):
    out, _ = small
    latents = synth.latent_factors(out)
    data = json.loads((out / "synth_latents.json").read_text())
    captions = load_annotations(out / "train_val_videodatainfo.json", split="train")
    latent = latents["video0"]
    assert data["videos"]["video0"]["canonical"] == latent.canonical == synth.canonical_caption(latent)
    words = latent.canonical.split()
    assert synth.SUBJECTS[latent.subject][0].split()[-1] in words
    assert latent.canonical in captions["video0"] or len(set(captions["video0"])) > 5
    # several templates and synonyms per video; canonical form is the most common one overall
    assert np.mean([len(set(c)) for c in captions.values()]) > 6
    canonical_share = np.mean([c == latents[v].canonical for v, caps in captions.items() for c in caps])
    assert canonical_share > 0.03
    silent = synth.Latent("x", "test", "cat", "beach", "close", None)
    assert synth.canonical_caption(silent) == "a cat closes a door on the beach"
    loud = synth.Latent("x", "test", "man", "kitchen", "open", "music")
    assert synth.canonical_caption(loud) == "a man opens a door in the kitchen while music plays"
    assert synth.split_sizes(num_videos=900) == (600, 100, 200)
    assert synth.split_sizes("large") == (6513, 497, 2990)


def test_parse_caption_reads_every_caption_back(small):
    out, _ = small
    latents = synth.latent_factors(out)
    captions = _all_captions(out)
    for video_id, caps in captions.items():
        latent = latents[video_id]
        truth = {"subject": latent.subject, "place": latent.place, "action": latent.action, "sound": latent.sound}
        assert all(synth.parse_caption(c) == truth for c in caps), video_id
    assert synth.parse_caption("a man opens a door and closes a door") == {
        "subject": "man", "place": None, "action": "?", "sound": None}
    canonical = {v: latent.canonical for v, latent in latents.items()}
    assert synth.factor_accuracy(canonical, latents) == {
        "subject": 1.0, "place": 1.0, "action": 1.0, "action (reversible)": 1.0, "sound": 1.0, "all": 1.0}
    time_blind = {v: synth.canonical_caption({**vars(latent), "action": synth.forward_action(latent.action)[0]})
                  for v, latent in latents.items()}
    accuracy = synth.factor_accuracy(time_blind, latents)
    backward = [latent.action in {b for _, b in synth.REVERSE_PAIRS} for latent in latents.values()]
    reversible = [latent.action in {a for pair in synth.REVERSE_PAIRS for a in pair} for latent in latents.values()]
    assert accuracy["action"] == pytest.approx(1 - np.mean(backward))
    assert accuracy["action (reversible)"] == pytest.approx(1 - np.sum(backward) / np.sum(reversible))
    assert accuracy["subject"] == accuracy["sound"] == 1.0
