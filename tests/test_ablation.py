"""Modality diagnostics: `videoblip2.predict --ablate` (captions and answers) and `python -m eval.ablation`."""

import json

import numpy as np
import pytest
import torch

from videoblip2 import predict
from videoblip2.data import frame_permutation
from videoblip2.modeling import VideoBLIP2


@pytest.fixture
def generate_spy(monkeypatch):
    """Record the feature batches that reach the real VideoBLIP2.generate."""
    seen = []
    real = VideoBLIP2.generate

    def spy(self, video, video_mask=None, audio=None, audio_mask=None, *args, **kwargs):
        seen.append({"video": video.clone(), "video_mask": video_mask.clone(), "audio_mask": audio_mask.clone()})
        return real(self, video, video_mask, audio, audio_mask, *args, **kwargs)

    monkeypatch.setattr(VideoBLIP2, "generate", spy)
    return seen


def _run(synth_data, tiny_init_dir, out, *flags, ann="test_videodatainfo.json"):
    split = ["--split", "test"] if ann.endswith("videodatainfo.json") else []
    return predict.main(["--model", str(tiny_init_dir), "--features", str(synth_data), "--ann",
                         str(synth_data / ann), *split, "--out", str(out), "--num-beams", "1",
                         "--max-new-tokens", "4", *flags])


def test_predict_ablate_reaches_the_model_for_captions_and_answers(synth_data, tiny_init_dir, tmp_path,
                                                                    generate_spy, one_torch_thread):
    _run(synth_data, tiny_init_dir, tmp_path / "full.json")
    full = generate_spy.pop()
    assert full["audio_mask"].any()  # the test videos have sound

    _run(synth_data, tiny_init_dir, tmp_path / "audio.json", "--ablate", "audio")
    batch = generate_spy.pop()
    assert not batch["audio_mask"].any() and torch.equal(batch["video"], full["video"])
    assert json.loads((tmp_path / "audio.meta.json").read_text())["ablate"] == "audio"

    _run(synth_data, tiny_init_dir, tmp_path / "order.json", "--ablate", "frame-order", "--ablate-seed", "3")
    batch = generate_spy.pop()
    video_ids = json.loads((synth_data / "test_videodatainfo.json").read_text())["videos"]
    for row, video in enumerate(video_ids):
        n = int(full["video_mask"][row].sum())
        order = frame_permutation(n, video["video_id"], 3)
        assert torch.equal(batch["video"][row, :n], full["video"][row, order])
    meta = json.loads((tmp_path / "order.meta.json").read_text())
    assert meta["ablate"] == "frame-order" and meta["ablate_seed"] == 3

    _run(synth_data, tiny_init_dir, tmp_path / "novideo.json", "--ablate", "video")
    batch = generate_spy.pop()
    assert not batch["video"].any() and batch["video_mask"].sum(1).tolist() == [1] * len(video_ids)

    # question answering goes through the same feature batches
    _run(synth_data, tiny_init_dir, tmp_path / "qa.json", "--ablate", "audio", ann="avqa-test.json")
    batch = generate_spy.pop()
    assert not batch["audio_mask"].any()
    assert json.loads((tmp_path / "qa.meta.json").read_text())["ablate"] == "audio"


def test_eval_ablation_side_by_side_equals_evaluate(synth_data, tiny_init_dir, tmp_path, capsys, one_torch_thread):
    from videoblip2.eval import ablation
    from videoblip2.eval.evaluate import main as evaluate

    out = tmp_path / "ablation.json"
    report = ablation.main(["--model", str(tiny_init_dir), "--features", str(synth_data), "--ann",
                            str(synth_data / "test_videodatainfo.json"), "--split", "test", "--out", str(out),
                            "--no-meteor", "--num-beams", "1", "--max-new-tokens", "6"])
    table = capsys.readouterr().out
    header = table.splitlines()[0]
    assert all(label in header for label in ("full", "no audio", "shuffled frames", "no video"))
    assert "CIDEr" in table and "bad endings" in table
    assert json.loads(out.read_text()) == report
    full_preds = _run(synth_data, tiny_init_dir, tmp_path / "p.json", "--max-new-tokens", "6")
    for condition, result in report["conditions"].items():
        path = tmp_path / f"ablation.{condition}.json"
        assert result["predictions"] == str(path)
        if condition == "full":  # the same caption loop as videoblip2.predict
            assert {r["video_id"]: r["caption"] for r in json.loads(path.read_text())} == full_preds
        scored = evaluate(["--predictions", str(path), "--ann", str(synth_data / "test_videodatainfo.json"),
                           "--split", "test", "--no-meteor", "--out", str(tmp_path / f"{condition}.m.json")])
        assert scored["metrics"] == pytest.approx(result["metrics"]) and scored["bad_endings"] == result["bad_endings"]
        value = result["metrics"]["CIDEr"] * 100
        assert f"{value:.2f}" in table
    assert np.isfinite(report["conditions"]["video"]["metrics"]["CIDEr"])


def test_eval_ablation_rejects_unknown_conditions(capsys):
    from videoblip2.eval import ablation

    with pytest.raises(SystemExit) as exit_info:
        ablation.parse_args(["--model", "m", "--features", "f", "--ann", "a", "--out", "o", "--conditions", "full,sound"])
    assert exit_info.value.code == 2 and "choose from full, audio, frame-order, video" in capsys.readouterr().err
