"""Runs that reproduce: the --dropout override survives save/load, per-rank random streams after model
building, and plotting that is best-effort."""

from __future__ import annotations

import argparse
import builtins
import json

import pytest
import torch
import transformers
from torch import nn

from videoblip2.train.distributed import DistInfo
from videoblip2.train.model_setup import build_model
from videoblip2.config import VideoBLIP2Config
from videoblip2.modeling import VideoBLIP2


@pytest.fixture
def local_sources(tiny_model, tmp_path):
    """A 'hub' T5 saved in a local directory, local tokenizers, and a config JSON naming them (no architecture)."""
    t5_dir = tmp_path / "flan-t5-local"
    architecture = dict(tiny_model.config.t5.architecture)
    assert architecture["dropout_rate"] == 0.1
    transformers.T5ForConditionalGeneration(transformers.T5Config(**architecture)).save_pretrained(t5_dir)
    tiny_model.t5_tokenizer.save_pretrained(t5_dir)
    tiny_model.qformer_tokenizer.save_pretrained(tmp_path / "bert-tok")
    config = VideoBLIP2Config.from_dict(tiny_model.config.to_dict())
    config.t5.name_or_path, config.t5.architecture, config.t5.train_base = str(t5_dir), None, False
    config.qformer_tokenizer = str(tmp_path / "bert-tok")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    return path


def _args(config, **kw):
    base = dict(model=None, checkpoint="best", tiny=False, config=str(config), t5=None, t5_tokenizer=None,
                qformer_tokenizer=None, bert=None, blip2=None, dropout=None, seed=0)
    return argparse.Namespace(**{**base, **kw})


def _dropouts(module: nn.Module, lora: bool = True) -> set[float]:
    return {m.p for name, m in module.named_modules() if isinstance(m, nn.Dropout) and (lora or "lora" not in name)}


def test_dropout_override_of_a_local_t5_is_saved_and_loaded(local_sources, tmp_path):
    model = build_model(_args(local_sources, dropout=0.3), [], DistInfo(), tmp_path)
    t5 = model.t5.get_base_model()
    assert t5.config.dropout_rate == 0.3 and _dropouts(t5) == {0.3}
    assert _dropouts(model) == {0.3}  # Q-Formers and LoRA too
    model.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["t5"]["dropout_rate"] == 0.3
    loaded = VideoBLIP2.from_pretrained(tmp_path / "saved")
    assert loaded.config.t5.dropout_rate == 0.3
    assert loaded.t5.get_base_model().config.dropout_rate == 0.3 and _dropouts(loaded) == {0.3}
    # without the override the checkpoint's own rate stays
    plain = build_model(_args(local_sources), [], DistInfo(), tmp_path)
    assert plain.config.t5.dropout_rate is None and _dropouts(plain.t5.get_base_model(), lora=False) == {0.1}


def test_every_process_gets_its_own_random_stream_after_building(local_sources, tmp_path):
    weights, draws = [], []
    for rank in (0, 1):
        dist = DistInfo(rank=rank, world_size=2)
        model = build_model(_args(local_sources, seed=7), [], dist, tmp_path)
        weights.append(model.proj_video.weight.detach().clone())
        draws.append(torch.rand(4))
        torch.manual_seed(7 + rank)
        assert torch.equal(draws[-1], torch.rand(4))  # the launch seed, seed + rank
    assert torch.equal(weights[0], weights[1])  # same initial weights on every process
    assert not torch.equal(draws[0], draws[1])  # different dropout / sampling streams


def test_plotting_without_matplotlib_warns_once_and_the_run_finishes(synth_data, tiny_init_dir, tmp_path,
                                                                     monkeypatch, capsys):
    from videoblip2.train import train_ce

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    out = tmp_path / "run"
    summary = train_ce.main(["--model", str(tiny_init_dir), "--features", str(synth_data), "--ann",
                             str(synth_data / "train_val_videodatainfo.json"), "--out", str(out), "--batch-size", "40",
                             "--epochs", "2", "--no-progress", "--num-threads", "1"])
    assert summary["step"] == 6  # 120 pairs / 40 x 2 epochs: it trained to the end and saved
    assert (out / "last" / "model.safetensors").exists() and not (out / "log.png").exists()
    err = capsys.readouterr()
    text = err.out + err.err
    assert text.count("warning: matplotlib is not installed") == 1  # once, although it plots after each epoch
