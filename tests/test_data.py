"""videoblip2.data: subsampling indices, padding/masks, no-audio videos, file errors, batch paths, labels."""

import json
import logging

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from videoblip2.data import (
    CaptionDataset,
    DataError,
    FeatureFileError,
    FeatureShapeError,
    FeatureStore,
    FeatureValueError,
    VideoDataset,
    index_batches,
    uniform_indices,
)

VIDEO_DIM, AUDIO_DIM = 8, 4
MAX_FRAMES, MAX_WINDOWS = 6, 3


def test_uniform_indices_by_hand():
    # floor((i + 0.5) * length / max_len)
    assert uniform_indices(10, 4).tolist() == [1, 3, 6, 8]
    assert uniform_indices(7, 3).tolist() == [1, 3, 5]
    assert uniform_indices(32, 16).tolist() == list(range(1, 32, 2))
    assert uniform_indices(9, 2).tolist() == [2, 6]
    assert uniform_indices(5, 8).tolist() == [0, 1, 2, 3, 4]  # short: keep everything
    assert uniform_indices(16, 16).tolist() == list(range(16))
    assert uniform_indices(0, 4).tolist() == []
    assert uniform_indices(10, 4).dtype == np.int64
    for length in range(1, 60):  # strictly increasing, in range
        idx = uniform_indices(length, 7)
        assert len(idx) == min(length, 7) and np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < length
    with pytest.raises(ValueError):
        uniform_indices(5, 0)


def _array(rows: int, dim: int, offset: float) -> np.ndarray:
    return (offset + np.arange(rows * dim, dtype=np.float32).reshape(rows, dim) / 8).astype(np.float16)


@pytest.fixture
def features(tmp_path):
    """4 videos: v_short (4 frames, 2 windows), v_long (10 frames, 7 windows: both subsampled),
    v_silent (no audio file), v_listed (audio file present but meta.json lists it as no_audio)."""
    root = tmp_path / "features"
    (root / "video").mkdir(parents=True)
    (root / "audio").mkdir()
    arrays = {
        "v_short": (_array(4, VIDEO_DIM, 0), _array(2, AUDIO_DIM, 100)),
        "v_long": (_array(10, VIDEO_DIM, 1), _array(7, AUDIO_DIM, 200)),
        "v_silent": (_array(6, VIDEO_DIM, 2), None),
        "v_listed": (_array(3, VIDEO_DIM, 3), _array(3, AUDIO_DIM, 300)),
    }
    for video_id, (video, audio) in arrays.items():
        np.save(root / "video" / f"{video_id}.npy", video)
        if audio is not None:
            np.save(root / "audio" / f"{video_id}.npy", audio.astype(np.float32))  # float32 files work too
    (root / "meta.json").write_text(json.dumps({"video": {"dim": VIDEO_DIM}, "audio": {"dim": AUDIO_DIM,
                                                                                        "no_audio": ["v_listed"]}}))
    return root, arrays


def _store(root, ids, **kwargs):
    return FeatureStore(root, ids, max_frames=MAX_FRAMES, max_audio_windows=MAX_WINDOWS, video_dim=VIDEO_DIM,
                        audio_dim=AUDIO_DIM, **kwargs)


def test_padding_subsampling_masks_and_no_audio(features, caplog):
    root, arrays = features
    ids = list(arrays)
    with caplog.at_level(logging.WARNING, logger="videoblip2.data"):
        store = _store(root, ids)
    warnings = [r.getMessage() for r in caplog.records if "no audio" in r.getMessage()]
    assert len(warnings) == 1 and "2 of 4 videos" in warnings[0]  # reported once, counted
    assert store.no_audio == ["v_silent", "v_listed"]
    assert store.video.dtype == torch.float16 and store.video.shape == (4, MAX_FRAMES, VIDEO_DIM)
    assert store.audio.shape == (4, MAX_WINDOWS, AUDIO_DIM)

    batch = store.batch([0, 1, 2, 3])
    assert batch["video_ids"] == ids
    assert batch["video"].dtype == torch.float32
    assert batch["video_mask"].tolist() == [[True] * 4 + [False] * 2, [True] * 6, [True] * 6, [True] * 3 + [False] * 3]
    assert batch["audio_mask"].tolist() == [[True, True, False], [True] * 3, [False] * 3, [False] * 3]
    short_video, short_audio = arrays["v_short"]
    np.testing.assert_array_equal(batch["video"][0, :4].numpy(), short_video.astype(np.float32))
    assert batch["video"][0, 4:].abs().sum() == 0
    np.testing.assert_array_equal(batch["audio"][0, :2].numpy(), short_audio.astype(np.float32))
    long_video, long_audio = arrays["v_long"]
    np.testing.assert_array_equal(batch["video"][1].numpy(), long_video[[0, 2, 4, 5, 7, 9]].astype(np.float32))
    np.testing.assert_array_equal(batch["audio"][1].numpy(), long_audio[[1, 3, 5]].astype(np.float32))
    assert batch["audio"][2:].abs().sum() == 0  # silent videos: zeros and an all-False mask
    # a gather in any order
    again = store.batch(np.array([3, 1]))
    assert again["video_ids"] == ["v_listed", "v_long"]
    assert torch.equal(again["video"][1], batch["video"][1])


