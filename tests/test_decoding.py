"""Decoding options, bad endings, and SCST sampling that scores exactly the distribution it samples from."""

from __future__ import annotations

import argparse

import pytest
import torch
import torch.nn.functional as F

from videoblip2.decoding import (
    BAD_ENDINGS,
    PREDICT_NUM_BEAMS,
    BlockBadEndings,
    DecodingOptions,
    add_decoding_args,
    bad_ending_rate,
    ends_badly,
)


def test_bad_ending_rate_by_hand():
    captions = ["a man is cooking.", "A man is playing with a", "a dog and ", "the ", "", "a woman hugs her"]
    assert [ends_badly(c) for c in captions] == [False, True, True, True, False, False]
    assert bad_ending_rate(captions) == pytest.approx(3 / 6)
    assert bad_ending_rate([]) == 0.0
    assert {"a", "an", "the", "with", "and", "of"} <= set(BAD_ENDINGS)


def test_block_bad_endings_decides_on_words_not_tokens(tiny_model):
    tok = tiny_model.t5_tokenizer
    blocker = BlockBadEndings(tok)
    start = tiny_model.t5.get_base_model().config.decoder_start_token_id

    def ids(text):
        return [start] + tok.encode(text, add_special_tokens=False)

    rows = [ids("a man is talking about a"), ids("a man is talking about a car"), ids("a man"), ids("an")]
    assert tok.convert_ids_to_tokens(rows[3][1:]) == ["▁a", "n"]  # "an" is two tokens: still a bad ending
    width = max(map(len, rows))
    batch = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
    # per step (what generate calls) on the full prefixes
    scores = torch.zeros(4, len(tok))
    full = torch.tensor([r[:min(len(r), 5)] for r in rows[2:]])  # "a man", "an" as whole rows
    out = blocker(full, scores[2:].clone())
    assert out[:, tok.eos_token_id].tolist() == [0.0, float("-inf")]
    # every position at once (the log-prob pass): position t blocks EOS iff the prefix up to t ends badly
    blocked = blocker.blocked(batch)
    expected = [[bad_ending_rate([tok.decode(r[: t + 1], skip_special_tokens=True)]) == 1 for t in range(width)]
                for r in batch.tolist()]
    assert blocked.tolist() == expected
    assert blocked[0, len(rows[0]) - 1] and not blocked[1, len(rows[1]) - 1] and blocked[3, 1]


