"""Loading builds each module once: nothing the checkpoint overwrites is randomly initialised first (issue 28).

The reference is the old way: build the model with its random initialisation, then copy the checkpoint in.
"""

import pytest
import torch
import transformers
from safetensors.torch import load_file
from transformers import T5ForConditionalGeneration

from videoblip2.config import VideoBLIP2Config
from videoblip2.modeling import VideoBLIP2

INIT_FUNCTIONS = ("normal_", "uniform_", "kaiming_uniform_", "xavier_uniform_", "trunc_normal_", "ones_", "zeros_")


@pytest.fixture
def init_calls(monkeypatch):
    """Counts the calls of torch.nn.init's functions (nn.Linear, LayerNorm, Embedding and transformers' inits)."""
    calls = {"n": 0}
    for name in INIT_FUNCTIONS:
        original = getattr(torch.nn.init, name)

        def counted(*args, _original=original, **kwargs):
            calls["n"] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(torch.nn.init, name, counted)
    return calls


def _old_way(path, model_like):
    """What from_pretrained did before: a randomly initialised model, then the checkpoint copied over it."""
    torch.manual_seed(123)
    config = VideoBLIP2Config.load(path / "config.json")
    old = VideoBLIP2(config, model_like.t5_tokenizer, model_like.qformer_tokenizer)
    old.load_state_dict(load_file(str(path / "model.safetensors")), strict=False)
    return old.eval()


def _assert_same_tensors(a: torch.nn.Module, b: torch.nn.Module):
    for kind in ("named_parameters", "named_buffers"):
        left, right = dict(getattr(a, kind)()), dict(getattr(b, kind)())
        assert left.keys() == right.keys()
        for name in left:
            assert left[name].dtype == right[name].dtype and torch.equal(left[name], right[name]), name
    # ties (T5's shared input embeddings) are kept
    assert [n for n, _ in a.named_parameters(remove_duplicate=True)] == \
        [n for n, _ in b.named_parameters(remove_duplicate=True)]


def _perturb(model):
    """Moves every trainable weight (what the checkpoint holds, with the base T5 when it is saved too)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.01)


def test_from_pretrained_initialises_nothing_and_loads_the_same_weights(tiny_model, feature_batch, tmp_path,
                                                                       init_calls):
    _perturb(tiny_model)  # LoRA B and the zero-initialised parts are no longer what an init gives
    tiny_model.eval().save_pretrained(tmp_path / "m")
    init_calls["n"] = 0
    loaded = VideoBLIP2.from_pretrained(tmp_path / "m")
    assert init_calls["n"] == 0  # the old way called torch.nn.init hundreds of times
    old = _old_way(tmp_path / "m", tiny_model)
    assert init_calls["n"] > 100
    _assert_same_tensors(loaded, old)
    _assert_same_tensors(loaded, tiny_model.eval())
    video, audio = feature_batch["video"][:, :8], feature_batch["audio"]
    kwargs = dict(num_beams=3, max_new_tokens=8)
    assert loaded.generate(video, None, audio, feature_batch["audio_mask"], **kwargs) == \
        old.generate(video, None, audio, feature_batch["audio_mask"], **kwargs)


def test_from_pretrained_with_a_base_t5_by_path_loads_the_same_weights(tiny_frozen_t5_model, tmp_path):
    base_dir = tmp_path / "flan-t5-local"
    torch.manual_seed(5)
    T5ForConditionalGeneration(transformers.T5Config(**tiny_frozen_t5_model.config.t5.architecture)).save_pretrained(
        base_dir)
    config = VideoBLIP2Config.from_dict(tiny_frozen_t5_model.config.to_dict())
    config.t5.name_or_path, config.t5.architecture = str(base_dir), None
    model = VideoBLIP2(config, tiny_frozen_t5_model.t5_tokenizer, tiny_frozen_t5_model.qformer_tokenizer)
    _perturb(model)
    model.eval().save_pretrained(tmp_path / "m")
    loaded = VideoBLIP2.from_pretrained(tmp_path / "m")
    _assert_same_tensors(loaded, _old_way(tmp_path / "m", model))
    _assert_same_tensors(loaded, model)


def test_extractors_load_their_checkpoints_without_initialising(tiny_files, init_calls, monkeypatch):
    import contextlib

    import numpy as np

    import videoblip2.extract as extract

    init_calls["n"] = 0
    clip = extract.load_clip(tiny_files["clip_config"], tiny_files["clip_ckpt"], device="cpu")
    clap = extract.load_clap(tiny_files["clap_config"], tiny_files["clap_ckpt"], device="cpu")
    assert init_calls["n"] == 0
    monkeypatch.setattr(extract, "skip_init", contextlib.nullcontext)  # the old way: initialise, then load
    old_clip = extract.load_clip(tiny_files["clip_config"], tiny_files["clip_ckpt"], device="cpu")
    old_clap = extract.load_clap(tiny_files["clap_config"], tiny_files["clap_ckpt"], device="cpu")
    assert init_calls["n"] > 10
    _assert_same_tensors(clip.model, old_clip.model)
    audio_side = {k: v for k, v in old_clap.model.state_dict().items() if k.startswith(extract._CLAP_AUDIO_PREFIXES)}
    new_state = clap.model.state_dict()
    assert all(torch.equal(new_state[k], v) for k, v in audio_side.items())
    assert all(not v.is_floating_point() or not v.any() for k, v in new_state.items() if k not in audio_side)
    frames = torch.randint(0, 256, (3, *clip.image_size, 3), dtype=torch.uint8)
    assert torch.equal(clip.encode(frames), old_clip.encode(frames))
    waves = [np.sin(np.arange(48000) * f / 48000 * 2 * np.pi).astype(np.float32) * 0.5 for f in (220, 440)]
    assert torch.equal(clap.encode(waves), old_clap.encode(waves))
