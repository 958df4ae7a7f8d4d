"""train_ce / train_scst faults (issue 14, points 4 and 9): a restart after a kill before the first save starts
a clean log; numeric flags are checked at parse time; a resume with a changed fixed flag is an error; the final
summary names only directories that exist."""

from __future__ import annotations

import json

import pytest

from train import train_ce, train_scst
from train.errors import TrainingError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _args(data, out, *extra):
    return ["--model", str(data[1]), "--features", str(data[0]), "--ann", str(data[2]), "--no-progress",
            "--num-threads", "1", "--out", str(out), "--batch-size", "8", *extra]


@pytest.fixture
def data(synth_data, tiny_init_dir, tmp_path):
    from videoblip2.annotations import load_annotations

    # the training captions as a plain list: no splits, so no validation and no best/
    train = load_annotations(synth_data / "train_val_videodatainfo.json", "train")
    ann = tmp_path / "train.json"
    ann.write_text(json.dumps([{"video_id": v, "caption": c} for v, caps in train.items() for c in caps]))
    return synth_data, tiny_init_dir, ann


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_restart_without_a_saved_state_starts_a_clean_log(data, tmp_path, capsys):
    out = tmp_path / "ce"
    out.mkdir()
    # what `kill -9` at step 3 of the first attempt leaves: log records, no state/ (no save yet)
    killed = [{"type": "start", "step": 0, "resumed": False}] + [
        {"type": "train", "step": s, "loss": 9.0} for s in (1, 2, 3)]
    (out / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in killed))
    train_ce.main(_args(data, out, "--max-steps", "2", "--log-every", "1"))
    log = _log(out)
    assert [r["type"] for r in log if r["type"] == "start"] == ["start"]
    assert [r["step"] for r in log if r["type"] == "train"] == [1, 2]
    assert all(r.get("loss") != 9.0 for r in log)
    out_text = capsys.readouterr().out
    assert "dropping 4 records of an earlier attempt" in out_text
    # the final summary names the directories that exist: no validation set given -> no best/
    assert not (out / "best").exists() and f"models in {out / 'last'}\n" in out_text and "best" not in \
        out_text.splitlines()[-1]

    # resuming with another --lr: the saved optimizer would silently keep the old one -> an error
    with pytest.raises(TrainingError, match=r"--lr 0\.0001 \(saved\) vs 0\.002 \(now\)"):
        train_ce.main(_args(data, out, "--max-steps", "3", "--lr", "2e-3"))
    with pytest.raises(TrainingError, match=r"--weight-decay 0\.05 \(saved\) vs 0\.0 \(now\)"):
        train_ce.main(_args(data, out, "--max-steps", "3", "--weight-decay", "0"))

    # a shared run folder whose training_state.pt was crafted to run a command: refused, nothing runs (issue 19)
    import torch

    state_file = out / "state" / "training_state.pt"
    saved = torch.load(state_file, weights_only=True)  # the trainer's own state needs no allow-list
    assert isinstance(saved["rng"][0]["numpy"]["key"], torch.Tensor)
    marker = tmp_path / "ran"
    torch.save({**saved, "progress": _RunsCode(marker)}, state_file)
    with pytest.raises(TrainingError) as error:
        train_ce.main(_args(data, out, "--max-steps", "3"))
    assert "\n" not in str(error.value) and str(state_file) in str(error.value) and "system" in str(error.value)
    assert not marker.exists()


class _RunsCode:
    """Unpickling this calls os.system (what a crafted .pt would do under plain pickle)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize(("flags", "message"), [
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--epochs", "-1"], "--epochs must be >= 1, got -1"),
    (["--max-steps", "-5"], "--max-steps must be >= 1, got -5"),
    (["--lr=-1e-4"], "--lr must be > 0, got -0.0001"),
    (["--lr", "nan"], "--lr must be > 0, got nan"),
    (["--dropout", "1.5"], "--dropout must be >= 0 and < 1, got 1.5"),
    (["--weight-decay", "-0.1"], "--weight-decay must be >= 0, got -0.1"),
    (["--warmup-ratio", "2"], "--warmup-ratio must be >= 0 and <= 1, got 2.0"),
    (["--save-every", "-1"], "--save-every must be >= 0, got -1"),
    (["--adam-betas", "0.9", "1.0"], "--adam-betas must be >= 0 and < 1, got 1.0"),
    (["--max-grad-norm", "inf"], "--max-grad-norm must be >= 0, got inf"),
])
def test_train_ce_numeric_flags_are_checked_at_parse_time(flags, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        train_ce.parse_args(["--tiny", "--features", "f", "--ann", "a.json", "--out", str(tmp_path), *flags])
    # one line, no usage block (issue 20)
    assert stop.value.code == 2
    assert capsys.readouterr().err == f"error: {message}; see python -m train.train_ce --help\n"


@pytest.mark.parametrize(("flags", "message"), [
    (["--temperature", "0"], "--temperature must be > 0, got 0.0"),
    (["--max-sample-len", "0"], "--max-sample-len must be >= 1, got 0"),
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--lr", "-1"], "--lr must be > 0, got -1.0"),
])
def test_train_scst_numeric_flags_are_checked_at_parse_time(flags, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        train_scst.parse_args(["--model", "m", "--features", "f", "--ann", "a.json", "--out", str(tmp_path), *flags])
    assert stop.value.code == 2
    assert capsys.readouterr().err == f"error: {message}; see python -m train.train_scst --help\n"
