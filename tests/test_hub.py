"""Sharing a model: publish a tiny trained run, load it back by Hub id, with huggingface_hub's real client talking
to a loopback Hub (tests/hub_server.py) through HF_ENDPOINT. The client reads HF_ENDPOINT / HF_HUB_OFFLINE /
HF_HOME at import, so every Hub step runs in a subprocess with its own environment."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hub_server import HubServer

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_loopbackSecretToken0123456789"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_run(synth_data, tmp_path_factory):
    """A train_ce run of the tiny model (3 steps) with its test predictions and metrics, as a run folder holds them."""
    from eval import evaluate
    from train import train_ce
    from videoblip2 import predict

    run = tmp_path_factory.mktemp("hub_run") / "ce"
    train_ce.main(["--tiny", "--tiny-hidden", "32", "--tiny-layers", "1", "--features", str(synth_data),
                   "--ann", str(synth_data / "train_val_videodatainfo.json"), "--out", str(run), "--max-steps", "3",
                   "--batch-size", "8", "--lr", "1e-2", "--no-progress", "--num-threads", "1"])
    test_ann = str(synth_data / "test_videodatainfo.json")
    predict.main(["--model", str(run / "best"), "--features", str(synth_data), "--ann", test_ann, "--split", "test",
                  "--out", str(run / "test_predictions.json"), "--device", "cpu", "--num-beams", "2"])
    evaluate.main(["--predictions", str(run / "test_predictions.json"), "--ann", test_ann, "--split", "test",
                   "--out", str(run / "test_metrics.json"), "--no-meteor"])
    return run


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text[4:text.index("\n---", 4)])


def test_dry_run_folder_is_what_from_pretrained_needs_plus_a_card_from_the_run(tiny_run, tmp_path):
    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.repocard_data import model_index_to_eval_results

    from videoblip2 import publish

    assert publish.main([str(tiny_run), "--repo", "lab/tiny-vb2", "--dry-run", str(tmp_path / "a")]) == 0
    folder = tmp_path / "a"
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    model_files = sorted(p.relative_to(tiny_run / "best").as_posix() for p in (tiny_run / "best").rglob("*")
                         if p.is_file() and p.name != "trainer_info.json")
    assert files == sorted(model_files + ["README.md"])
    for name in model_files:  # byte copies of the run's best model
        assert (folder / name).read_bytes() == (tiny_run / "best" / name).read_bytes()

    card = ModelCard.load(folder / "README.md")  # huggingface_hub's own parser
    meta = card.data.to_dict()
    assert meta["library_name"] == "videoblip2" and meta["pipeline_tag"] == "video-text-to-text"
    assert meta["datasets"] == ["msrvtt"] and meta["license"] == "other"
    assert "base_model" not in meta  # the tiny T5 is random: no Hub model to name
    ModelCardData(**meta)  # the metadata validates (eval results need a model name, types, values)
    name, results = model_index_to_eval_results(meta["model-index"])
    assert name == "tiny-vb2"
    written = json.loads((tiny_run / "test_metrics.json").read_text())["metrics"]
    assert {r.metric_name: r.metric_value for r in results} == {
        {"ROUGE_L": "ROUGE-L"}.get(k, k): v for k, v in written.items()}  # exactly the file's values
    assert {r.task_type for r in results} == {"video-text-to-text"} and {r.dataset_split for r in results} == {"test"}
    body = card.text
    assert 'VideoBLIP2.from_pretrained("lab/tiny-vb2")' in body and "| --max-steps | 3 |" in body
    assert "| num_frames | 16 |" in body  # the features' meta.json
    assert "| num_beams | 2 |" in body  # the test predictions' decoding settings
    assert "randomly initialised" in body

    # same run, same folder
    publish.main([str(tiny_run), "--repo", "lab/tiny-vb2", "--dry-run", str(tmp_path / "b")])
    assert all((tmp_path / "b" / f).read_bytes() == (folder / f).read_bytes() for f in files)


def _run(args, env, **kwargs):
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                          **kwargs)


def _env(hub, home, *, offline=False, token=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_OFFLINE="1" if offline else "0",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    if token:
        env["HF_TOKEN"] = token
    return env


def test_publish_load_by_id_offline_and_cold_cache_errors(tiny_run, synth_data, tmp_path):
    from videoblip2 import predict

    test_ann = str(synth_data / "test_videodatainfo.json")
    common = ["--features", str(synth_data), "--ann", test_ann, "--split", "test", "--device", "cpu"]
    predict.main(["--model", str(tiny_run / "best"), *common, "--out", str(tmp_path / "local.json")])
    expected = json.loads((tmp_path / "local.json").read_text())

    with HubServer() as hub:
        # publish twice (the second changes nothing: no new commit), then push_to_hub from Python
        publish = (
            "import sys\n"
            "from videoblip2 import publish\n"
            "from videoblip2.modeling import VideoBLIP2\n"
            f"assert publish.main([{str(tiny_run)!r}, '--repo', 'lab/tiny-vb2']) == 0\n"
            f"assert publish.main([{str(tiny_run)!r}, '--repo', 'lab/tiny-vb2']) == 0\n"
            f"print(VideoBLIP2.from_pretrained({str(tiny_run / 'best')!r}).push_to_hub('lab/pushed', private=True))\n"
        )
        out = _run(["-c", publish], _env(hub, tmp_path / "publisher", token=TOKEN))
        assert out.returncode == 0, out.stderr[-3000:]
        repo = hub.repos["lab/tiny-vb2"]
        assert len(repo.commits) == 2  # creation (.gitattributes) + one upload: the re-publish was a no-op
        assert hub.repos["lab/pushed"].private
        published = repo.commits[-1][1]
        assert sorted(published) == sorted([".gitattributes", "README.md", "config.json", "model.safetensors",
                                            *[f"{d}/{f.name}" for d in ("t5_tokenizer", "qformer_tokenizer")
                                              for f in (tiny_run / "best" / d).iterdir()]])
        assert published["model.safetensors"] == (tiny_run / "best" / "model.safetensors").read_bytes()
        # the token went to the Hub (as a header) and nowhere else: not the files, logs or the output
        assert all(has_token for method, path, has_token in hub.requests if method == "POST")
        assert not any(TOKEN.encode() in data for r in hub.repos.values() for _, files in r.commits
                       for data in files.values())
        assert TOKEN not in out.stdout + out.stderr
        assert not any(TOKEN.encode() in p.read_bytes() for p in tiny_run.rglob("*") if p.is_file())

        # load by id into an empty cache (no token), through the predict command's Python entry point
        cache = tmp_path / "user"
        load = (
            "from videoblip2 import predict\n"
            "from videoblip2.hub import HubError\n"
            "from videoblip2.modeling import VideoBLIP2\n"
            f"predict.main(['--model', 'lab/tiny-vb2', *{common!r}, '--out', {str(tmp_path / 'hub.json')!r}])\n"
            "try:\n"
            "    VideoBLIP2.from_pretrained('lab/tiny-vb2', revision='v9')\n"
            "except HubError as e:\n"
            "    print('REVISION', e)\n"
            "try:\n"
            "    VideoBLIP2.from_pretrained('lab/pushed')\n"
            "except HubError as e:\n"
            "    print('PRIVATE', e)\n"
            "try:\n"
            "    VideoBLIP2.from_pretrained('lab/no-such-model')\n"
            "except HubError as e:\n"
            "    print('WRONG', e)\n"
        )
        out = _run(["-c", load], _env(hub, cache))
        assert out.returncode == 0, out.stderr[-3000:]
        assert json.loads((tmp_path / "hub.json").read_text()) == expected
        lines = dict(line.split(" ", 1) for line in out.stdout.splitlines()
                     if line.startswith(("REVISION", "PRIVATE", "WRONG")))
        assert lines["REVISION"].startswith("lab/tiny-vb2: ") and "no revision 'v9'" in lines["REVISION"]
        assert lines["PRIVATE"].startswith("lab/pushed: no such model repository") and "HF_TOKEN" in lines["PRIVATE"]
        assert lines["WRONG"].startswith("lab/no-such-model: no such model repository on http://127.0.0.1:")
        served = len(hub.requests)

        # offline with that cache: the command works, same captions, and nothing reaches the Hub
        out = _run(["-m", "videoblip2.predict", "--model", "lab/tiny-vb2", *common, "--out",
                    str(tmp_path / "offline.json")], _env(hub, cache, offline=True))
        assert out.returncode == 0, out.stderr[-3000:]
        assert json.loads((tmp_path / "offline.json").read_text()) == expected
        assert len(hub.requests) == served

        # offline with a cold cache: one line naming the id and what to do, exit 2, nothing written
        out = _run(["-m", "videoblip2.predict", "--model", "lab/tiny-vb2", *common, "--out",
                    str(tmp_path / "cold.json")], _env(hub, tmp_path / "cold", offline=True))
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        # (the command's source check answers before the model is built: videoblip2.sources)
        assert out.stderr.startswith("error: SourceError: --model lab/tiny-vb2: no VideoBLIP2 model there: not a "
                                     "local path, not in the Hugging Face cache")
        assert "HF_HUB_OFFLINE" in out.stderr and "local folder" in out.stderr
        assert not (tmp_path / "cold.json").exists()


def test_local_names_never_go_to_the_hub():
    from videoblip2.hub import is_local

    assert not is_local("lab/videoblip2-msrvtt") and not is_local("flan-t5-base")
    assert is_local("./lab/model") and is_local("/abs/model") and is_local("runs/x/best") and is_local(Path("a/b"))
    assert is_local(REPO / "tests")  # an existing folder wins over an id of the same spelling


def test_card_has_base_model_qa_accuracies_and_ablation_exactly(tmp_path):
    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.repocard_data import model_index_to_eval_results

    from videoblip2.card import RunInfo, model_card
    from videoblip2.config import VideoBLIP2Config

    qa = {"accuracy": 0.6123456789012345, "num_questions": 20, "majority_baseline": 0.3,
          "per_type": {"counting": {"accuracy": 0.5, "count": 10, "majority_baseline": 0.2},
                       "temporal": {"accuracy": 0.7246913578024681, "count": 10, "majority_baseline": 0.4}}}
    captions = {"metrics": {"BLEU-4": 0.4123456789012345, "METEOR": 0.25, "ROUGE_L": 0.6, "CIDEr": 0.123456789},
                "num_videos": 7}
    ablation = {"conditions": {"full": {"metrics": {"CIDEr": 0.5}}, "audio": {"metrics": {"CIDEr": 0.25}}}}
    info = RunInfo(model_dir=tmp_path, config=VideoBLIP2Config().to_dict(), caption_metrics=captions, qa_metrics=qa,
                   ablation=ablation)
    (tmp_path / "README.md").write_text(model_card(info, "lab/avqa", datasets=["music-avqa"], license="mit"))
    card = ModelCard.load(tmp_path / "README.md")
    meta = card.data.to_dict()
    assert meta["base_model"] == ["google/flan-t5-base"] and meta["license"] == "mit"
    ModelCardData(**meta)
    _, results = model_index_to_eval_results(meta["model-index"])
    assert {(r.task_type, r.metric_name): r.metric_value for r in results} == {
        ("video-text-to-text", "BLEU-4"): 0.4123456789012345, ("video-text-to-text", "METEOR"): 0.25,
        ("video-text-to-text", "ROUGE-L"): 0.6, ("video-text-to-text", "CIDEr"): 0.123456789,
        ("visual-question-answering", "accuracy"): 0.6123456789012345,
        ("visual-question-answering", "accuracy (counting)"): 0.5,
        ("visual-question-answering", "accuracy (temporal)"): 0.7246913578024681}
    assert "| metric | full | no audio |" in card.text and "| CIDEr | 50.00 | 25.00 |" in card.text
    assert "randomly initialised" not in card.text
