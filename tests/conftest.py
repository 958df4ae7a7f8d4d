"""Shared fixtures: everything offline, tiny, on the CPU."""

import os

# Before any import of laion_clap / transformers: nothing may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_model_factory():
    """Builds a fresh tiny VideoBLIP2 (hidden 64, 2 layers, 4 queries) with tokenizers trained in code."""
    from videoblip2.tiny import build_tiny_model

    return build_tiny_model


@pytest.fixture
def tiny_model(tiny_model_factory):
    return tiny_model_factory(seed=0)


@pytest.fixture
def tiny_frozen_t5_model(tiny_model_factory):
    """The real recipe at tiny size: T5 frozen, LoRA on q and v."""
    return tiny_model_factory(seed=0, train_t5=False)


@pytest.fixture
def feature_batch():
    """A batch of 3 videos: one with padded frames, one without sound."""
    g = torch.Generator().manual_seed(0)
    video = torch.randn(3, 10, 768, generator=g)
    video_mask = torch.ones(3, 10, dtype=torch.bool)
    video_mask[0, 7:] = False
    audio = torch.randn(3, 5, 512, generator=g)
    audio_mask = torch.ones(3, 5, dtype=torch.bool)
    audio_mask[1] = False
    return dict(video=video, video_mask=video_mask, audio=audio, audio_mask=audio_mask)


@pytest.fixture
def one_torch_thread():
    """One torch thread: on a shared 2-core machine, oversubscribed OpenMP threads make tiny models 5x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory):
    """A 9-video synthetic set: 6 train videos (120 caption pairs), 1 validate, 2 test. Read-only for tests."""
    from videoblip2.synth import generate

    root = tmp_path_factory.mktemp("synth9")
    generate(root, num_videos=9, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_init_dir(synth_data, tmp_path_factory):
    """A saved tiny model (dropout on), so that independent runs start from identical weights and tokenizers."""
    from videoblip2.train.model_setup import build_tiny
    from videoblip2.annotations import load_annotations

    ann = load_annotations(synth_data / "train_val_videodatainfo.json", "train")
    model = build_tiny([c for caps in ann.values() for c in caps], seed=0, hidden=32, layers=1, queries=4,
                       dropout=None)
    assert model.config.qformer.hidden_dropout_prob > 0 and model.config.lora.dropout > 0
    path = tmp_path_factory.mktemp("tiny_init") / "model"
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """Small real media files (tests/media.py: tones, silent and broken videos). Read-only for tests."""
    from media import write_media_set

    return write_media_set(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory):
    """Config JSONs and random-weight checkpoints of a tiny CLIP and a tiny CLAP."""
    from media import tiny_extractor_files

    return tiny_extractor_files(tmp_path_factory.getbasetemp() / "tiny_extractors")
