"""train_ce through main([...]) on a tiny synthetic set: the loss falls, checkpoints round-trip, a run killed
with SIGKILL resumes exactly, directory writes are atomic, weight decay skips biases/norms/embeddings."""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from videoblip2.train import train_ce
from videoblip2.train.data import feature_store
from videoblip2.train.errors import TrainingError
from videoblip2.train.file_utils import atomic_write_dir, recover_dir
from videoblip2.train.optim import QFORMER_FINETUNE_LR, build_optimizer, is_pretrained_part, no_decay, param_groups
from videoblip2.train.validation import Validator

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data_args(data):
    return ["--features", str(data), "--ann", str(data / "train_val_videodatainfo.json"), "--no-progress",
            "--num-threads", "1"]


def _records(out, kind):
    return [r for r in map(json.loads, open(Path(out) / "log.jsonl")) if r["type"] == kind]


def test_tiny_run_loss_falls_schedule_and_checkpoints_round_trip(synth_data, tmp_path):
    from videoblip2.annotations import load_annotations
    from videoblip2.modeling import VideoBLIP2

    out = tmp_path / "ce"
    lr, warmup, total = 1e-2, 2, 12
    summary = train_ce.main(["--tiny", "--tiny-hidden", "32", "--tiny-layers", "1", *_data_args(synth_data),
                             "--out", str(out), "--batch-size", "8", "--max-steps", str(total), "--lr", str(lr),
                             "--warmup-steps", str(warmup), "--log-every", "1"])
    assert summary["step"] == total
    train = _records(out, "train")
    assert [r["step"] for r in train] == list(range(1, total + 1))
    losses = [r["loss"] for r in train]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
    # the lr of step s is the schedule at s - 1: linear warm-up from 0, then cosine to 0
    for r in train:
        s = r["step"] - 1
        expected = lr * s / warmup if s < warmup else lr * 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup)))
        assert r["lr"] == pytest.approx(expected, rel=1e-6, abs=1e-12)
        assert r["pairs_per_s"] > 0 and r["grad_norm"] > 0

    # outputs: last/ best/ state/ log.png; last/ and state/model hold the same weights
    (val,) = _records(out, "val")
    assert val["step"] == total and val["cider_df"] == "validation references"
    assert (out / "log.png").read_bytes()[:4] == b"\x89PNG"
    progress = json.loads((out / "state" / "progress.json").read_text())
    assert progress["step"] == total and progress["best_step"] == total
    assert json.loads((out / "best" / "trainer_info.json").read_text())["validation"]["val_loss"] == val["val_loss"]
    last, state_model = load_file(out / "last" / "model.safetensors"), load_file(out / "state" / "model" / "model.safetensors")
    assert last.keys() == state_model.keys() and all(torch.equal(last[k], state_model[k]) for k in last)

    # round trip: the reloaded model reproduces the validation numbers logged by the in-memory one
    model = VideoBLIP2.from_pretrained(out / "best")
    val_ann = load_annotations(synth_data / "train_val_videodatainfo.json", "validate")
    args = train_ce.parse_args(["--tiny", *_data_args(synth_data), "--out", str(out)])
    from videoblip2.train.distributed import DistInfo

    dist = DistInfo()
    again = Validator(model, feature_store(synth_data, list(val_ann), model.config, args, dist), val_ann, dist,
                      batch_size=16, precision="fp32")(model)
    assert again["val_loss"] == pytest.approx(val["val_loss"], rel=1e-5)
    assert again["val_cider"] == pytest.approx(val["val_cider"], abs=1e-9)
    assert again["examples"] == val["examples"]


def test_bf16_run_stores_the_frozen_t5_in_bf16_and_its_numbers_reproduce(synth_data, tmp_path):
    """--precision bf16 (CPU autocast here, the CUDA default): the frozen T5 is stored in bf16, and a reloaded
    fp32 model under autocast reproduces the validation numbers exactly (the same bf16 products)."""
    from videoblip2.train.distributed import DistInfo
    from videoblip2.annotations import load_annotations
    from videoblip2.modeling import VideoBLIP2

    out = tmp_path / "ce_bf16"
    train_ce.main(["--tiny", "--tiny-hidden", "32", "--tiny-layers", "1", "--tiny-frozen-t5", *_data_args(synth_data),
                   "--out", str(out), "--batch-size", "8", "--max-steps", "3", "--lr", "1e-3", "--log-every", "1",
                   "--precision", "bf16"])
    losses = [r["loss"] for r in _records(out, "train")]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    (val,) = _records(out, "val")
    saved = load_file(out / "last" / "model.safetensors")
    assert saved["t5.base_model.model.lm_head.weight"].dtype == torch.bfloat16
    assert saved["t5.base_model.model.shared.weight"].dtype == torch.float32
    model = VideoBLIP2.from_pretrained(out / "last")
    assert model.t5.get_base_model().lm_head.weight.dtype == torch.float32  # loads as fp32
    val_ann = load_annotations(synth_data / "train_val_videodatainfo.json", "validate")
    args = train_ce.parse_args(["--tiny", *_data_args(synth_data), "--out", str(out)])
    dist = DistInfo()
    again = Validator(model, feature_store(synth_data, list(val_ann), model.config, args, dist), val_ann, dist,
                      batch_size=16, precision="bf16")(model)
    assert again["val_loss"] == val["val_loss"] and again["examples"] == val["examples"]


