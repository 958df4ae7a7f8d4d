"""python -m videoblip2.recipe end to end on synthetic raw videos (tiny CLIP/CLAP, tiny model, a few steps): killed
after training, run again, it skips what was finished and publishes to a loopback Hub (tests/hub_server.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hub_server import HubServer
from media import write_video

REPO = Path(__file__).resolve().parents[1]


def raw_dataset(root: Path) -> tuple[Path, Path]:
    """6 short videos (one without sound) and MSR-VTT-style captions: 4 train, 1 validate, 1 test."""
    spec = [("v0", 220.0, "train"), ("v1", 440.0, "train"), ("v2", 660.0, "train"), ("v3", None, "train"),
            ("v4", 880.0, "validate"), ("v5", 330.0, "test")]
    (root / "videos").mkdir(parents=True)
    videos, sentences = [], []
    for i, (vid, freq, split) in enumerate(spec):
        write_video(root / "videos" / f"{vid}.mp4", num_frames=8 + 2 * i, fps=8, size=(64, 48),
                    audio=None if freq is None else "sine", freq=freq or 440.0)
        videos.append({"video_id": vid, "split": split, "id": i})
        sound = "in silence" if freq is None else ("with a low tone" if freq < 500 else "with a high tone")
        sentences += [{"video_id": vid, "caption": f"a white square moves right {sound}", "sen_id": 2 * i},
                      {"video_id": vid, "caption": f"a square slides across a grey screen {sound}",
                       "sen_id": 2 * i + 1}]
    (root / "ann.json").write_text(json.dumps({"videos": videos, "sentences": sentences}))
    return root / "videos", root / "ann.json"


def recipe_args(videos, ann, tiny, out, ce_steps=3):
    return ["--videos", str(videos), "--ann", str(ann), "--out", str(out),
            "--clip-model", tiny["clip_config"], "--clip-pretrained", tiny["clip_ckpt"],
            "--clap-model", tiny["clap_config"], "--clap-pretrained", tiny["clap_ckpt"],
            "--video-args", "--num-frames 4 --workers 0 --device cpu",
            "--audio-args", "--workers 0 --device cpu --window 1 --hop 0.5",
            "--ce-args", f"--tiny --tiny-hidden 32 --tiny-layers 1 --max-steps {ce_steps} --batch-size 4 --lr 1e-2 "
                         "--no-progress --num-threads 1 --device cpu",
            "--scst-args", "--max-steps 2 --batch-size 2 --num-samples 2 --no-progress --num-threads 1 --device cpu",
            "--predict-args", "--device cpu --num-beams 2", "--eval-args", "--no-meteor",
            "--ablation-args", "--no-meteor --conditions full,audio"]


def _env(hub, home):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_OFFLINE="0", HF_TOKEN="hf_recipeTestToken",
               HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO))
    return env


def _stage_table(stdout: str) -> dict[str, str]:
    lines = stdout[stdout.rindex("stage     status"):].splitlines()[2:]
    return {line.split()[0]: line.split()[1] for line in lines if line.strip()}


def test_recipe_killed_after_training_continues_and_publishes(tiny_files, tmp_path):
    videos, ann = raw_dataset(tmp_path / "data")
    run = tmp_path / "run"
    args = recipe_args(videos, ann, tiny_files, run) + ["--push", "lab/recipe-vb2"]
    with HubServer() as hub:
        command = [sys.executable, "-m", "videoblip2.recipe", *args]
        # 1. killed (SIGKILL) as soon as train_ce is recorded finished
        first = subprocess.Popen(command, cwd=REPO, env=_env(hub, tmp_path / "hf"), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        state = run / "recipe.json"
        deadline = time.monotonic() + 600
        try:
            while time.monotonic() < deadline and first.poll() is None:
                if state.is_file() and "train_ce" in json.loads(state.read_text()).get("stages", {}):
                    break
                time.sleep(0.05)
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        finished = set(json.loads(state.read_text())["stages"])
        assert {"video", "audio", "train_ce"} <= finished and "push" not in finished, finished
        assert not hub.repos  # nothing published yet

        # 2. the same command again: the finished stages are skipped, the rest run, the model is published
        second = subprocess.run(command, cwd=REPO, env=_env(hub, tmp_path / "hf"), capture_output=True,
                                text=True, timeout=900)
        assert second.returncode == 0, second.stderr[-4000:]
        table = _stage_table(second.stdout)
        assert list(table) == ["video", "audio", "train_ce", "top5", "scst", "predict", "evaluate", "ablation", "card",
                               "push"]
        assert all(table[s] == "skipped" for s in finished), table
        assert all(table[s] == "ran" for s in set(table) - finished), table
        starts = [r for r in map(json.loads, (run / "ce" / "log.jsonl").read_text().splitlines())
                  if r["type"] == "start"]
        assert len(starts) == 1  # train_ce was not run again

        # what was published: the SCST model, its card with the recipe's test metrics and ablation table
        files = hub.repos["lab/recipe-vb2"].commits[-1][1]
        assert files["model.safetensors"] == (run / "scst" / "best" / "model.safetensors").read_bytes()
        hub_folder = run / "hub"
        folder = {p.relative_to(hub_folder).as_posix(): p.read_bytes() for p in hub_folder.rglob("*") if p.is_file()}
        assert files == {**folder, ".gitattributes": files[".gitattributes"]}
        card = files["README.md"].decode()
        meta = yaml.safe_load(card[4:card.index("\n---", 4)])
        metrics = json.loads((run / "scst" / "test_metrics.json").read_text())["metrics"]
        published = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
        assert published["CIDEr"] == metrics["CIDEr"] and published["BLEU-4"] == metrics["BLEU-4"]
        assert "## Modality ablation" in card and "| metric | full | no audio |" in card
        assert "python -m videoblip2.recipe --videos" in card and "| num_frames | 4 |" in card
        assert "hf_recipeTestToken" not in card + second.stdout + second.stderr
        commits = len(hub.repos["lab/recipe-vb2"].commits)

    # 3. a third run does nothing; changed flags of a finished stage are an error naming it (before any work)
    from videoblip2 import recipe

    assert recipe.main(recipe_args(videos, ann, tiny_files, run)) == 0  # without --push: the card stage again
    assert json.loads((run / "recipe.json").read_text())["stages"]["card"]["result"].endswith("your-org/run")
    with pytest.raises(SystemExit) as error:
        recipe.main(recipe_args(videos, ann, tiny_files, run, ce_steps=4))
    assert error.value.code == 2
    assert commits == 2


def test_stage_flags_pass_through_and_bad_flags_fail_before_work(tmp_path, capsys):
    from videoblip2 import recipe

    args = recipe.parse_args(["--videos", "v", "--ann", "a.json", "--clap-pretrained", "c.pt", "--out", str(tmp_path),
                              "--ce-args", "--lr 1e-4 --epochs 2", "--eval-args", "--no-meteor", "--skip-ablation"])
    stages, manifest = recipe.plan(args)
    by_name = {s.name: s for s in stages}
    assert by_name["train_ce"].argv[-4:] == ["--lr", "1e-4", "--epochs", "2"]  # after the recipe's own: they win
    assert by_name["evaluate"].argv[-1] == "--no-meteor"
    assert "ablation" not in by_name and "push" not in by_name and manifest["model_run"] == "scst"
    with pytest.raises(SystemExit) as error:
        recipe.parse_args(["--videos", "v", "--ann", "a", "--clap-pretrained", "c", "--out", "o", "--push", "no_org"])
    assert error.value.code == 2 and "--push" in capsys.readouterr().err


def test_questions_add_answer_and_accuracy_stages(tmp_path):
    from videoblip2 import recipe

    args = recipe.parse_args(["--videos", "v", "--ann", "a.json", "--clap-pretrained", "c.pt", "--out", str(tmp_path),
                              "--qa-ann", "qa-train.json", "--qa-val-ann", "qa-val.json",
                              "--qa-test-ann", "qa-test.json",
                              "--skip-scst", "--predict-args", "--num-beams 1"])
    stages, manifest = recipe.plan(args)
    assert [s.name for s in stages] == ["video", "audio", "train_ce", "predict", "predict", "evaluate", "evaluate",
                                        "ablation", "card"]
    ce, answers, accuracy = stages[2], stages[4], stages[6]
    assert ce.argv[ce.argv.index("--qa-ann") + 1] == "qa-train.json" and "--qa-val-ann" in ce.argv
    assert answers.argv == ["--model", str(tmp_path / "ce" / "best"), "--features", str(tmp_path / "features"),
                            "--ann", "qa-test.json", "--out", str(tmp_path / "ce" / "test_answers.json"),
                            "--num-beams", "1"]
    assert accuracy.argv[accuracy.argv.index("--out") + 1] == str(tmp_path / "ce" / "test_qa_metrics.json")
    assert "--split" not in accuracy.argv  # a QA file is one split already
    assert manifest["model_run"] == "ce"
