"""SCST: advantages and loss against hand-computed numbers, the model's log-probs, short train_scst runs."""

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from train.scst import scst_advantages, scst_loss, sequence_logprobs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


REWARDS = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]])


def test_greedy_baseline_by_hand():
    adv = scst_advantages(REWARDS, "greedy", torch.tensor([2.0, 1.0]))
    assert adv.tolist() == [[-1.0, 0.0, 1.0], [-1.0, -1.0, 2.0]]


def test_mean_baseline_by_hand():
    # sample k's baseline is the mean of the other two: row 0 -> 2.5, 2, 1.5; row 1 -> 1.5, 1.5, 0
    adv = scst_advantages(REWARDS, "mean")
    assert adv.tolist() == [[-1.5, 0.0, 1.5], [-1.5, -1.5, 3.0]]
    assert torch.allclose(adv.sum(dim=1), torch.zeros(2))  # leave-one-out advantages sum to 0 per video


def test_advantage_errors():
    with pytest.raises(ValueError, match="greedy_rewards"):
        scst_advantages(REWARDS, "greedy")
    with pytest.raises(ValueError, match="at least 2"):
        scst_advantages(REWARDS[:, :1], "mean")
    with pytest.raises(ValueError, match="unknown baseline"):
        scst_advantages(REWARDS, "max")


def test_sequence_logprobs_masks_after_eos_and_counts_eos():
    eos = 1
    sequences = torch.tensor([[5, 6, 1, 7, 8], [5, 1, 1, 0, 0], [5, 6, 7, 8, 9]])
    token_logprobs = -torch.tensor([[1.0, 2.0, 3.0, 100.0, 100.0],
                                    [0.5, 0.25, 100.0, 100.0, 100.0],
                                    [1.0, 1.0, 1.0, 1.0, 1.0]])
    # row 0: 1 + 2 + 3 (EOS included), row 1: 0.5 + 0.25 (second EOS masked), row 2: no EOS, everything
    assert sequence_logprobs(token_logprobs, sequences, eos).tolist() == [-6.0, -0.75, -5.0]


def test_scst_loss_and_gradient_by_hand():
    logprobs = torch.tensor([-1.0, -2.0, -3.0], requires_grad=True)
    adv = torch.tensor([1.0, 0.0, -2.0])
    loss = scst_loss(logprobs, adv)
    assert loss.item() == pytest.approx(-(1 * -1 + 0 * -2 + -2 * -3) / 3)  # -5/3
    loss.backward()
    assert logprobs.grad.tolist() == pytest.approx([-1 / 3, 0.0, 2 / 3])  # -adv / N: raise good samples
    assert scst_loss(logprobs, adv, normalizer=10.0).item() == pytest.approx(-0.5)


def test_end_to_end_loss_from_rewards_both_baselines():
    logprobs = torch.tensor([-1.0, -2.0, -3.0, -4.0, -5.0, -6.0])
    greedy = scst_loss(logprobs, scst_advantages(REWARDS, "greedy", torch.tensor([2.0, 1.0])).flatten())
    # advantages -1, 0, 1, -1, -1, 2 -> -(1 + 0 - 3 + 4 + 5 - 12) / 6
    assert greedy.item() == pytest.approx(5 / 6)
    mean = scst_loss(logprobs, scst_advantages(REWARDS, "mean").flatten())
    # advantages -1.5, 0, 1.5, -1.5, -1.5, 3 -> -(1.5 + 0 - 4.5 + 6 + 7.5 - 18) / 6
    assert mean.item() == pytest.approx(7.5 / 6)


def test_model_logprobs_are_masked_sums_of_teacher_forced_logprobs(tiny_model, feature_batch):
    """sample_with_logprobs' log-probs == sum over tokens up to EOS of log_softmax of a separate forward pass."""
    torch.manual_seed(0)
    tiny_model.eval()
    out = tiny_model.sample_with_logprobs(**feature_batch, num_samples=3, max_new_tokens=8, include_greedy=True)
    assert out.logprobs.shape == (9,) and out.logprobs.requires_grad and len(out.greedy_captions) == 3
    repeat = {k: v.repeat_interleave(3, dim=0) for k, v in feature_batch.items()}
    eos = tiny_model.t5_tokenizer.eos_token_id
    labels = out.sequences.masked_fill(out.token_mask == 0, -100)
    with torch.no_grad():
        logits = tiny_model(**repeat, labels=labels).logits
    token_logprobs = F.log_softmax(logits.float(), dim=-1).gather(-1, out.sequences.unsqueeze(-1)).squeeze(-1)
    expected = sequence_logprobs(token_logprobs, out.sequences, eos)
    assert torch.allclose(out.logprobs.detach(), expected, atol=1e-4)