def test_decoding_flags_parse_into_one_options_object():
    parser = argparse.ArgumentParser()
    add_decoding_args(parser, num_beams=PREDICT_NUM_BEAMS)
    assert DecodingOptions.from_args(parser.parse_args([])) == DecodingOptions(num_beams=5)
    args = parser.parse_args(["--num-beams", "3", "--length-penalty", "0.6", "--no-repeat-ngram-size", "3",
                              "--repetition-penalty", "1.2", "--min-new-tokens", "4", "--block-bad-endings"])
    options = DecodingOptions.from_args(args)
    assert options.to_dict() == {"num_beams": 3, "length_penalty": 0.6, "no_repeat_ngram_size": 3,
                                 "repetition_penalty": 1.2, "min_new_tokens": 4, "max_new_tokens": None,
                                 "block_bad_endings": True}
    for bad in (["--num-beams", "0"], ["--repetition-penalty", "0"], ["--min-new-tokens", "-1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def favour_short_bad_endings(model) -> None:
    """Flatten the random LM head and bias it towards "a", "the" and EOS: many captions end on an article."""
    tok = model.t5_tokenizer
    head = model.t5.get_base_model().lm_head
    with torch.no_grad():
        head.weight.mul_(0.05)
    bias = torch.zeros(head.out_features)
    for word in ("a", "the"):
        bias[tok.encode(word, add_special_tokens=False)] = 2.5
    bias[tok.eos_token_id] = 2.5
    head.register_forward_hook(lambda module, inputs, output: output + bias)


def test_generate_with_block_bad_endings_never_ends_badly(tiny_model, feature_batch):
    tiny_model.eval()
    favour_short_bad_endings(tiny_model)
    torch.manual_seed(0)
    kwargs = {"do_sample": True, "num_return_sequences": 8, "max_new_tokens": 12}
    free = tiny_model.generate(**feature_batch, **kwargs)
    assert bad_ending_rate(free) > 0.2  # without the block, many captions stop on "a" / "the"
    options = DecodingOptions(block_bad_endings=True, max_new_tokens=12)
    gen = options.generate_kwargs(tiny_model.t5_tokenizer)
    gen.pop("num_beams")
    captions, ids = tiny_model.generate(**feature_batch, **gen, do_sample=True, num_return_sequences=8,
                                        return_ids=True)
    ended = (ids == tiny_model.t5_tokenizer.eos_token_id).any(dim=1).tolist()
    assert sum(ended) > 5
    assert bad_ending_rate([c for c, e in zip(captions, ended) if e]) == 0.0


# ------------------------------------------------------------------ SCST sampling


def test_scst_sampling_ignores_the_base_t5_generation_config(tiny_model_factory, feature_batch):
    """A T5 whose generation_config sets repetition_penalty=3 (and more) samples the same as one without."""
    plain, tuned = tiny_model_factory(seed=0).eval(), tiny_model_factory(seed=0).eval()
    config = tuned.t5.get_base_model().generation_config
    config.repetition_penalty = 3.0
    config.no_repeat_ngram_size = 2
    config.top_k = 5
    config.suppress_tokens = [5, 6, 7]

    # the setting is live: the T5's own generate, which reads its generation_config, does change
    draws = []
    for model in (plain, tuned):
        embeds, mask = model.encode(**feature_batch)
        torch.manual_seed(0)
        draws.append(model.t5.generate(inputs_embeds=embeds, attention_mask=mask, do_sample=True, max_new_tokens=10,
                                       num_return_sequences=4).tolist())
    assert draws[0] != draws[1]

    outs = []
    for model in (plain, tuned):
        torch.manual_seed(0)
        outs.append(model.sample_with_logprobs(**feature_batch, num_samples=4, max_new_tokens=10,
                                               include_greedy=True, temperature=0.7))
    assert outs[0].captions == outs[1].captions and outs[0].greedy_captions == outs[1].greedy_captions
    assert torch.equal(outs[0].sequences, outs[1].sequences)
    assert torch.allclose(outs[0].logprobs, outs[1].logprobs, atol=1e-6)
    assert config.repetition_penalty == 3.0  # the model's own config is back after the call


def test_scst_logprobs_apply_temperature_and_blocked_endings(tiny_model, feature_batch):
    """The log-prob pass applies the sampler's processing: logits / T with EOS masked after bad endings."""
    tiny_model.eval()
    favour_short_bad_endings(tiny_model)
    torch.manual_seed(0)
    out = tiny_model.sample_with_logprobs(**feature_batch, num_samples=6, max_new_tokens=10, temperature=0.8,
                                          block_bad_endings=True)
    tok = tiny_model.t5_tokenizer
    ended = (out.sequences == tok.eos_token_id).any(dim=1).tolist()
    assert sum(ended) >= 2 and bad_ending_rate([c for c, e in zip(out.captions, ended) if e]) == 0.0
    repeat = {k: v.repeat_interleave(6, dim=0) for k, v in feature_batch.items()}
    with torch.no_grad():
        logits = tiny_model(**repeat, labels=out.sequences.masked_fill(out.token_mask == 0, -100)).logits.float()
    decoder_inputs = tiny_model.t5.get_base_model()._shift_right(out.sequences)
    blocked = BlockBadEndings(tok).blocked(decoder_inputs)
    assert blocked.any()  # some prefixes end on a bad word: the mask matters
    logits[..., tok.eos_token_id] = logits[..., tok.eos_token_id].masked_fill(blocked, float("-inf"))
    token_logp = F.log_softmax(logits / 0.8, dim=-1).gather(-1, out.sequences.unsqueeze(-1)).squeeze(-1)
    expected = (token_logp * out.token_mask).sum(dim=1)
    assert torch.allclose(out.logprobs.detach(), expected, atol=1e-4)
    unmasked = (F.log_softmax(tiny_model(**repeat, labels=out.sequences.masked_fill(out.token_mask == 0, -100))
                              .logits.float() / 0.8, dim=-1)
                .gather(-1, out.sequences.unsqueeze(-1)).squeeze(-1) * out.token_mask).sum(dim=1)
    assert not torch.allclose(out.logprobs.detach(), unmasked.detach(), atol=1e-4)


# ------------------------------------------------------------------ decoding isolated from the T5's generation_config


def test_decoding_ignores_the_t5_saved_generation_config(tiny_model_factory, feature_batch):
    """A T5 saved with min_new_tokens=20 (and more) decodes exactly as one without, greedy and beam search, and
    --min-new-tokens 0 means 0 (issue 19: the saved settings leaked into validation, predict and caption)."""
    plain, tuned = tiny_model_factory(seed=0).eval(), tiny_model_factory(seed=0).eval()
    config = tuned.t5.get_base_model().generation_config
    config.min_new_tokens = 20
    config.repetition_penalty = 3.0
    config.no_repeat_ngram_size = 2
    config.length_penalty = 5.0
    config.num_beams = 4
    config.suppress_tokens = [5, 6, 7]
    for model in (plain, tuned):
        favour_short_bad_endings(model)  # EOS likely: short captions, unless min_new_tokens leaks
    for options in (DecodingOptions(max_new_tokens=24), DecodingOptions(num_beams=3, max_new_tokens=24),
                    DecodingOptions(min_new_tokens=0, max_new_tokens=24)):
        outs = []
        for model in (plain, tuned):
            captions, ids = model.generate(**feature_batch, **options.generate_kwargs(model.t5_tokenizer),
                                           return_ids=True)
            outs.append(ids.tolist())
        assert outs[0] == outs[1], options
    # without the isolation the tuned T5 would never stop before 20 tokens: the plain one does
    assert min(len([t for t in row[1:] if t != plain.t5_tokenizer.pad_token_id]) for row in outs[0]) < 20
    assert config.min_new_tokens == 20  # the model's own config is back after the call


def test_block_bad_endings_is_the_model_default(tiny_model, feature_batch):
    """config.block_bad_endings (recorded by training with --block-bad-endings) is what predict decodes with
    unless --no-block-bad-endings; it round-trips through save_pretrained."""
    from videoblip2.config import VideoBLIP2Config

    parser = argparse.ArgumentParser()
    add_decoding_args(parser)
    assert parser.parse_args([]).block_bad_endings is None
    assert parser.parse_args(["--no-block-bad-endings"]).block_bad_endings is False
    trained = VideoBLIP2Config.from_dict({**tiny_model.config.to_dict(), "block_bad_endings": True})
    assert VideoBLIP2Config.from_dict(trained.to_dict()).block_bad_endings is True
    assert DecodingOptions().for_model(trained).block_bad_endings is True
    assert DecodingOptions(block_bad_endings=False).for_model(trained).block_bad_endings is False
    assert DecodingOptions().for_model(tiny_model.config).block_bad_endings is False

    from videoblip2.predict import predict_captions

    class Videos:  # the VideoDataset interface predict_captions reads
        def __len__(self):
            return 3

        def batch(self, rows):
            return {**{k: v[list(rows)] for k, v in feature_batch.items()}, "video_ids": [f"v{r}" for r in rows]}

    seen = []

    def blocks(model, decoding):
        generate = model.generate
        model.generate = lambda *a, **kw: seen.append(kw) or generate(*a, **kw)
        try:
            predict_captions(model, Videos(), progress=False, decoding=decoding)
        finally:
            del model.generate
        return any(isinstance(p, BlockBadEndings) for p in seen.pop().get("logits_processor", []))

    tiny_model.eval()
    assert not blocks(tiny_model, DecodingOptions(max_new_tokens=4))
    tiny_model.config.block_bad_endings = True
    assert blocks(tiny_model, DecodingOptions(max_new_tokens=4))
    assert not blocks(tiny_model, DecodingOptions(max_new_tokens=4, block_bad_endings=False))
