"""make_top5 on a hand-made example: leave-one-out consensus, ties to the longer caption, --by length."""

import json

import numpy as np
import pytest

from eval.cider import CiderD
from train import make_top5
from videoblip2.annotations import load_annotations

ANNOTATIONS = {
    "cook": [
        "a man is cooking in a kitchen",
        "a man is cooking food in a kitchen",
        "a dog runs",                               # an outlier: agrees with nobody
        "a man cooks in the kitchen",
        "a man is cooking in the kitchen",
        "a man is cooking in a kitchen",            # written twice: kept once
        "someone is making food in a kitchen while talking about the recipe to the camera",
        "a person cooks",
    ],
    "tie": ["a dog runs", "a dog runs fast"],      # two captions score each other symmetrically: a tie
    "tie_same_length": ["a cat sits", "a cat naps"],
    "single": ["a bird sings"],
}


def test_consensus_scores_equal_direct_leave_one_out():
    cider = CiderD(ANNOTATIONS)
    scores = make_top5.consensus_scores(ANNOTATIONS, cider)
    for video_id, captions in ANNOTATIONS.items():
        if len(captions) == 1:
            assert scores[video_id].tolist() == [0.0]
            continue
        others = [[c for j, c in enumerate(captions) if j != i] for i in range(len(captions))]
        direct = cider.score_refs(captions, others)  # the reference computation, one caption at a time
        np.testing.assert_allclose(scores[video_id], direct, rtol=1e-9, atol=1e-12)


def test_top5_by_consensus_by_hand():
    top = make_top5.select_top(ANNOTATIONS, k=5)
    cook = top["cook"]
    assert len(cook) == 5 and len(set(cook)) == 5
    assert "a dog runs" not in cook and "a person cooks" not in cook  # the captions nobody agrees with
    assert cook[0] == "a man is cooking in a kitchen"  # closest to all the others (and written twice)
    assert set(cook) == {"a man is cooking in a kitchen", "a man is cooking food in a kitchen",
                         "a man is cooking in the kitchen", "a man cooks in the kitchen",
                         "someone is making food in a kitchen while talking about the recipe to the camera"}
    assert top["tie"] == ["a dog runs fast", "a dog runs"]  # tie -> longer first
    assert top["tie_same_length"] == ["a cat sits", "a cat naps"]  # tie, same length -> file order
    assert top["single"] == ["a bird sings"]


def test_top_by_length():
    top = make_top5.select_top(ANNOTATIONS, k=3, by="length")
    assert top["cook"] == ["someone is making food in a kitchen while talking about the recipe to the camera",
                           "a man is cooking food in a kitchen", "a man is cooking in a kitchen"]
    assert top["tie"] == ["a dog runs fast", "a dog runs"]


def test_main_writes_records_that_load_back(tmp_path):
    ann = tmp_path / "train.json"
    ann.write_text(json.dumps(ANNOTATIONS))
    top = make_top5.main(["--ann", str(ann), "--out", str(tmp_path)])
    path = tmp_path / make_top5.OUTPUT_NAME
    records = json.loads(path.read_text())
    assert all(set(r) == {"video_id", "caption"} for r in records)
    assert [r["video_id"] for r in records[:5]] == ["cook"] * 5
    assert load_annotations(path) == top == make_top5.select_top(ANNOTATIONS)
    with pytest.raises(SystemExit):
        make_top5.parse_args(["--ann", str(ann), "--out", str(tmp_path), "--by", "random"])


def test_official_file_uses_train_split(tmp_path):
    from videoblip2.synth import generate

    generate(tmp_path / "synth", num_videos=9, progress=False)
    ann = tmp_path / "synth" / "train_val_videodatainfo.json"
    top = make_top5.main(["--ann", str(ann), "--out", str(tmp_path / "top5.json")])
    train = load_annotations(ann, "train")
    assert list(top) == list(train) and all(len(c) == 5 and set(c) <= set(train[v]) for v, c in top.items())


def test_top5_ranks_with_the_rewards_own_cider_d_end_token_included(tmp_path):
    """The ranking is the SCST reward's CIDEr-D (end of sentence as a word): an unfinished reference ("... with
    a") drops below a finished one, as the reward would score it; --no-eos ranks as the reward without it
    (issue 19: make_top5 ranked without the end token the reward counts)."""
    guitar = ["someone plays guitar", "a man is playing a song on guitar", "a man is playing a guitar",
              "a guitarist is playing", "a man is playing with a", "a man is playing the guitar"]
    ann = {"v": guitar, "x": ["a dog runs", "a cat sits"]}
    top = make_top5.select_top(ann, k=3)
    assert top == make_top5.select_top(ann, k=3, cider=CiderD(ann, eos=True))
    assert top["v"] == ["a man is playing a guitar", "a man is playing the guitar", "a man is playing a song on guitar"]
    no_eos = make_top5.select_top(ann, k=3, eos=False)
    assert no_eos["v"][2] == "a man is playing with a"
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(ann))
    assert make_top5.main(["--ann", str(path), "--out", str(tmp_path / "a.json"), "--k", "3"]) == top
    assert make_top5.main(["--ann", str(path), "--out", str(tmp_path / "b.json"), "--k", "3", "--no-eos"]) == no_eos
