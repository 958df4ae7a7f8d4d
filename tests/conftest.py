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