def _write(root, name, array):
    np.save(root / name, array)


@pytest.mark.parametrize(
    "name, make, error, text",
    [
        ("video/v_short.npy", lambda: np.ones((4, 5), np.float16), FeatureShapeError,
         f"v_short.npy has dim 5, config expects {VIDEO_DIM}"),
        ("audio/v_short.npy", lambda: np.ones((4, 7), np.float16), FeatureShapeError,
         f"v_short.npy has dim 7, config expects {AUDIO_DIM}"),
        ("video/v_short.npy", lambda: np.ones((2, 4, VIDEO_DIM), np.float16), FeatureShapeError,
         "v_short.npy has shape"),
        ("video/v_short.npy", lambda: np.full((4, VIDEO_DIM), np.nan, np.float32), FeatureValueError, "v_short.npy"),
        ("audio/v_short.npy", lambda: np.full((2, AUDIO_DIM), np.inf, np.float16), FeatureValueError, "v_short.npy"),
        ("video/v_short.npy", lambda: np.ones((4, VIDEO_DIM), np.int64), FeatureFileError, "v_short.npy"),
        ("video/v_short.npy", lambda: np.ones((0, VIDEO_DIM), np.float16), FeatureShapeError, "v_short.npy has 0 rows"),
        ("video/v_short.npy", lambda: np.full((4, VIDEO_DIM), 1e6, np.float32), FeatureValueError, "v_short.npy"),
    ],
)
def test_bad_file_errors_name_the_file(features, name, make, error, text):
    root, _ = features
    _write(root, name, make())
    with pytest.raises(error, match=text.replace("(", r"\(")):
        _store(root, ["v_long", "v_short"])
    store = _store(root, ["v_long", "v_short"], skip_bad=True)
    assert store.video_ids == ["v_long"] and [v for v, _ in store.skipped] == ["v_short"]
    assert "v_short.npy" in store.skipped[0][1]
    assert store.video.shape[0] == 1


def test_exact_dim_message(tmp_path):
    (tmp_path / "video").mkdir()
    np.save(tmp_path / "video" / "video7010.npy", np.zeros((3, 512), np.float16))
    with pytest.raises(FeatureShapeError, match="video7010.npy has dim 512, config expects 768"):
        FeatureStore(tmp_path, ["video7010"], max_frames=4, max_audio_windows=2)


def test_missing_and_corrupt_files(features):
    root, _ = features
    with pytest.raises(FeatureFileError, match="v_nothing.npy"):
        _store(root, ["v_short", "v_nothing"])
    with pytest.raises(FeatureFileError, match="v_nothing.npy"):  # lazy mode checks existence up front
        _store(root, ["v_short", "v_nothing"], preload=False)
    (root / "video" / "v_long.npy").write_bytes(b"\x93NUMPY garbage, not an array")
    with pytest.raises(FeatureFileError, match="v_long.npy: cannot read"):
        _store(root, ["v_short", "v_long"])
    store = _store(root, ["v_short", "v_long", "v_nothing"], preload=False, skip_bad=True)
    assert store.video_ids == ["v_short"]
    assert [v for v, _ in store.skipped] == ["v_long", "v_nothing"]
    (root / "meta.json").write_text(json.dumps({"video": {"dim": 768}}))
    with pytest.raises(FeatureShapeError, match="meta.json: video features have dim 768, config expects 8"):
        _store(root, ["v_short"])


class CountingTokenizer:
    """Proxy that counts calls, to check captions are tokenized once."""

    def __init__(self, tokenizer):
        self.tokenizer, self.calls = tokenizer, 0
        self.eos_token_id = tokenizer.eos_token_id

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.tokenizer(*args, **kwargs)