# ---------------------------------------------------------------------------------------------- train_scst runs


def _scst_args(data, init_dir, out, *extra):
    return ["--model", str(init_dir), "--features", str(data), "--ann", str(data / "train_val_videodatainfo.json"),
            "--out", str(out), "--batch-size", "2", "--num-samples", "3", "--max-sample-len", "8",
            "--max-steps", "2", "--log-every", "1", "--lr", "1e-4", "--no-progress", "--num-threads", "1", *extra]


def _records(out, kind):
    return [json.loads(line) for line in open(out / "log.jsonl") if json.loads(line)["type"] == kind]


def test_train_scst_mean_baseline_top5_refs(synth_data, tiny_init_dir, tmp_path):
    from train import make_top5, train_scst
    from videoblip2.modeling import VideoBLIP2

    top5 = tmp_path / "top5.json"
    make_top5.main(["--ann", str(synth_data / "train_val_videodatainfo.json"), "--out", str(top5)])
    out = tmp_path / "scst_mean"
    # a train_ce model records its two peak rates: SCST keeps their ratio (issue 19)
    ce_model = tmp_path / "ce_model"
    shutil.copytree(tiny_init_dir, ce_model)
    (ce_model / "trainer_info.json").write_text(json.dumps({"learning_rates": {"lr": 1e-3, "qformer_lr": 1e-4}}))
    summary = train_scst.main(_scst_args(synth_data, ce_model, out, "--baseline", "mean", "--refs", "top5",
                                         "--top5", str(top5), "--block-bad-endings", "--loss-norm", "token",
                                         "--max-grad-norm", "1e-6"))
    assert summary["step"] == 2
    train = _records(out, "train")
    assert [r["step"] for r in train] == [1, 2]
    for r in train:
        for key in ("loss", "lr", "reward_mean", "adv_mean", "adv_std", "adv_pos_frac", "sample_len", "videos_per_s"):
            assert np.isfinite(r[key]), key
        assert abs(r["adv_mean"]) < 1e-6  # leave-one-out advantages sum to zero
        assert "reward_greedy" not in r  # the mean baseline needs no greedy pass
        assert r["lr_qformer"] == pytest.approx(r["lr"] / 10)  # --lr 1e-4 x 1e-4 / 1e-3
        assert r["clipped_frac"] == float(r["grad_norm"] > 1e-6)  # one step per record: clipped or not
    assert summary["clipped_steps"] == sum(r["grad_norm"] > 1e-6 for r in train)
    val = _records(out, "val")[-1]
    assert val["step"] == 2 and np.isfinite(val["val_loss"]) and 0 <= val["val_cider"]
    info = json.loads((out / "last" / "trainer_info.json").read_text())
    assert (info["baseline"], info["loss_norm"]) == ("mean", "token")
    assert info["learning_rates"] == {"lr": 1e-4, "qformer_lr": pytest.approx(1e-5)}
    # trained with --block-bad-endings: recorded, and the saved model's decoding default (issue 19)
    assert VideoBLIP2.from_pretrained(out / "last").config.block_bad_endings is True
    assert (out / "log.png").read_bytes()[:4] == b"\x89PNG"


def test_train_scst_defaults_greedy_baseline_and_top5_built_like_make_top5(synth_data, tiny_init_dir, tmp_path,
                                                                          capsys):
    """No --baseline/--refs/--top5: the design's greedy baseline on top-5 references built next to the run."""
    from train import make_top5, train_scst

    args = train_scst.parse_args(_scst_args(synth_data, tiny_init_dir, tmp_path / "x"))
    assert (args.baseline, args.refs, args.top5, args.eos_reward) == ("greedy", "top5", None, True)
    out = tmp_path / "scst_greedy"
    train_scst.main(_scst_args(synth_data, tiny_init_dir, out, "--max-steps", "1"))
    (record,) = _records(out, "train")
    assert np.isfinite(record["reward_greedy"]) and np.isfinite(record["reward_mean"])
    # mean advantage = mean sample reward - mean greedy reward (each video has the same number of samples)
    assert record["adv_mean"] == pytest.approx(record["reward_mean"] - record["reward_greedy"], abs=1e-6)
    built = out / "train_top5_detail.json"
    expected = tmp_path / "make_top5.json"
    make_top5.main(["--ann", str(synth_data / "train_val_videodatainfo.json"), "--out", str(expected)])
    assert json.loads(built.read_text()) == json.loads(expected.read_text())
    assert str(built) in capsys.readouterr().out  # named in the run's log
    info = json.loads((out / "last" / "trainer_info.json").read_text())
    assert (info["baseline"], info["refs"], info["top5"], info["eos_reward"]) == ("greedy", "top5", str(built), True)


