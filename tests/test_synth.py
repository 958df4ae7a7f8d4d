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


# ------------------------------------------------------------------------------------------------
# difficulty levels

# sha256 of every file of generate(num_videos=9) at the default level, written by the code before levels
# existed (commit bb63f8e): the default level must stay byte-identical.
DEFAULT_9_SHA256 = {
    "audio/video0.npy": "e0a2353a743ec618517619e4a958cc0c4374af560d1579897f64663e9ad2748e",
    "audio/video2.npy": "f1df15f7fd931b9f506d737c47f8dcaca67397a0d0bcaac8bcf4c61b85d7468a",
    "audio/video3.npy": "7bed1cc1598d502ccb9a2d79845c62cd2d87e88c856be68bb134a30b1d546476",
    "audio/video4.npy": "72372698e13069235f4760a852b497ad01a36817a4ec08a69a3d906147734eef",
    "audio/video5.npy": "0de4bcda5a1e8e4cc411a034c29ce3378db951362d32839dbf576c8942de6a61",
    "audio/video6.npy": "555ddce6e36d788a35c12fd5f29a6f2d56d36ddcdff2be81af89a418acb2caaa",
    "audio/video7.npy": "e776a9463f6b284466025138992518d905afe7a2d55b889f7e49a5090dd6c0e8",
    "audio/video8.npy": "a572db4aa264760e801412e88fa8185c04cbdac3083dddccebcc5035ddac4e99",
    "meta.json": "638ba770c160212dd8c09bc15f663a5279619da88458ed0e7f650e258491bda0",
    "synth_latents.json": "7bf4d585309c22caf109e0db58cca62aa2d1c51cfeedf24ebceaa4eac31bdb30",
    "test_videodatainfo.json": "9f5dba64f2a589a764d46b69818e019f0700e24728687552058d3a04d0d3d12a",
    "train_val_videodatainfo.json": "bd4af53c8f4c616ffef9131d26d6be7183ed8f9d046442a90f83ba569333801d",
    "video/video0.npy": "31332e044f8995bcaaef635b0c9d48e8ca137b5f3eaaf4f4e38804a645a644b4",
    "video/video1.npy": "a59f633ffe006995a40c0c26d5166a9c908f65bb08f173fac9ef9a12beb5f426",
    "video/video2.npy": "2b8d4accb82420ac5149dafde2b737970f7de98035ce47cc99884feafa06df81",
    "video/video3.npy": "1d089611c22b21ab51ecd74a83d2387b3984b68393ae2f4d7d7d5236590b771d",
    "video/video4.npy": "d296fc9101d4fe6b8f11f909a5b0e1fc9063cad9ea09cdc9a43eb89966a866a4",
    "video/video5.npy": "ad0c4077f74c1ea55210586c73894399b2237806059ddddc8f92c0c6dad21610",
    "video/video6.npy": "214bc75ac32265102b0d3bf490c24a64510576ba8ac40f6a569e7e80494bd611",
    "video/video7.npy": "502d8d11706bcf8cff599c4cd7edbe70f4cc7b32811861c1f20d75c3f65fe38b",
    "video/video8.npy": "65dd8172b8e1b24790e5f941bb95bd2da8d0b721f298b0a2bb18836c36c148fa",
}


def test_default_level_is_byte_identical(tmp_path):
    import hashlib

    synth.generate(tmp_path / "d", num_videos=9, progress=False, difficulty="default")
    files = _files(tmp_path / "d")
    for name, digest in DEFAULT_9_SHA256.items():  # files other issues add (e.g. QA files) are not checked
        assert hashlib.sha256(files[name]).hexdigest() == digest, name


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "hard"
    summary = synth.main(["--out", str(out), "--num-videos", "45", "--difficulty", "hard", "--no-progress"])
    return out, summary


