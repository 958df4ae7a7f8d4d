"""Two processes (torchrun, gloo, CPU) with batch 4 each == one process with batch 8: same losses, same weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from videoblip2.train import train_ce
from videoblip2.train.model_setup import build_tiny

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _records(out, kind):
    return [r for r in map(json.loads, open(Path(out) / "log.jsonl")) if r["type"] == kind]


def _one_and_two_processes(tmp_path, common):
    """train_ce with `common` flags as two torchrun processes of batch 4 and, meanwhile, one of batch 8.

    Returns the two output directories (one, two) after both finished."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    two = tmp_path / "two"
    launch = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "train.train_ce", *common, "--batch-size", "4", "--out", str(two)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    one = tmp_path / "one"
    train_ce.main([*common, "--batch-size", "8", "--out", str(one)])  # runs while the two processes start
    output = launch.communicate(timeout=300)[0].decode()
    assert launch.returncode == 0, output[-3000:]
    return one, two


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    from videoblip2.annotations import load_annotations
    from videoblip2.synth import generate

    data = tmp_path / "synth"
    generate(data, num_videos=12, progress=False)  # 8 train videos, 1 validate
    ann = load_annotations(data / "train_val_videodatainfo.json", "train")
    # Dropout off through the config: with it on, each process would draw its own masks.
    model = build_tiny([c for caps in ann.values() for c in caps], seed=0, hidden=32, layers=1, queries=4,
                       dropout=0.0)
    assert model.config.qformer.hidden_dropout_prob == 0 and model.config.t5.architecture["dropout_rate"] == 0
    init = tmp_path / "init"
    model.save_pretrained(init)
    common = ["--model", str(init), "--features", str(data), "--ann", str(data / "train_val_videodatainfo.json"),
              "--max-steps", "4", "--log-every", "1", "--lr", "5e-3", "--warmup-steps", "1", "--no-progress",
              "--num-threads", "1", "--device", "cpu"]
    one, two = _one_and_two_processes(tmp_path, common)

    (start,) = _records(two, "start")
    assert start["world_size"] == 2 and start["global_batch"] == 8
    one_losses = [r["loss"] for r in _records(one, "train")]
    two_losses = [r["loss"] for r in _records(two, "train")]
    assert len(one_losses) == 4 and two_losses == pytest.approx(one_losses, rel=1e-5)
    a, b = load_file(one / "last" / "model.safetensors"), load_file(two / "last" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), key
    assert any(not torch.equal(a[k], load_file(init / "model.safetensors")[k]) for k in a)  # training moved them
    # validation split over the two processes gathers the same numbers
    v1, v2 = _records(one, "val")[-1], _records(two, "val")[-1]
    assert v2["val_loss"] == pytest.approx(v1["val_loss"], rel=1e-5) and v2["examples"] == v1["examples"]


def test_two_processes_match_one_process_on_a_multi_task_qa_run(tmp_path):
    """The same for captions + questions in one run: per-sample prompts go through DDP, QA validation is gathered."""
    from videoblip2.annotations import load_annotations, load_qa_annotations
    from videoblip2.config import VideoBLIP2Config
    from videoblip2.synth import generate

    data = tmp_path / "synth"
    generate(data, num_videos=12, progress=False)
    ann = load_annotations(data / "train_val_videodatainfo.json", "train")
    questions = load_qa_annotations(data / "avqa-train.json")
    template = VideoBLIP2Config().qa_prompt_template
    corpus = [c for caps in ann.values() for c in caps] + [template.format(question=q.question) for q in questions]
    model = build_tiny(corpus + [q.answer for q in questions], seed=0, hidden=32, layers=1, queries=4, dropout=0.0)
    init = tmp_path / "init"
    model.save_pretrained(init)
    common = ["--model", str(init), "--features", str(data), "--ann", str(data / "train_val_videodatainfo.json"),
              "--qa-ann", str(data / "avqa-train.json"), "--qa-val-ann", str(data / "avqa-val.json"),
              "--qa-ratio", "0.5", "--max-steps", "3", "--log-every", "1", "--lr", "5e-3", "--warmup-steps", "1",
              "--no-progress", "--num-threads", "1", "--device", "cpu"]
    one, two = _one_and_two_processes(tmp_path, common)
    (start,) = _records(two, "start")
    assert start["world_size"] == 2 and start["task"] == "train_ce+qa"
    one_losses = [r["loss"] for r in _records(one, "train")]
    assert len(one_losses) == 3 and [r["loss"] for r in _records(two, "train")] == pytest.approx(one_losses, rel=1e-5)
    a, b = load_file(one / "last" / "model.safetensors"), load_file(two / "last" / "model.safetensors")
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), key
    v1, v2 = _records(one, "val")[-1], _records(two, "val")[-1]
    assert v2["val_qa_loss"] == pytest.approx(v1["val_qa_loss"], rel=1e-5)
    assert v2["val_qa_accuracy"] == v1["val_qa_accuracy"] and v2["qa_examples"] == v1["qa_examples"]
