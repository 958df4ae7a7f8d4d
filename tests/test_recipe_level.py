"""The synthetic recipe level (issue 23): annotator noise, the unpredictable "holding a <object>" tail, a strong
frame-order signal; seed statistics of the learning benches; a 1-seed smoke run of the level."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from videoblip2 import synth
from videoblip2.annotations import load_annotations

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import seeds  # noqa: E402


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "recipe"
    synth.main(["--out", str(out), "--num-videos", "90", "--difficulty", "recipe", "--no-progress"])
    return out


def _clean_captions(latent: synth.Latent, seed: int = 0) -> list[str]:
    """The captions of one video before the annotator noise (the generator's own stream)."""
    rng = np.random.default_rng([seed, 3, int(latent.video_id[len("video"):])])
    return synth.sample_captions(latent, rng)


def test_recipe_level_annotator_noise_and_tail(recipe):
    level = synth.get_level("recipe")
    assert level.annotator_noise == 0.2 and level.held_objects and synth.SIZES["recipe"] == (1800, 300, 300)
    latents = synth.latent_factors(recipe)
    assert all(latent.difficulty == "recipe" for latent in latents.values())
    held = [latent for latent in latents.values() if latent.held is not None]
    assert 0.3 < len(held) / len(latents) < 0.7 and {latent.held for latent in held} <= set(level.held_objects)
    captions = {**load_annotations(recipe / "train_val_videodatainfo.json"),
                **load_annotations(recipe / "test_videodatainfo.json")}
    clean = {v: _clean_captions(latent) for v, latent in latents.items()}
    tailed = 0
    for video_id, latent in latents.items():
        caps = captions[video_id]
        assert len(caps) == synth.CAPTIONS_PER_VIDEO
        kept = [c for c, original in zip(caps, clean[video_id]) if c == original]
        replaced = [c for c, original in zip(caps, clean[video_id]) if c != original]
        # exactly 4 of 20 captions come from another video of the same split (a few may equal the original)
        assert len(replaced) <= 4 and len(kept) >= 16
        same_split = {c for v, l in latents.items() if l.split == latent.split and v != video_id for c in clean[v]}
        assert all(c in same_split for c in replaced)
        truth = {"subject": latent.subject, "place": latent.place, "action": latent.action, "sound": latent.sound}
        for caption in clean[video_id]:
            body, _, tail = caption.partition(" holding a ")
            assert synth.parse_caption(body, "recipe") == truth  # the tail names no factor
            if tail:
                assert tail == latent.held
                tailed += 1
            else:
                assert caption == body
        if latent.held is None:
            assert not any(" holding a " in c for c in clean[video_id])
    share = tailed / (len(held) * synth.CAPTIONS_PER_VIDEO)
    assert abs(share - level.tail_probability) < 0.1
    noisy = sum(c != o for v in latents for c, o in zip(captions[v], clean[v]))
    assert noisy > 0.15 * synth.CAPTIONS_PER_VIDEO * len(latents)
    # the canonical caption has no tail (the held object is in no feature) and reads back as the factors
    canonical = {v: latent.canonical for v, latent in latents.items()}
    assert synth.factor_accuracy(canonical, latents)["all"] == 1.0
    assert not any("holding" in c for c in canonical.values())


def test_recipe_level_features_frame_order_and_stronger_actions(recipe):
    prototypes = synth.make_prototypes(0, "recipe")
    level = prototypes.level
    norms = {name: np.linalg.norm(a) for name, (a, _) in prototypes.action_states.items()}
    assert all(math.isclose(n, level.action_scale) for n in norms.values())
    assert level.action_scale > level.factor_scale  # frame order is the easy signal, the rest is noisy
    assert all(math.isclose(np.linalg.norm(v), level.factor_scale) for v in prototypes.subject.values())
    params = synth.sample_action_params(np.random.default_rng(1))
    forward = synth.action_trajectory("open", 16, params, prototypes)
    np.testing.assert_array_equal(synth.action_trajectory("close", 16, params, prototypes), forward[::-1])
    # a default-level Prototypes is unchanged by the new field (action_scale None -> factor_scale)
    default = synth.make_prototypes(0, "default")
    assert all(math.isclose(np.linalg.norm(a), synth.FACTOR_SCALE) for a, _ in default.action_states.values())
    meta = json.loads((recipe / "meta.json").read_text())
    assert meta["synth"]["difficulty"] == "recipe"


def test_seed_summary_and_separation():
    rows = [{"CIDEr": 1.0, "factors": {"all": 0.2}, "example": "a"},
            {"CIDEr": 2.0, "factors": {"all": 0.4}, "example": "b"},
            {"CIDEr": 3.0, "factors": {"all": float("nan")}, "example": "c"}]
    summary = seeds.summarize(rows)
    assert summary["CIDEr"]["mean"] == 2.0 and summary["CIDEr"]["std"] == pytest.approx(1.0)
    assert summary["CIDEr"]["values"] == [1.0, 2.0, 3.0] and summary["CIDEr"]["n"] == 3
    assert summary["factors"]["all"]["n"] == 2 and summary["factors"]["all"]["mean"] == pytest.approx(0.3)
    assert summary["factors"]["all"]["std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert summary["example"] == "a"
    a = seeds.stats([1.0, 1.1, 0.9])
    assert seeds.separation(a, seeds.stats([1.5, 1.6, 1.4]))["verdict"] == "higher"  # 0.5 > 2 * 0.1
    assert seeds.separation(a, seeds.stats([1.15, 1.25, 1.05]))["verdict"] == "not separated"  # 0.15 < 0.2
    assert seeds.separation(a, seeds.stats([0.5, 0.6, 0.4]))["verdict"] == "lower"
    assert seeds.separation(seeds.stats([1.0]), seeds.stats([3.0]))["verdict"] == "one seed: no verdict"
    assert seeds.fmt(seeds.stats([1.0, 2.0])) == "1.500 ± 0.707" and seeds.fmt(seeds.stats([1.0])) == "1.000"


def test_reference_renderings_cover_the_canonical_caption():
    from bench.recipe_table import _renderings

    latent = synth.Latent("video1", "test", "cat", "park", "close", "music", "recipe", held="kite")
    plain, held = _renderings(latent, False), _renderings(latent, True)
    assert latent.canonical in plain and len(plain) == len(set(plain)) == 5 * 2 ** 4
    assert len(held) == 2 * len(plain) and f"{latent.canonical} holding a kite" in held
    assert all(synth.parse_caption(c, "recipe")["action"] == "close" for c in plain)


def test_recipe_level_smoke_ce_beats_most_common_and_needs_audio(tmp_path):
    """1 seed of bench/learning.py on a small recipe-level set: CE > most common caption, audio removed < CE."""
    from bench import learning

    data = tmp_path / "data"
    synth.generate(data, num_videos=SMOKE_VIDEOS, difficulty="recipe", progress=False)
    report = learning.main(["--data", str(data), "--run", str(tmp_path / "run"), "--out", str(tmp_path / "r.json"),
                            "--seeds", "1", "--ce-steps", str(SMOKE_STEPS), "--scst", "--num-threads", "1",
                            "--metrics", "CIDEr"])
    rows = report["summary"]
    most_common = rows["(a) most common training caption"]["CIDEr"]["mean"]
    ce = rows["(b) train_ce"]["CIDEr"]["mean"]
    no_audio = rows["(d) train_ce, audio removed"]["CIDEr"]["mean"]
    assert ce > most_common + SMOKE_MARGIN, (ce, most_common)
    assert no_audio < ce - SMOKE_MARGIN, (no_audio, ce)
    sound = {name: rows[name]["factors"]["sound"]["mean"] for name in ("(b) train_ce", "(d) train_ce, audio removed")}
    assert sound["(d) train_ce, audio removed"] < sound["(b) train_ce"]
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["seeds"] == [0] and set(saved["per_seed"]) == {"0"}


SMOKE_VIDEOS = 180
SMOKE_STEPS = 150
SMOKE_MARGIN = 0.05


def test_recipe_table_merges_seed_files_and_judges_separation(tmp_path, monkeypatch):
    """Results of per-seed processes are merged; a choice is separated only beyond twice the seed spread."""
    from bench import recipe_table

    def row(cider, sound=1.0):
        return {"CIDEr": cider, "BLEU-4": 0.5, "bad_endings": 0.0, "example": "a cat",
                "factors": {"all": 0.5, "action (reversible)": 0.5, "sound": sound}}

    ce, default, mean = recipe_table.CE, recipe_table.SCST_DEFAULT, "(c) train_scst, --baseline mean"
    for seed, (c, d, m) in enumerate([(1.0, 1.2, 1.25), (1.1, 1.3, 1.2), (1.05, 1.25, 1.3)]):
        rows = {"(a) most common training caption": row(0.3, 0.1), ce: row(c), default: row(d), mean: row(m),
                "(d) train_ce, audio removed": row(c - 0.5, 0.1)}
        (tmp_path / f"learning_s{seed}-{seed}.json").write_text(json.dumps({"per_seed": {str(seed): rows}}))
    monkeypatch.setattr(recipe_table, "reference_rows", lambda data, metrics=(): {})
    monkeypatch.setattr(recipe_table, "tail_incentive", lambda data: {})
    table = recipe_table.build_table(tmp_path, tmp_path / "data")
    assert table["caption_seeds"] == ["0", "1", "2"] and table["captions"][ce]["CIDEr"]["n"] == 3
    verdicts = {(c["choice"], c["metric"]): c["verdict"] for c in table["comparisons"]}
    assert verdicts[("CE beats the most common caption", "CIDEr")] == "higher"
    assert verdicts[("SCST (defaults) after CE", "CIDEr")] == "higher"  # +0.2 against 2 x 0.05
    assert verdicts[("SCST default vs --baseline mean", "CIDEr")] == "not separated"  # +0.0 against 2 x 0.05
    assert verdicts[("audio used (CE)", "factors/sound")] == "lower"
    assert verdicts[("multi-task vs QA only (QA)", "accuracy")] == "pending"
    # paired per seed: SCST defaults - CE is +0.2 on every seed (std 0); mean - defaults is +0.05, -0.1, +0.05
    paired = {(c["choice"], c["metric"]): c.get("paired") for c in table["comparisons"]}
    scst_gain = paired[("SCST (defaults) after CE", "CIDEr")]
    assert scst_gain["values"] == pytest.approx([0.2, 0.2, 0.2]) and scst_gain["verdict"] == "higher"
    baseline = paired[("SCST default vs --baseline mean", "CIDEr")]
    assert baseline["values"] == pytest.approx([0.05, -0.1, 0.05]) and baseline["verdict"] == "not separated"
    assert paired[("audio used (CE)", "CIDEr")]["mean"] == pytest.approx(-0.5)
    text = recipe_table.markdown(table)
    assert "| (b) train_ce | 3 | 1.050 ± 0.050 |" in text and "METEOR" not in text and "pending (not run)" in text
    assert "| +0.200 | 0.100 | higher | +0.200 ± 0.000 | higher |" in text


def test_recipe_table_merges_runs_of_one_seed_from_separate_files(tmp_path):
    from bench import recipe_table

    qa_only = {"qa_test": {"QA only": {"accuracy": 0.5}}, "cider_test": {"QA only": 0.01}}
    multi = {"qa_test": {"captions + QA (multi-task)": {"accuracy": 0.7}},
             "cider_test": {"captions + QA (multi-task)": 1.2}}
    (tmp_path / "qa_s0-0.json").write_text(json.dumps({"per_seed": {"0": qa_only}}))
    (tmp_path / "qa_s0-0_multi.json").write_text(json.dumps({"per_seed": {"0": multi}}))
    merged = recipe_table._merge(sorted(tmp_path.glob("qa_s*.json")))
    assert merged["0"]["qa_test"] == {**qa_only["qa_test"], **multi["qa_test"]}
    assert merged["0"]["cider_test"] == {"QA only": 0.01, "captions + QA (multi-task)": 1.2}


def test_recipe_table_runs_seeds_in_parallel_children_and_merges_them(tmp_path):
    """--jobs 2: one child process per seed (its own log), both seeds' rows in the table built afterwards."""
    from bench import recipe_table

    assert recipe_table._without(["--run", "r", "--seeds", "3", "--jobs=2", "--first-seed", "4", "--reuse"],
                                 "--seeds", "--first-seed", "--jobs") == ["--run", "r", "--reuse"]
    data = tmp_path / "data"
    synth.generate(data, num_videos=45, difficulty="recipe", progress=False)
    run = tmp_path / "run"
    table = recipe_table.main(["--run", str(run), "--data", str(data), "--seeds", "2", "--jobs", "2",
                               "--ce-steps", "2", "--scst", "--qa-runs", "--metrics", "CIDEr"])
    assert sorted(p.name for p in (run / "logs").iterdir()) == ["seed0.log", "seed1.log"]
    for seed in (0, 1):
        report = json.loads((run / f"learning_s{seed}-{seed}.json").read_text())
        assert report["seeds"] == [seed] and (run / f"seed{seed}" / "ce" / "best" / "config.json").exists()
    assert table["caption_seeds"] == ["0", "1"]
    assert table["captions"][recipe_table.CE]["CIDEr"]["n"] == 2
    assert json.loads((run / "table.json").read_text())["caption_seeds"] == ["0", "1"]


def test_frame_order_bench_trains_each_time_embedding_start(tmp_path):
    """bench/frame_order.py: each --scales value reaches the trained model's config and its first weights."""
    import torch

    from bench import frame_order
    from videoblip2 import tiny
    from videoblip2.modeling import VideoBLIP2, sinusoidal_positions

    data = tmp_path / "data"
    synth.generate(data, num_videos=45, difficulty="recipe", progress=False)
    report = frame_order.main(["--data", str(data), "--run", str(tmp_path / "run"), "--out", str(tmp_path / "f.json"),
                               "--scales", "0", "0.3", "--seeds", "1", "--ce-steps", "1"])
    assert tiny.tiny_config.__qualname__ == "tiny_config"  # the patch is undone after training
    assert set(report["rows"]) == {"0", "0.3"} and set(report["summary"]["0.3"]) >= {"seeds learning frame order"}
    old = VideoBLIP2.from_pretrained(tmp_path / "run" / "scale0" / "seed0" / "last")
    new = VideoBLIP2.from_pretrained(tmp_path / "run" / "scale0.3" / "seed0" / "last")
    assert (old.config.video_time_init_scale, new.config.video_time_init_scale) == (0.0, 0.3)
    start = 0.3 * sinusoidal_positions(16, 64)[None]
    # one optimizer step (warm-up rate) moves each weight by at most ~lr: the sinusoidal start is still there
    assert (new.video_time_embedding - start).abs().max() < 0.01
    assert old.video_time_embedding.abs().max() < 0.15
    saved = json.loads((tmp_path / "f.json").read_text())
    assert set(saved["rows"]["0.3"]["0"]) == {"as is", "frames shuffled", "seconds", "learned"}


def test_tail_incentive_pays_for_ending_on_holding_a_only_without_eos(recipe):
    """The level's reason for the tail: without EOS in the reward, "holding a" pays and a guessed object does not;
    with EOS in the reward, ending on "a" costs more than it gains."""
    from bench import recipe_table

    incentive = recipe_table.tail_incentive(recipe)
    plain, bad, guessed = (name for name, _ in recipe_table.TAIL_CANDIDATES)
    no_eos, eos = incentive["--no-eos-reward"], incentive["EOS in the reward (default)"]
    assert no_eos[bad] > no_eos[plain] > no_eos[guessed]
    assert eos[plain] > eos[bad] and eos[plain] > eos[guessed]
    text = recipe_table.markdown({"captions": {}, "qa": {}, "qa_cider": {}, "references": {}, "comparisons": [],
                                  "tail_incentive": incentive})
    assert f"| --no-eos-reward | {no_eos[plain]:.3f} | {no_eos[bad]:.3f} | {no_eos[guessed]:.3f} |" in text
