"""Issue 14, points 3, 8, 10, 11: predict checks --out before any work, user errors are one line with exit 2,
corrupt checkpoint files and mistyped config values are named, and `videoblip2.caption DIR` captions a folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from faults import read_only

from videoblip2 import predict
from videoblip2.cli import cli
from videoblip2.config import ConfigError, VideoBLIP2Config
from videoblip2.modeling import CheckpointError, VideoBLIP2
from videoblip2.synth import main as synth_main


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_model_factory):
    root = tmp_path_factory.mktemp("user_errors")
    tiny_model_factory(seed=0).save_pretrained(root / "model")
    synth_main(["--out", str(root / "data"), "--num-videos", "9", "--no-progress"])
    return root


def _predict_exit(capsys, argv):
    """What `python -m videoblip2.predict ARGV` does (its __main__ is `cli(main)`): exit status, stderr."""
    with pytest.raises(SystemExit) as stop:
        cli(lambda: predict.main(argv))
    return stop.value.code, capsys.readouterr().err


def _copy_model(saved, tmp_path):
    return shutil.copytree(saved / "model", tmp_path / "model")


# point 3 ------------------------------------------------------------------------------------------------


@pytest.fixture
def no_model_loading(monkeypatch):
    # the check must come first: loading the model (and captioning every video) before it means lost work
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(VideoBLIP2, "from_pretrained", refuse)


def test_predict_refuses_a_folder_or_a_path_under_a_file_as_out_before_work(saved, tmp_path, capsys,
                                                                              no_model_loading):
    base = ["--model", str(saved / "model"), "--features", str(saved / "data")]
    code, err = _predict_exit(capsys, [*base, "--out", str(tmp_path)])
    assert code == 2 and err.strip() == f"error: IsADirectoryError: --out {tmp_path}: is a folder, expected a file name"
    (tmp_path / "file").write_text("")
    code, err = _predict_exit(capsys, [*base, "--out", str(tmp_path / "file" / "p.json")])
    assert code == 2 and "is not a folder" in err and len(err.splitlines()) == 1


def test_predict_refuses_a_read_only_out_folder_before_work(saved, tmp_path, capsys, no_model_loading):
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):  # a real read-only mount: root ignores file modes
        code, err = _predict_exit(capsys, ["--model", str(saved / "model"), "--features", str(saved / "data"),
                                           "--out", str(ro / "p.json")])
    assert code == 2 and err.startswith(f"error: PermissionError: --out {ro / 'p.json'}: cannot write in {ro}")


# point 8 ------------------------------------------------------------------------------------------------


def test_predict_user_errors_are_one_line_exit_2(saved, tmp_path, capsys):
    out = str(tmp_path / "p.json")
    base = ["--features", str(saved / "data"), "--out", out]
    # a bad model directory, as a real `python -m` run (no traceback on stderr)
    run = subprocess.run([sys.executable, "-m", "videoblip2.predict", "--model", str(tmp_path / "nope"), *base],
                         capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip() == (f"error: SourceError: --model {tmp_path / 'nope'}: no such file or folder (expected "
                                  "a VideoBLIP2 model); give a save_pretrained folder (a training run's best/ or last/)")
    # bad annotations
    (tmp_path / "ann.json").write_text("{not json")
    code, err = _predict_exit(capsys, ["--model", str(saved / "model"), *base, "--ann", str(tmp_path / "ann.json")])
    assert code == 2 and err.startswith("error: AnnotationError: ") and "ann.json" in err
    # bad features: a corrupt .npy named
    data = shutil.copytree(saved / "data", tmp_path / "data")
    (data / "video" / "video0.npy").write_bytes(b"\x93NUMPY garbage")
    code, err = _predict_exit(capsys, ["--model", str(saved / "model"), "--features", str(data), "--out", out])
    assert code == 2 and err.startswith("error: FeatureFileError: ") and "video0.npy" in err
    # a missing features folder
    code, err = _predict_exit(capsys, ["--model", str(saved / "model"), "--features", str(tmp_path / "nf"),
                                       "--out", out])
    assert code == 2 and err.startswith(f"error: SourceError: --features {tmp_path / 'nf'}: no such folder; ")
    assert not (tmp_path / "p.json").exists()


# point 10 -----------------------------------------------------------------------------------------------


def test_truncated_weights_name_the_file(saved, tmp_path):
    model = _copy_model(saved, tmp_path)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy cut short
    with pytest.raises(CheckpointError, match=f"{weights}: cannot read the weights .*truncated or corrupt"):
        VideoBLIP2.from_pretrained(model)


def test_corrupt_tokenizer_file_is_named(saved, tmp_path):
    model = _copy_model(saved, tmp_path)
    broken = model / "t5_tokenizer" / "tokenizer_config.json"
    if not broken.exists():
        broken = sorted((model / "t5_tokenizer").glob("*.json"))[0]
    broken.write_text(broken.read_text()[:20])
    with pytest.raises(CheckpointError, match=f"cannot load the tokenizer \\({broken}: JSONDecodeError"):
        VideoBLIP2.from_pretrained(model)


@pytest.mark.parametrize(("config", "message"), [
    ({"video_dim": "768"}, "video_dim: expected an integer, got str '768'"),
    ({"max_frames": 1.5}, "max_frames: expected an integer, got float 1.5"),
    ({"qformer": {"hidden_dropout_prob": "0.1"}}, "qformer.hidden_dropout_prob: expected a number, got str"),
    ({"lora": {"target_modules": "q"}}, "lora.target_modules: expected a list (a string each), got str 'q'"),
    ({"t5": {"train_base": "yes"}}, "t5.train_base: expected true or false, got str 'yes'"),
    ({"prompt": None}, "prompt: expected a string, got NoneType None"),
    ({"qformer": [1]}, "qformer: expected a JSON object, got list"),
])
def test_config_value_of_the_wrong_type_names_key_and_type(tmp_path, config, message):
    with pytest.raises(ConfigError, match=message.replace("(", "\\(").replace(")", "\\)")):
        VideoBLIP2Config.from_dict(config)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=str(path)):
        VideoBLIP2Config.load(path)
    assert VideoBLIP2Config.from_dict({"lora": {"dropout": 0}, "t5": {"tokenizer": None}}).lora.dropout == 0


# point 11 -----------------------------------------------------------------------------------------------


def test_caption_a_folder(saved, tiny_files, media, tmp_path, capsys):
    from videoblip2.caption import main

    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(media["tone"], folder / "b_tone.mp4")
    shutil.copy(media["mute"], folder / "sub" / "a_mute.mp4")
    (folder / "notes.txt").write_text("not a video")
    common = ["--model", str(saved / "model"), "--clip-model", tiny_files["clip_config"], "--clip-pretrained",
              tiny_files["clip_ckpt"], "--device", "cpu", "--max-new-tokens", "3", "--json"]
    assert main([str(folder), *common]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["video"] for r in results] == [str(folder / "b_tone.mp4"), str(folder / "sub" / "a_mute.mp4")]
    assert all(isinstance(r["caption"], str) and "error" not in r for r in results)
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), *common]) == 2
    assert "a folder without video files" in capsys.readouterr().err
