"""Issue 20: a new user's first contact. Commands answer at once (no torch for --help or argument errors), an
argument error is one line naming the closest flag, one naming of the CLIP/CLAP flags (old names deprecated),
every pretrained source checked first with one line, and the tiny extractors of the README."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ("train.train_ce", "train.train_scst", "train.make_top5", "features.video", "features.audio",
            "videoblip2.caption", "videoblip2.predict", "videoblip2.synth", "videoblip2.tiny", "eval.evaluate",
            "eval.ablation")


def test_help_and_argument_errors_import_no_model_stack():
    """One fresh interpreter runs every command's --help and an argument error; torch, transformers, peft,
    open_clip and laion_clap must never be imported (they cost seconds, 45 s on a loaded machine)."""
    script = f"""
import contextlib, io, runpy, sys
heavy = ("torch", "transformers", "peft", "open_clip", "laion_clap")
for module in {COMMANDS!r}:
    for argv in (["--help"], ["--no-such-flag"]):
        sys.argv = [module, *argv]
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=False)
            except SystemExit as stop:
                code = stop.code
        loaded = [m for m in heavy if m in sys.modules]
        print(module, argv[0], code, loaded, repr(err.getvalue()))
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 2 * len(COMMANDS)
    for line in lines:
        module, flag, code, rest = line.split(" ", 3)
        assert rest.startswith("[] "), line  # nothing heavy imported
        err = eval(rest[3:])
        if flag == "--help":
            assert code in ("0", "None"), line
        else:  # one line, exit 2
            assert code == "2" and err.count("\n") == 1 and err.startswith("error: unknown flag --no-such-flag"), line
            assert err.rstrip().endswith(f"see python -m {module} --help"), line