def test_activation_checkpointing_run_has_the_same_losses(synth_data, tmp_path):
    """--activation-checkpointing recomputes layers in backward with the same dropout masks: same run."""
    args = ["--tiny", "--tiny-hidden", "32", "--tiny-layers", "1", "--tiny-frozen-t5", *_data_args(synth_data),
            "--batch-size", "8", "--max-steps", "3", "--lr", "1e-3", "--log-every", "1", "--val-videos", "4"]
    train_ce.main([*args, "--out", str(tmp_path / "plain")])
    train_ce.main([*args, "--out", str(tmp_path / "recompute"),
                   "--activation-checkpointing", "t5_encoder", "t5_decoder", "qformers"])
    plain, recompute = (_records(tmp_path / name, "train") for name in ("plain", "recompute"))
    assert len(plain) == 3 and [r["loss"] for r in recompute] == [r["loss"] for r in plain]
    weights, weights_ref = (load_file(tmp_path / name / "last" / "model.safetensors")
                            for name in ("recompute", "plain"))
    assert weights.keys() == weights_ref.keys() and all(torch.equal(weights[k], weights_ref[k]) for k in weights)
    with pytest.raises(SystemExit):
        train_ce.parse_args([*args, "--out", str(tmp_path / "x"), "--activation-checkpointing", "t5"])


def _watch_and_kill(proc, log_path, result):
    """SIGKILL `proc` as soon as its log shows a completed state save."""
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if log_path.exists():
            for line in log_path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record.get("type") == "save" and "state" in record.get("dirs", []):
                    os.kill(proc.pid, signal.SIGKILL)
                    result["killed_after_save_at"] = record["step"]
                    proc.wait()
                    return
        time.sleep(0.01)
    proc.kill()


def test_sigkill_then_resume_matches_uninterrupted_run(synth_data, tiny_init_dir, tmp_path):
    args = ["--model", str(tiny_init_dir), *_data_args(synth_data), "--batch-size", "8", "--max-steps", "30",
            "--save-every", "2", "--log-every", "1", "--lr", "2e-3", "--qformer-lr", "5e-4"]
    killed = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "train.train_ce", *args, "--out", str(killed)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    result = {}
    watcher = threading.Thread(target=_watch_and_kill, args=(proc, killed / "log.jsonl", result))
    watcher.start()
    reference = tmp_path / "reference"
    train_ce.main([*args, "--out", str(reference)])  # the uninterrupted run, while the other one is killed
    watcher.join()
    assert proc.returncode == -signal.SIGKILL, (
        f"the run was not killed (rc {proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
    saved = json.loads((killed / "state" / "progress.json").read_text())["step"]
    assert saved >= result["killed_after_save_at"] >= 2 and saved < 30

    train_ce.main([*args, "--out", str(killed)])  # re-running into the same directory resumes
    starts = _records(killed, "start")
    assert [(s["step"], s["resumed"]) for s in starts] == [(0, False), (saved, True)]
    ref_losses = {r["step"]: r["loss"] for r in _records(reference, "train")}
    got = _records(killed, "train")
    assert [r["step"] for r in got] == list(range(1, 31))  # records of the killed run's lost steps were dropped
    ref_lrs = {r["step"]: (r["lr"], r["lr_qformer"]) for r in _records(reference, "train")}
    for r in got:
        assert r["loss"] == pytest.approx(ref_losses[r["step"]], rel=1e-6, abs=1e-6), r["step"]
        # both learning-rate groups survive the resume, on the same schedule
        assert (r["lr"], r["lr_qformer"]) == pytest.approx(ref_lrs[r["step"]], rel=1e-9), r["step"]
        assert r["lr_qformer"] == pytest.approx(r["lr"] / 4, rel=1e-9)
    first_resumed = next(r for r in got if r["step"] == saved + 1)
    assert first_resumed["loss"] == pytest.approx(ref_losses[saved + 1], rel=1e-6)
    a, b = load_file(killed / "last" / "model.safetensors"), load_file(reference / "last" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-5) for k in a)
    assert _records(killed, "val")[-1]["val_loss"] == pytest.approx(_records(reference, "val")[-1]["val_loss"], rel=1e-6)

    with pytest.raises(TrainingError, match="global_batch"):  # the data position only means something unchanged
        train_ce.main([*args, "--out", str(killed), "--batch-size", "4"])


