"""eval.coco.compute_metrics (pycocoevalcap) and python -m eval.evaluate on tiny inputs; one METEOR call in all."""

from __future__ import annotations

import json
import math

import pytest

import videoblip2.eval.coco as coco
from videoblip2.eval.cider import CiderD
from videoblip2.eval.coco import JavaNotFoundError, compute_metrics
from videoblip2.eval.evaluate import EvaluationError, main
from videoblip2.annotations import save_predictions

REFERENCES = {"video1": ["a man is cooking", "someone cooks"], "video2": ["a dog is running"]}
PREDICTIONS = {"video1": "a man is cooking food", "video2": "a dog is running"}


def hand_bleu() -> list[float]:
    # corpus counts over both videos: clipped matches / candidate n-grams for n = 1..4; the hypotheses
    # (9 words) are longer than the closest references (4 + 4 words), so no brevity penalty.
    precisions = [8 / 9, 6 / 7, 4 / 5, 2 / 3]
    return [math.prod(precisions[: n + 1]) ** (1 / (n + 1)) for n in range(4)]


def hand_rouge_l() -> float:
    # video1: LCS 4 with the first reference: precision 4/5, recall 4/4; video2 exact: 1. beta = 1.2.
    p, r, beta2 = 0.8, 1.0, 1.2 ** 2
    return ((1 + beta2) * p * r / (r + beta2 * p) + 1.0) / 2


def test_all_metrics_against_hand_computed_values():
    metrics = compute_metrics(PREDICTIONS, REFERENCES)  # the only METEOR call of this file
    assert list(metrics) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE_L", "CIDEr"]
    for n, expected in enumerate(hand_bleu(), start=1):
        assert metrics[f"BLEU-{n}"] == pytest.approx(expected, abs=1e-6)
    assert metrics["ROUGE_L"] == pytest.approx(hand_rouge_l(), abs=1e-9)
    # pycocoevalcap's CIDEr is CIDEr-D with df over these references: equal to CiderD with this corpus
    ours = CiderD(REFERENCES).score(list(PREDICTIONS.values()), list(PREDICTIONS)).mean()
    assert metrics["CIDEr"] == pytest.approx(ours, abs=1e-9)
    # corpus-level METEOR 1.5 (one call to the jar); a regression value, deterministic
    assert metrics["METEOR"] == pytest.approx(0.58762, abs=1e-4)


def test_identical_predictions_score_perfectly_and_ptb_tokenization():
    refs = {"v1": ["a man is cooking"], "v2": ["a dog is running"]}
    # PTB tokenizer: lowercases and drops punctuation, so these equal the references
    preds = {"v1": "A man, is COOKING.", "v2": "a dog is running !"}
    metrics = compute_metrics(preds, refs, metrics=("BLEU", "ROUGE_L", "CIDEr"))
    assert "METEOR" not in metrics
    for n in range(1, 5):
        assert metrics[f"BLEU-{n}"] == pytest.approx(1.0, abs=1e-8)
    assert metrics["ROUGE_L"] == pytest.approx(1.0, abs=1e-12)
    # every order has cosine 1 (each video's 2-, 3-, 4-grams are its own; "man"/"dog"... unigrams too) -> 10
    assert metrics["CIDEr"] == pytest.approx(10.0, abs=1e-9)
    # a wrong caption scores lower; an empty prediction is allowed and scores 0 CIDEr
    worse = compute_metrics({"v1": "a dog", "v2": ""}, refs, metrics=("CIDEr",))
    assert worse == {"CIDEr": pytest.approx(0.0, abs=1e-12)}


def test_input_errors():
    with pytest.raises(ValueError, match="1 without prediction"):
        compute_metrics({"video1": "a"}, REFERENCES, metrics=("CIDEr",))
    with pytest.raises(ValueError, match="1 without references"):
        compute_metrics(PREDICTIONS | {"video3": "x"}, REFERENCES, metrics=("CIDEr",))
    with pytest.raises(ValueError, match="unknown metric 'WER'"):
        compute_metrics(PREDICTIONS, REFERENCES, metrics=("WER",))


def test_java_missing_is_a_clear_error(monkeypatch):
    coco.check_java.cache_clear()
    monkeypatch.setattr(coco.shutil, "which", lambda name: None)
    try:
        with pytest.raises(JavaNotFoundError, match="Install a Java runtime"):
            compute_metrics(PREDICTIONS, REFERENCES, metrics=("BLEU",))
    finally:
        coco.check_java.cache_clear()


@pytest.fixture
def ann_file(tmp_path):
    videos = [{"video_id": f"video{i}", "split": split, "category": 0, "id": i}
              for i, split in enumerate(["train", "test", "test"])]
    sentences = [{"sen_id": i, "video_id": v, "caption": c} for i, (v, c) in enumerate([
        ("video0", "a cat sleeps"), ("video1", "A man is cooking."), ("video1", "someone cooks"),
        ("video2", "a dog is running")])]
    path = tmp_path / "test_videodatainfo.json"
    path.write_text(json.dumps({"info": {}, "videos": videos, "sentences": sentences}))
    return path