def word_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "a": 3, "man": 4, "opens": 5, "door": 6, "the": 7, "cat": 8,
             "sits": 9, "down": 10, "in": 11, "kitchen": 12}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


ANNOTATIONS = {
    "v_short": ["a man opens a door", "the man opens the door in the kitchen"],
    "v_long": ["a cat sits down"],
    "v_silent": ["a cat", "a man sits down in a kitchen", "door"],
    "v_listed": ["the cat opens a door", "unknownword cat"],
    "not_in_store": ["ignored"],
}


def test_caption_dataset_labels_tokenized_once(features):
    root, arrays = features
    store = _store(root, list(arrays))
    tokenizer = CountingTokenizer(word_tokenizer())
    dataset = CaptionDataset(store, ANNOTATIONS, tokenizer, max_caption_len=6)
    assert len(dataset) == 8 and tokenizer.calls == 1
    assert dataset.pair_video.tolist() == [0, 0, 1, 2, 2, 2, 3, 3]
    assert dataset.pair_caption.tolist() == [0, 1, 0, 0, 1, 2, 0, 1]
    for epoch in range(3):
        for indices in index_batches(len(dataset), 3, seed=0, epoch=epoch):
            dataset.batch(indices)
    assert tokenizer.calls == 1
    batch = dataset.batch([0, 1, 2, 4])
    # hand-computed ids; "the man opens the door in the kitchen" is cut to 5 words + EOS
    assert batch["labels"].tolist() == [
        [3, 4, 5, 3, 6, 1],
        [7, 4, 5, 7, 6, 1],
        [3, 8, 9, 10, 1, -100],
        [3, 4, 9, 10, 11, 1],
    ]
    assert batch["labels"].dtype == torch.long and batch["labels"].is_contiguous()
    assert batch["video_ids"] == ["v_short", "v_short", "v_long", "v_silent"]
    assert batch["caption_index"].tolist() == [0, 1, 0, 1]
    assert dataset.batch([3, 5])["labels"].tolist() == [[3, 8, 1], [6, 1, -100]]  # trimmed to the longest
    assert dataset.batch([7])["labels"].tolist() == [[2, 8, 1]]


def test_caption_dataset_with_t5_style_tokenizer(features):
    from videoblip2.tiny import t5_style_tokenizer

    root, arrays = features
    store = _store(root, list(arrays))
    captions = [c for caps in ANNOTATIONS.values() for c in caps]
    tokenizer = t5_style_tokenizer(captions * 5, vocab_size=60)
    dataset = CaptionDataset(store, ANNOTATIONS, tokenizer, max_caption_len=32)
    labels = dataset.batch(range(len(dataset)))["labels"]
    for row, caption in zip(labels.tolist(), dataset.captions):
        ids = [i for i in row if i != -100]
        assert ids[-1] == tokenizer.eos_token_id and ids.count(tokenizer.eos_token_id) == 1
        assert ids == tokenizer(caption)["input_ids"]  # same as the tokenizer's own EOS-appending path
        assert row[len(ids):] == [-100] * (len(row) - len(ids))
    short = CaptionDataset(store, ANNOTATIONS, tokenizer, max_caption_len=3)
    assert short.labels.shape[1] == 3
    for row, caption in zip(short.labels.tolist(), short.captions):  # truncation keeps EOS
        full = tokenizer(caption, add_special_tokens=False)["input_ids"]
        assert [i for i in row if i != -100] == full[:2] + [tokenizer.eos_token_id]


def test_preloaded_batch_equals_per_item_path(features):
    root, arrays = features
    ids = list(arrays)
    fast = _store(root, ids)
    lazy = _store(root, ids, preload=False)
    tokenizer = word_tokenizer()
    fast_ds = CaptionDataset(fast, ANNOTATIONS, tokenizer, 6)
    lazy_ds = CaptionDataset(lazy, ANNOTATIONS, tokenizer, 6)
    indices = [6, 0, 3, 2, 7]
    expected = fast_ds.batch(indices)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(lazy_ds, indices), batch_size=len(indices),
                                         collate_fn=CaptionDataset.collate)
    for other in (lazy_ds.batch(indices), next(iter(loader))):
        assert other.keys() == expected.keys()
        for key, value in expected.items():
            if isinstance(value, torch.Tensor):
                assert other[key].dtype == value.dtype and torch.equal(other[key], value), key
            else:
                assert other[key] == value, key

    videos = VideoDataset(fast, ["v_long", "v_silent"], refs=ANNOTATIONS)
    lazy_videos = VideoDataset(lazy, ["v_long", "v_silent"], refs=ANNOTATIONS)
    a = videos.batch([1, 0])
    b = VideoDataset.collate([lazy_videos[1], lazy_videos[0]])
    assert a["video_ids"] == b["video_ids"] == ["v_silent", "v_long"]
    assert a["refs"] == b["refs"] == [ANNOTATIONS["v_silent"], ANNOTATIONS["v_long"]]
    for key in ("video", "video_mask", "audio", "audio_mask"):
        assert torch.equal(a[key], b[key]), key
    assert "labels" not in a
    assert len(VideoDataset(fast)) == 4