def test_misspelled_flag_names_the_closest_valid_flag(capsys):
    from train import train_ce

    with pytest.raises(SystemExit) as stop:
        train_ce.parse_args(["--tiny", "--featuers", "data", "--ann", "a.json", "--out", "o"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == ("error: unknown flag --featuers (did you mean --features?); "
                                       "see python -m train.train_ce --help\n")


def test_old_flag_names_still_work_with_a_note(capsys):
    from features import audio, video
    from videoblip2 import caption

    args = video.parse_args(["v.mp4", "--out", "f", "--model", "a.json", "--pretrained", "w.pt"])
    assert (args.clip_model, args.clip_pretrained) == ("a.json", "w.pt")
    err = capsys.readouterr().err
    assert "note: --model is deprecated, use --clip-model" in err and "--pretrained is deprecated" in err
    args = audio.parse_args(["v.mp4", "--out", "f", "--amodel", "c.json", "--ckpt", "c.pt"])
    assert (args.clap_model, args.clap_pretrained) == ("c.json", "c.pt")
    assert "note: --ckpt is deprecated, use --clap-pretrained" in capsys.readouterr().err
    args = caption.parse_args(["v.mp4", "--model", "m", "--clip", "x.json", "--clap", "c.pt"])
    assert (args.clip_model, args.clap_pretrained, args.model) == ("x.json", "c.pt", "m")
    assert "note: --clap is deprecated, use --clap-pretrained" in capsys.readouterr().err
    assert caption.parse_args(["v.mp4", "--model", "m"]).clap_pretrained is None
    # the new names, without a note
    args = video.parse_args(["v.mp4", "--out", "f", "--clip-model", "a.json", "--clip-pretrained", "w.pt"])
    assert (args.clip_model, args.clip_pretrained) == ("a.json", "w.pt") and capsys.readouterr().err == ""


@pytest.mark.parametrize(("flags", "message"), [
    (["--length-penalty", "nan"], "argument --length-penalty: must be a finite number, got nan"),
    (["--length-penalty", "inf"], "argument --length-penalty: must be a finite number, got inf"),
    (["--repetition-penalty", "inf"], "argument --repetition-penalty: must be a finite number, got inf"),
    (["--min-new-tokens", "5", "--max-new-tokens", "2"], "--min-new-tokens 5 is more than --max-new-tokens 2"),
    (["--num-beams", "100000"], "argument --num-beams: must be in 1..64, got 100000"),
    (["--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
])
def test_decoding_flags_are_checked_at_parse_time(capsys, flags, message):
    from videoblip2 import predict

    with pytest.raises(SystemExit) as stop:
        predict.parse_args(["--model", "m", "--features", "f", "--out", "p.json", *flags])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1


def test_decoding_options_refuse_what_the_flags_refuse():
    from videoblip2.decoding import DecodingOptions

    for bad in (dict(length_penalty=float("nan")), dict(min_new_tokens=5, max_new_tokens=2), dict(num_beams=65)):
        with pytest.raises(ValueError):
            DecodingOptions(**bad)


# pretrained sources ------------------------------------------------------------------------------------


def _train_ce_exit(capsys, argv):
    from train import train_ce

    with pytest.raises(SystemExit) as stop:
        train_ce.main(argv)
    return stop.value.code, capsys.readouterr().err


@pytest.fixture
def no_model_stack(monkeypatch):
    """Any model built means the check came too late."""
    from train import launch

    def refuse(*args, **kwargs):
        raise AssertionError("training started before the sources were checked")

    monkeypatch.setattr(launch, "run", refuse)


def test_train_sources_are_checked_first(synth_data, tmp_path, capsys, monkeypatch, no_model_stack):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = ["--features", str(synth_data), "--ann", str(synth_data / "train_val_videodatainfo.json")]
    out = tmp_path / "run"
    code, err = _train_ce_exit(capsys, [*data, "--out", str(out), "--t5", "/models/flan-t5-base"])
    assert code == 2 and err == ("error: SourceError: --t5 /models/flan-t5-base: no such file or folder (expected a "
                                 "Flan-T5 model); check the path\n")
    code, err = _train_ce_exit(capsys, [*data, "--out", str(out), "--t5", "google/flan-t5-nothing-like-it"])
    assert code == 2 and err.startswith("error: SourceError: --t5 google/flan-t5-nothing-like-it: no Flan-T5 model "
                                        "there: not a local path, not in the Hugging Face cache, and the Hub is "
                                        "offline")
    assert "huggingface-cli download google/flan-t5-nothing-like-it" in err and err.count("\n") == 1
    # the config's default T5 (flan-t5-base) is checked too when no --t5 is given
    code, err = _train_ce_exit(capsys, [*data, "--out", str(out), "--bert", str(tmp_path / "bert")])
    assert code == 2 and f"--bert {tmp_path / 'bert'}: no such file or folder" in err
    code, err = _train_ce_exit(capsys, [*data, "--out", str(out), "--blip2", "blip2.pth"])
    assert code == 2 and "--blip2 blip2.pth: no such file or folder (expected a BLIP-2 checkpoint)" in err
    code, err = _train_ce_exit(capsys, [*data, "--out", str(out)])
    assert code == 2 and "--t5 google/flan-t5-base: no Flan-T5 model there" in err
    code, err = _train_ce_exit(capsys, [*data, "--out", str(out), "--model", str(tmp_path / "nothing")])
    assert code == 2 and f"--model {tmp_path / 'nothing'}: no such file or folder" in err
    assert not out.exists()


def test_wrong_features_and_out_are_one_line_before_the_model(synth_data, tmp_path, capsys, no_model_stack):
    ann = ["--ann", str(synth_data / "train_val_videodatainfo.json"), "--tiny"]
    (tmp_path / "empty").mkdir()
    code, err = _train_ce_exit(capsys, [*ann, "--features", str(tmp_path / "empty"), "--out", str(tmp_path / "r")])
    assert code == 2 and "no video/ folder or meta.json in" in err and err.count("\n") == 1
    (tmp_path / "empty" / "video").mkdir()
    code, err = _train_ce_exit(capsys, [*ann, "--features", str(tmp_path / "empty"), "--out", str(tmp_path / "r")])
    assert code == 2 and "holds no .npy feature files" in err
    (tmp_path / "file").write_text("")
    code, err = _train_ce_exit(capsys, [*ann, "--features", str(synth_data), "--out", str(tmp_path / "file")])
    assert code == 2 and err == f"error: NotADirectoryError: --out {tmp_path / 'file'}: is a file, expected a folder\n"
    assert not (tmp_path / "r").exists()


def test_a_run_failing_before_training_leaves_no_empty_out(synth_data, tmp_path, capsys):
    from train import train_ce

    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps([{"video_id": "not_there", "caption": "a caption"}]))
    out = tmp_path / "runs" / "ce"
    with pytest.raises(Exception):
        train_ce.main(["--tiny", "--features", str(synth_data), "--ann", str(ann), "--out", str(out),
                       "--device", "cpu", "--no-progress"])
    assert not out.exists()


def test_caption_checks_inputs_before_any_model_loads(tmp_path, capsys, monkeypatch, tiny_files, media):
    from videoblip2 import caption
    from videoblip2.modeling import VideoBLIP2

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the inputs were checked")

    monkeypatch.setattr(VideoBLIP2, "from_pretrained", refuse)
    assert caption.main([str(tmp_path / "nope.mp4"), "--model", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.mp4'}: no such video file or folder\n"
    common = [str(media["tone"]), "--model", str(tmp_path)]
    assert caption.main([*common, "--clip-model", tiny_files["clip_config"], "--clip-pretrained", "w/nope.pt"]) == 2
    assert capsys.readouterr().err == ("error: --clip-pretrained w/nope.pt: no such CLIP checkpoint file; "
                                       "check the path\n")
    clip = ["--clip-model", tiny_files["clip_config"], "--clip-pretrained", tiny_files["clip_ckpt"]]
    assert caption.main([*common, *clip, "--clap-pretrained", str(tmp_path / "c.pt")]) == 2
    assert capsys.readouterr().err == f"error: --clap-pretrained {tmp_path / 'c.pt'}: no such CLAP checkpoint file; " \
                                      "check the path\n"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the default --clip-pretrained openai is a download
    assert caption.main(common) == 2
    assert capsys.readouterr().err.startswith("error: --clip-pretrained openai: open_clip would download these "
                                              "weights (Hugging Face timm/vit_large_patch14_clip_224.openai)")
    with pytest.raises(SystemExit) as stop:
        caption.parse_args([*common, "--question", " "])
    assert stop.value.code == 2 and "argument --question: must not be empty" in capsys.readouterr().err


def test_clip_weights_of_another_architecture_are_one_line(tiny_files, tmp_path):
    from videoblip2.extract import ExtractorModelError, load_clip

    other = json.loads(Path(tiny_files["clip_config"]).read_text())
    other["text_cfg"]["width"] = 48  # the weights file's text tower is 32 wide
    config = tmp_path / "other_clip.json"
    config.write_text(json.dumps(other))
    with pytest.raises(ExtractorModelError) as error:
        load_clip(str(config), tiny_files["clip_ckpt"], device="cpu")
    message = str(error.value)
    assert message.startswith(f"--clip-pretrained {tiny_files['clip_ckpt']}: these weights do not fit the CLIP "
                              f"architecture {config}") and "\n" not in message


# tiny extractors ---------------------------------------------------------------------------------------


def test_tiny_extractors_fit_the_default_windows_and_warn_nothing(tmp_path):
    from videoblip2.defaults import DEFAULT_WINDOW_S
    from videoblip2.extract import load_clap, load_clip
    from videoblip2.tiny import make_tiny_extractors

    files = make_tiny_extractors(tmp_path / "x")
    assert sorted(files) == ["clap_ckpt", "clap_config", "clip_ckpt", "clip_config"]
    again = {name: Path(path).stat().st_mtime_ns for name, path in files.items()}
    assert make_tiny_extractors(tmp_path / "x") == files  # kept, not rebuilt
    assert {name: Path(path).stat().st_mtime_ns for name, path in files.items()} == again
    clip = load_clip(files["clip_config"], files["clip_ckpt"], device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clap = load_clap(files["clap_config"], files["clap_ckpt"], device="cpu")
    assert not [w for w in caught if "meshgrid" in str(w.message) or "timm" in str(w.message)]
    assert (clip.dim, clap.dim) == (768, 512)
    assert clap.clip_samples >= DEFAULT_WINDOW_S * clap.sample_rate  # the extractors' default windows fit
    # the same seed gives the same weights
    import torch

    other = make_tiny_extractors(tmp_path / "y")
    a, b = (torch.load(f["clip_ckpt"], weights_only=True) for f in (files, other))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpointable_parts_are_the_models():
    from train import train_ce
    from videoblip2.modeling import CHECKPOINTABLE_PARTS

    assert train_ce.CHECKPOINTABLE_PARTS == CHECKPOINTABLE_PARTS


# a full disk is DiskFullError, exit 2, for every writer ----------------------------------------------------


def test_torch_save_on_a_full_disk_is_disk_full_error(tmp_path):
    import torch
    from faults import small_tmpfs

    from train.file_utils import atomic_write_dir
    from videoblip2.fileio import DiskFullError

    def write_state(path):
        path.mkdir()
        torch.save({"optimizer": torch.zeros(100_000)}, path / "training_state.pt")  # 400 kB into 64 kB

    with small_tmpfs(tmp_path / "disk") as disk:
        with pytest.raises(DiskFullError, match=f"disk full .*cannot write state in {disk}"):
            atomic_write_dir(disk / "state", write_state)
        assert list(disk.iterdir()) == []  # no half-written copy left


def test_torch_save_disk_full_twin(tmp_path, monkeypatch):
    """The same on any machine: torch.save's zip writer raises a RuntimeError without errno on a full disk."""
    from train.file_utils import atomic_write_dir
    from videoblip2 import fileio

    def write_state(path):
        path.mkdir()
        (path / "part").write_bytes(b"x")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(fileio, "_no_space_left", lambda folder: True)
    with pytest.raises(fileio.DiskFullError, match="cannot write state in"):
        atomic_write_dir(tmp_path / "state", write_state)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(fileio, "_no_space_left", lambda folder: False)  # space left: a real bug, kept as it is
    with pytest.raises(RuntimeError, match="inline_container"):
        atomic_write_dir(tmp_path / "state", write_state)


def test_synth_on_a_full_disk_is_one_line(tmp_path):
    from faults import small_tmpfs

    with small_tmpfs(tmp_path / "disk") as disk:
        run = subprocess.run([sys.executable, "-m", "videoblip2.synth", "--out", str(disk / "data"), "--num-videos",
                              "9", "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and run.stderr.startswith("error: DiskFullError: ") and run.stderr.count("\n") == 1