def test_hard_level_tables_and_captions(hard):
    out, summary = hard
    assert summary.splits == {"train": 30, "validate": 5, "test": 10}
    level = synth.get_level("hard")
    default = synth.get_level("default")
    assert (len(level.subjects), len(level.places), len(level.actions), len(level.sounds)) == (10, 10, 11, 8)
    assert len(level.reverse_pairs) == 4 and level.factor_scale < default.factor_scale
    assert level.frame_noise > default.frame_noise and level.num_nuisances > default.num_nuisances
    meta = json.loads((out / "meta.json").read_text())
    assert meta["synth"]["difficulty"] == "hard"
    latents = synth.latent_factors(out)
    assert all(latent.difficulty == "hard" for latent in latents.values())
    assert {latent.subject for latent in latents.values()} - set(default.subjects)  # new subjects are drawn
    captions = _all_captions(out)
    for video_id, caps in captions.items():
        latent = latents[video_id]
        truth = {"subject": latent.subject, "place": latent.place, "action": latent.action, "sound": latent.sound}
        assert all(synth.parse_caption(c, "hard") == truth for c in caps), video_id
    # longer captions than the default level's (same factors, longer templates)
    hard_words = np.mean([len(c.split()) for caps in captions.values() for c in caps])
    assert hard_words > 14
    assert synth.canonical_caption(synth.Latent("x", "test", "old_man", "forest", "climb_down", "siren", "hard")) \
        == "in this video an old man climbs down a ladder in the forest while a siren wails in the background"
    assert synth.canonical_caption({"subject": "cat", "place": "garage", "action": "jump", "sound": None,
                                    "difficulty": "hard"}) == "in this video a cat jumps in the garage"
    canonical = {v: latent.canonical for v, latent in latents.items()}
    assert synth.factor_accuracy(canonical, latents)["all"] == 1.0
    # the question files follow the level's tables too
    records = [r for name in synth.QA_FILES.values() for r in json.loads((out / name).read_text())]
    assert records
    for record in records:
        latent = latents[record["video_id"]]
        values = json.loads(record["templ_values"])
        if record["question_content"] == "Who is in the video?":
            assert record["anser"] == latent.subject.replace("_", " ")
        elif record["question_content"] == "What sound can be heard?":
            assert record["anser"] == latent.sound
        elif record["question_content"] == "Can you hear <Object>?":
            heard = latent.sound is not None and level.sounds[latent.sound][1][0] == values[0]
            assert record["anser"] == ("yes" if heard else "no")
    with pytest.raises(ValueError, match="unknown difficulty"):
        synth.get_level("medium")


def test_hard_level_phrases_parse_back_unambiguously():
    """Every template x synonym x value of the hard tables reads back as exactly the rendered factors."""
    level = synth.get_level("hard")
    names = {f: list(getattr(level, f + "s")) for f in ("subject", "place", "action", "sound")}
    for k in range(max(len(v) for v in names.values())):
        for sound in (names["sound"][k % len(names["sound"])], None):
            fields = {"subject": names["subject"][k % 10], "place": names["place"][(3 * k) % 10],
                      "action": names["action"][k % 11], "sound": sound, "difficulty": "hard"}
            templates = level.silent_templates if sound is None else level.sound_templates
            for template in range(len(templates)):
                for synonym in range(len(level.synonym_weights)):
                    caption = synth.render_caption(fields, template, (synonym,) * 4)
                    parsed = synth.parse_caption(caption, "hard")
                    assert parsed == {f: fields[f] for f in names}, caption


def test_hard_level_features(hard):
    """Reversed actions are time-reversed; about half the sounds overlap a second, quieter, uncaptioned one."""
    import dataclasses

    out, _ = hard
    prototypes = synth.make_prototypes(0, "hard")
    params = synth.sample_action_params(np.random.default_rng(1))
    up = synth.action_trajectory("climb_up", 16, params, prototypes)
    np.testing.assert_array_equal(synth.action_trajectory("climb_down", 16, params, prototypes), up[::-1])
    # the same draws without the overlap: the difference is exactly the second sound
    level = prototypes.level
    alone = dataclasses.replace(prototypes, level=dataclasses.replace(level, overlap_probability=0.0))
    overlapped = 0
    for i in range(40):
        mixed = synth.audio_features("music", 8, prototypes, np.random.default_rng([7, i])).astype(np.float64)
        clean = synth.audio_features("music", 8, alone, np.random.default_rng([7, i])).astype(np.float64)
        extra = mixed - clean
        rows = np.flatnonzero(np.linalg.norm(extra, axis=1) > 0.05)  # float16 rounding: ~0.02
        if len(rows) == 0:
            continue
        overlapped += 1
        assert len(rows) >= 4 and np.all(np.diff(rows) == 1)  # a contiguous run of at least half the windows
        matches = {name: np.abs(extra[rows] - np.outer(extra[rows] @ v / (v @ v), v)).max()
                   for name, v in prototypes.sound.items()}
        other = min(matches, key=matches.get)
        assert other != "music" and matches[other] < 0.01  # another sound, up to float16 rounding
        vector = prototypes.sound[other]
        loudness = extra[rows] @ vector / (vector @ vector)
        assert np.all(loudness > level.overlap_loudness[0] - 0.02) and np.all(loudness < level.overlap_loudness[1] + 0.02)
    assert 10 <= overlapped <= 30  # overlap_probability 0.5 of 40
    # in the written files, the captioned sound is the loudest in most videos (noise and overlaps aside)
    latents = synth.latent_factors(out)
    loudest = []
    for video_id, latent in latents.items():
        if latent.sound is not None:
            audio = np.load(out / "audio" / f"{video_id}.npy").astype(np.float64).mean(0)
            weights = {name: audio @ v / (v @ v) for name, v in prototypes.sound.items()}
            loudest.append(max(weights, key=weights.get) == latent.sound)
    assert np.mean(loudest) > 0.75