def test_dataset_errors(features):
    root, arrays = features
    store = _store(root, list(arrays))
    with pytest.raises(DataError, match="have no captions: v_long"):
        CaptionDataset(store, {k: v for k, v in ANNOTATIONS.items() if k != "v_long"}, word_tokenizer(), 6)
    with pytest.raises(DataError, match="not in the feature store"):
        VideoDataset(store, ["v_short", "video404"])


def test_index_batches_cover_and_repeat():
    batches = list(index_batches(10, 4, seed=3, epoch=1))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    again = list(index_batches(10, 4, seed=3, epoch=1))
    assert all(np.array_equal(x, y) for x, y in zip(batches, again))
    other = np.concatenate(list(index_batches(10, 4, seed=3, epoch=2)))
    assert other.tolist() != np.concatenate(batches).tolist()
    assert [len(b) for b in index_batches(10, 4, drop_last=True)] == [4, 4]
    assert np.concatenate(list(index_batches(5, 2, shuffle=False))).tolist() == [0, 1, 2, 3, 4]


def test_store_to_device_keeps_values(features):
    root, arrays = features
    store = _store(root, list(arrays)).to("cpu")
    batch = store.batch(torch.tensor([1, 0]), dtype=torch.float16)
    assert batch["video"].dtype == torch.float16 and batch["video"].device.type == "cpu"
    assert batch["video_ids"] == ["v_long", "v_short"]


# ----------------------------------------------------------------------------------------------
# modality ablations


def _ablation_batch():
    """3 videos, T=6 frames: frame t of video b is the constant vector 10*b + t + 1; lengths 4, 6, 2."""
    lengths = [4, 6, 2]
    video = torch.zeros(3, 6, 3)
    for b, n in enumerate(lengths):
        video[b, :n] = (10 * b + torch.arange(1, n + 1, dtype=torch.float32))[:, None]
    video_mask = torch.arange(6)[None, :] < torch.tensor(lengths)[:, None]
    audio = torch.arange(3 * 2 * 2, dtype=torch.float32).reshape(3, 2, 2) + 1
    audio_mask = torch.tensor([[True, True], [True, False], [False, False]])
    return {"video_ids": ["va", "vb", "vc"], "video": video, "video_mask": video_mask, "audio": audio,
            "audio_mask": audio_mask, "refs": [["x"], ["y"], ["z"]]}


def _clone(batch):
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]) if isinstance(a[key], torch.Tensor) else a[key] == b[key], key


def test_ablate_audio_and_video_values():
    from videoblip2.data import ablate_features

    batch = _ablation_batch()
    before = _clone(batch)
    no_audio = ablate_features(batch, "audio")
    _assert_same(batch, before)  # pure: the input is untouched
    assert torch.equal(no_audio["audio"], torch.zeros(3, 2, 2))
    assert no_audio["audio_mask"].dtype == torch.bool and not no_audio["audio_mask"].any()
    for key in ("video", "video_mask", "video_ids", "refs"):
        assert no_audio[key] is batch[key]

    no_video = ablate_features(batch, "video")
    _assert_same(batch, before)
    assert torch.equal(no_video["video"], torch.zeros(3, 6, 3))
    assert no_video["video_mask"].tolist() == [[True] + [False] * 5] * 3
    assert no_video["audio"] is batch["audio"] and no_video["audio_mask"] is batch["audio_mask"]
    with pytest.raises(ValueError, match="unknown ablation 'sound'"):
        ablate_features(batch, "sound")