def test_atomic_write_dir_keeps_the_previous_version(tmp_path):
    final = tmp_path / "best"

    def good(content):
        def write(path):
            path.mkdir()
            (path / "weights").write_text(content)
        return write

    atomic_write_dir(final, good("v1"))

    def crashing(path):
        path.mkdir()
        (path / "weights").write_text("half")
        raise KeyboardInterrupt  # the process dies in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        atomic_write_dir(final, crashing)
    assert (final / "weights").read_text() == "v1"
    atomic_write_dir(final, good("v2"))  # the leftover temporary directory is cleaned up
    assert (final / "weights").read_text() == "v2" and sorted(os.listdir(tmp_path)) == ["best"]

    os.replace(final, tmp_path / ".best.old")  # killed between the two renames of a swap
    (tmp_path / ".best.tmp").mkdir()
    recover_dir(final)
    assert (final / "weights").read_text() == "v2" and sorted(os.listdir(tmp_path)) == ["best"]


def test_param_groups_skip_decay_on_biases_norms_embeddings(tiny_init_dir):
    from videoblip2.modeling import VideoBLIP2

    model = VideoBLIP2.from_pretrained(tiny_init_dir)
    groups = param_groups(model, weight_decay=0.05)
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in groups[0]["params"]}
    plain = {names[id(p)] for p in groups[1]["params"]}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert decayed | plain == trainable and not decayed & plain
    assert {"video_query_tokens", "audio_query_tokens", "video_time_embedding", "proj_video.bias"} <= plain
    assert any("word_embeddings" in n for n in plain) and any("LayerNorm" in n for n in plain)
    assert "proj_video.weight" in decayed and any("lora_A" in n for n in decayed)
    assert not any(no_decay(n, p) for n, p in model.named_parameters() if n in decayed)


def test_two_learning_rates_pretrained_qformers_and_new_layers(tiny_init_dir):
    """Q-Formers + query tokens at --qformer-lr, everything else trainable at --lr; decay split kept in both."""
    import argparse

    from videoblip2.train.optim import resolve_qformer_lr
    from videoblip2.modeling import VideoBLIP2

    model = VideoBLIP2.from_pretrained(tiny_init_dir)
    args = argparse.Namespace(lr=1e-4, qformer_lr=1e-5, weight_decay=0.05, adam_betas=(0.9, 0.999))
    optimizer = build_optimizer(model, args, torch.device("cpu"), qformer_lr=1e-5)
    groups = optimizer.param_groups
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in groups] == [
        ("new/decay", 1e-4, 0.05), ("new/no_decay", 1e-4, 0.0), ("qformer/decay", 1e-5, 0.05),
        ("qformer/no_decay", 1e-5, 0.0)]
    names = {id(p): n for n, p in model.named_parameters()}
    slow = {names[id(p)] for g in groups[2:] for p in g["params"]}
    fast = {names[id(p)] for g in groups[:2] for p in g["params"]}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert slow | fast == trainable and not slow & fast
    assert {"video_query_tokens", "audio_query_tokens"} <= slow
    assert all(n.startswith(("video_qformer.", "audio_qformer.")) for n in slow - {"video_query_tokens",
                                                                                  "audio_query_tokens"})
    assert {"video_input_proj.weight", "audio_upscaler.weight", "video_time_embedding", "audio_time_embedding",
            "proj_video.weight", "proj_audio.weight"} <= fast and any("lora_A" in n for n in fast)
    assert not any(is_pretrained_part(n) for n in fast)
    # one rate (--tiny, SCST): the two groups of before
    one = build_optimizer(model, args, torch.device("cpu"), qformer_lr=1e-4)
    assert [g["name"] for g in one.param_groups] == ["new/decay", "new/no_decay"]
    # defaults: LAVIS' 1e-5 for Q-Formers from BERT/BLIP-2, --lr otherwise; an explicit flag wins
    assert resolve_qformer_lr(argparse.Namespace(lr=1e-4, qformer_lr=None), pretrained_qformers=True) == 1e-5
    assert QFORMER_FINETUNE_LR == 1e-5
    assert resolve_qformer_lr(argparse.Namespace(lr=2e-3, qformer_lr=None), pretrained_qformers=False) == 2e-3
    assert resolve_qformer_lr(argparse.Namespace(lr=2e-3, qformer_lr=3e-4), pretrained_qformers=True) == 3e-4