def test_scst_reward_scores_the_end_of_sentence_of_finished_samples_only(synth_data):
    """The reward gives EOS to the samples that ended and not to those cut at the length limit."""
    from eval.cider import CiderD
    from train.scst_task import SCSTTask
    from videoblip2.annotations import load_annotations

    ann = load_annotations(synth_data / "train_val_videodatainfo.json", "train")
    video = next(iter(ann))
    caption = ann[video][0]
    # pycocoevalcap-style reference: the corpus with "<eos>" written out, candidates with or without it
    written = CiderD({v: [c + " <eos>" for c in cs] for v, cs in ann.items()})
    for eos in (True, False):
        task = SCSTTask([], CiderD(ann, eos=eos), None, baseline="greedy", num_samples=1, temperature=1.0,
                        max_new_tokens=None)
        ended, cut = task.reward([caption, caption], [video, video], [True, False])
        if eos:
            assert ended == pytest.approx(written.score([caption + " <eos>"], [video])[0], abs=1e-12)
            assert cut == pytest.approx(written.score([caption], [video])[0], abs=1e-12)
            assert ended != cut
        else:
            assert ended == cut == pytest.approx(CiderD(ann).score([caption], [video])[0], abs=1e-12)


def test_train_scst_argument_errors(synth_data, tiny_init_dir, tmp_path):
    from train import train_scst

    with pytest.raises(SystemExit):
        train_scst.parse_args(_scst_args(synth_data, tiny_init_dir, tmp_path / "x", "--refs", "full", "--top5", "f"))
    with pytest.raises(SystemExit):
        train_scst.parse_args(_scst_args(synth_data, tiny_init_dir, tmp_path / "x", "--baseline", "mean",
                                         "--num-samples", "1"))
    with pytest.raises(SystemExit):
        train_scst.parse_args(_scst_args(synth_data, tiny_init_dir, tmp_path / "x", "--num-samples", "0"))


def test_loss_norm_token_divides_by_the_sampled_tokens():
    """--loss-norm token: the micro-batch's summed -A * log p times samples / tokens, so that the trainer's
    division by the samples gives the token mean (self-critical.pytorch's RewardCriterion); sequence: as is."""
    from train.scst_task import SCSTTask
    from videoblip2.modeling import SampleOutput

    logprobs = torch.tensor([-2.0, -1.0, -4.0, -3.0], requires_grad=True)
    token_mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    out = SampleOutput(sequences=torch.zeros(4, 4, dtype=torch.long), token_mask=token_mask, logprobs=logprobs,
                       captions=["a", "b", "c", "d"], greedy_captions=None, ended=torch.ones(4, dtype=torch.bool),
                       greedy_ended=None)

    class Videos:
        def __len__(self):
            return 2

        def batch(self, indices):
            return {"video_ids": ["v0", "v1"], "video": torch.zeros(2, 1, 1)}

    class Rewards:
        def score(self, captions, video_ids, ended=None):
            return np.array([1.0, 0.0, 0.5, 2.0])

    losses = {}
    for norm in ("sequence", "token"):
        task = SCSTTask(Videos(), Rewards(), None, baseline="mean", num_samples=2, temperature=1.0,
                        max_new_tokens=None, loss_norm=norm)
        module = torch.nn.Module()
        module.forward = lambda **kwargs: out
        losses[norm] = task.micro_step(module, None, np.arange(2)).loss_sum
    advantages = torch.tensor([1.0, -1.0, -1.5, 1.5])  # leave-one-out over K = 2
    summed = -(advantages * logprobs.detach()).sum()
    assert losses["sequence"].item() == pytest.approx(summed.item())
    assert losses["token"].item() == pytest.approx(summed.item() * 4 / token_mask.sum().item())
    with pytest.raises(ValueError, match="loss_norm"):
        SCSTTask(Videos(), Rewards(), None, baseline="mean", num_samples=2, temperature=1.0, max_new_tokens=None,
                 loss_norm="batch")