def test_ablate_frame_order_shuffles_real_frames_per_video():
    from videoblip2.data import ablate_features, frame_permutation

    batch = _ablation_batch()
    before = _clone(batch)
    shuffled = ablate_features(batch, "frame-order", seed=0)
    _assert_same(batch, before)
    assert torch.equal(shuffled["video_mask"], batch["video_mask"]) and shuffled["audio"] is batch["audio"]
    # the permutation is a fixed function of (seed, video id): known values
    assert frame_permutation(8, "video7", 0).tolist() == [1, 0, 3, 7, 2, 6, 4, 5]
    assert frame_permutation(8, "video7", 1).tolist() == [6, 1, 0, 3, 5, 2, 7, 4]
    assert frame_permutation(6, "v_long", 0).tolist() == [0, 4, 5, 1, 3, 2]
    for b, n in enumerate([4, 6, 2]):
        frames = shuffled["video"][b, :, 0].tolist()
        expected = [10 * b + 1 + i for i in frame_permutation(n, batch["video_ids"][b], 0).tolist()]
        assert frames == expected + [0.0] * (6 - n)  # real frames permuted, padding stays at the end
        assert sorted(frames[:n]) == [10 * b + 1 + i for i in range(n)]
        assert torch.equal(shuffled["video"][b, :, 1], shuffled["video"][b, :, 0])  # whole rows move
    assert shuffled["video"][1, :, 0].tolist() != batch["video"][1, :, 0].tolist()

    # the same video gets the same order whatever else is in the batch and where it sits
    sub = {k: (v[[1, 0]] if isinstance(v, torch.Tensor) else [v[1], v[0]]) for k, v in batch.items()}
    sub_shuffled = ablate_features(sub, "frame-order", seed=0)
    assert torch.equal(sub_shuffled["video"][0], shuffled["video"][1])
    assert torch.equal(sub_shuffled["video"][1], shuffled["video"][0])
    # another seed, another order
    assert not torch.equal(ablate_features(batch, "frame-order", seed=1)["video"][1], shuffled["video"][1])
    with pytest.raises(ValueError, match="video_ids"):
        ablate_features({k: v for k, v in batch.items() if k != "video_ids"}, "frame-order")


def test_ablated_batches_run_through_the_model(tiny_model, feature_batch):
    """No audio = exactly the model's own no-sound path; no video = one constant set of video queries."""
    from videoblip2.data import ablate_features

    model = tiny_model.eval()
    cfg = model.config
    batch = {"video_ids": ["a", "b", "c"], "video": feature_batch["video"][:, :cfg.max_frames, :cfg.video_dim],
             "video_mask": feature_batch["video_mask"][:, :cfg.max_frames],
             "audio": feature_batch["audio"][:, :cfg.max_audio_windows, :cfg.audio_dim],
             "audio_mask": feature_batch["audio_mask"][:, :cfg.max_audio_windows]}
    with torch.no_grad():
        full, full_mask = model.encode(batch["video"], batch["video_mask"], batch["audio"], batch["audio_mask"])
        b = ablate_features(batch, "audio")
        no_audio, no_audio_mask = model.encode(b["video"], b["video_mask"], b["audio"], b["audio_mask"])
        silent, silent_mask = model.encode(batch["video"], batch["video_mask"], None, None)
        b = ablate_features(batch, "video")
        no_video, _ = model.encode(b["video"], b["video_mask"], b["audio"], b["audio_mask"])
        b = ablate_features(batch, "frame-order", seed=3)
        shuffled, _ = model.encode(b["video"], b["video_mask"], b["audio"], b["audio_mask"])
    q = cfg.qformer.num_query_tokens
    torch.testing.assert_close(no_audio, silent)
    assert torch.equal(no_audio_mask, silent_mask) and not no_audio_mask[:, q:2 * q].any()
    assert full_mask[0, q:2 * q].all()  # the unablated batch does use video 0's sound
    assert torch.isfinite(no_video).all()
    torch.testing.assert_close(no_video[0, :q], no_video[1, :q])  # video queries no longer depend on the video
    assert not torch.allclose(full[0, :q], full[1, :q])
    assert not torch.allclose(shuffled[:, :q], full[:, :q])  # order matters through the time embeddings
    torch.testing.assert_close(shuffled[:, q:], full[:, q:])  # audio and prompt untouched


def test_missing_video_file_is_named_before_the_audio_question(features):
    """Issue 20: in an extracted folder (meta.json records the audio windows) a listed video without any feature
    file is reported as its missing video feature file, not as a missing no-audio marker."""
    root, _ = features
    (root / "meta.json").write_text(json.dumps({"video": {"dim": VIDEO_DIM}, "audio": {"dim": AUDIO_DIM,
                                                                                        "window_s": 5.0}}))
    for preload in (True, False):
        with pytest.raises(FeatureFileError) as error:
            _store(root, ["v_short", "v_nothing"], preload=preload)
        assert str(error.value) == f"{root / 'video' / 'v_nothing.npy'}: feature file not found"