def test_evaluate_main_writes_table_and_json(tmp_path, ann_file, capsys):
    preds = tmp_path / "preds.json"
    save_predictions({"video1": "a man is cooking food", "video2": "a dog is running"}, preds)
    out = tmp_path / "metrics.json"
    result = main(["--predictions", str(preds), "--ann", str(ann_file), "--split", "test", "--out", str(out),
                   "--no-meteor"])
    table = capsys.readouterr().out
    assert "BLEU-4" in table and "CIDEr" in table and "METEOR" not in table
    written = json.loads(out.read_text())
    assert written["metrics"] == result["metrics"] and written["num_videos"] == 2
    assert written["metrics"]["BLEU-1"] == pytest.approx(hand_bleu()[0], abs=1e-6)
    assert written["metrics"]["ROUGE_L"] == pytest.approx(hand_rouge_l(), abs=1e-9)
    # default --out: next to the predictions
    main(["--predictions", str(preds), "--ann", str(ann_file), "--split", "test", "--no-meteor"])
    assert (tmp_path / "preds.metrics.json").exists()


def test_evaluate_rejects_missing_and_unknown_videos(tmp_path, ann_file):
    preds = tmp_path / "preds.json"
    save_predictions({"video1": "a man"}, preds)
    with pytest.raises(EvaluationError, match=r"preds.json vs .*1 of 2 reference videos have no prediction.*video2"):
        main(["--predictions", str(preds), "--ann", str(ann_file), "--split", "test", "--no-meteor"])
    save_predictions({"video1": "a man", "video2": "a dog", "video0": "a cat"}, preds)
    with pytest.raises(EvaluationError, match=r"1 predicted videos are not in the references \(e.g. video0\)"):
        main(["--predictions", str(preds), "--ann", str(ann_file), "--split", "test", "--no-meteor"])


def test_evaluate_reports_the_bad_ending_rate(tmp_path, ann_file):
    preds = tmp_path / "preds.json"
    save_predictions({"video1": "a man is cooking with a", "video2": "a dog is running"}, preds)
    result = main(["--predictions", str(preds), "--ann", str(ann_file), "--split", "test", "--no-meteor"])
    assert result["bad_endings"] == 0.5
    assert json.loads((tmp_path / "preds.metrics.json").read_text())["bad_endings"] == 0.5


def test_evaluate_scores_like_pycocoevalcap_on_the_raw_files(tmp_path, capsys):
    """eval.evaluate == pycocoevalcap run directly on the same files: references as written (a final
    "U.S." or "etc." keeps its token), only whitespace runs collapsed."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    from videoblip2.eval.evaluate import cli
    from videoblip2.annotations import load_annotations, normalize_caption

    refs = {
        "v1": ["A man talks about the U.S.", "a man is talking about the u.s.", "A man speaks about America."],
        "v2": ["They sell fruit, vegetables  etc.", "a market sells fruit etc.", "People buy food at a market. "],
        "v3": ["Two men play basketball.", "two men  are playing basketball", "men play a game of basketball."],
    }
    preds = {"v1": "a man talks about the u.s.", "v2": "a market sells fruit etc.", "v3": "two men play basketball"}
    sentences = [{"video_id": v, "caption": c, "sen_id": i}
                 for i, (v, c) in enumerate((v, c) for v, caps in refs.items() for c in caps)]
    ann = tmp_path / "test_videodatainfo.json"
    ann.write_text(json.dumps({"videos": [{"video_id": v, "split": "test"} for v in refs], "sentences": sentences}))
    pred_file = tmp_path / "preds.json"
    save_predictions(preds, pred_file)

    ours = main(["--predictions", str(pred_file), "--ann", str(ann), "--split", "test", "--no-meteor",
                 "--out", str(tmp_path / "m.json")])["metrics"]
    # pycocoevalcap directly, on the raw file contents
    raw = json.loads(ann.read_text())
    gts = {v: [{"caption": s["caption"]} for s in raw["sentences"] if s["video_id"] == v] for v in refs}
    res = {r["video_id"]: [{"caption": r["caption"]}] for r in json.loads(pred_file.read_text())}
    gts, res = PTBTokenizer().tokenize(gts), PTBTokenizer().tokenize(res)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    reference = {**{f"BLEU-{i + 1}": b for i, b in enumerate(bleu)}, "ROUGE_L": Rouge().compute_score(gts, res)[0],
                 "CIDEr": Cider().compute_score(gts, res)[0]}
    assert ours == pytest.approx(reference, abs=1e-12)
    # the normalised references (trailing periods stripped) score differently: "u.s." loses its last token
    normalised = compute_metrics(preds, {v: [normalize_caption(c) for c in caps] for v, caps in refs.items()},
                                 metrics=("CIDEr",))
    assert abs(normalised["CIDEr"] - reference["CIDEr"]) > 1e-3
    assert load_annotations(ann, "test", as_written=True)["v2"][0] == "They sell fruit, vegetables etc."
    assert load_annotations(ann, "test")["v2"][0] == "they sell fruit, vegetables etc"  # training's form

    # a missing predictions file is named as the predictions file: one line, exit 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli(["--predictions", str(tmp_path / "nope.json"), "--ann", str(ann), "--split", "test"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: predictions file not found: {tmp_path / 'nope.json'}"
