"""VideoBLIP2 model behaviour on tiny offline models."""

import dataclasses
import json

import pytest
import torch
import transformers
from safetensors.torch import load_file
from transformers import T5ForConditionalGeneration

from videoblip2.config import ConfigError, VideoBLIP2Config
from videoblip2.modeling import (
    CheckpointError,
    GreedyRows,
    VideoBLIP2,
    caption_token_mask,
)

LABELS = torch.tensor([[5, 6, 7, 1], [8, 9, 1, -100], [5, 1, -100, -100]])


def test_config_json_round_trip_and_unknown_keys(tmp_path):
    config = VideoBLIP2Config()
    assert (config.video_dim, config.audio_dim, config.qformer.num_query_tokens) == (768, 512, 32)
    assert (config.lora.r, config.lora.alpha, config.lora.dropout, config.lora.target_modules) == (16, 32, 0.05, ["q", "v"])
    assert config.t5.name_or_path == "google/flan-t5-base" and config.qformer_tokenizer == "bert-base-uncased"
    config.qformer.encoder_width = 1024
    config.save(tmp_path / "c.json")
    again = VideoBLIP2Config.load(tmp_path / "c.json")
    assert again == config and again.qformer.encoder_width == 1024
    data = config.to_dict()
    data["qformer"]["hiden_size"] = 3
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"bad.json.*qformer.hiden_size"):
        VideoBLIP2Config.load(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="frames_max"):
        VideoBLIP2Config.from_dict({"frames_max": 3})
    with pytest.raises(ConfigError, match="multiple"):
        VideoBLIP2Config.from_dict({"qformer": {"hidden_size": 30, "num_attention_heads": 4}})


def test_tokenizers_built_in_code_give_real_ids(tiny_model):
    t5_ids = tiny_model.t5_tokenizer("a dog is running").input_ids
    assert t5_ids[-1] == tiny_model.t5_tokenizer.eos_token_id == 1
    assert tiny_model.t5_tokenizer.unk_token_id not in t5_ids
    assert tiny_model.t5_tokenizer.decode(t5_ids, skip_special_tokens=True) == "a dog is running"
    bert = tiny_model.qformer_tokenizer
    ids = bert("a dog is running").input_ids
    assert ids[0] == bert.cls_token_id and ids[-1] == bert.sep_token_id and bert.unk_token_id not in ids


def test_forward_and_generate_shapes(tiny_model, feature_batch):
    out = tiny_model(**feature_batch, labels=LABELS)
    assert out.logits.shape == (3, 4, len(tiny_model.t5_tokenizer))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    embeds, mask = tiny_model.encode(**feature_batch)
    n_q = tiny_model.config.qformer.num_query_tokens
    n_prompt = len(tiny_model.t5_tokenizer(tiny_model.config.prompt).input_ids)
    assert embeds.shape == (3, 2 * n_q + n_prompt, 64)
    assert mask[1, n_q:2 * n_q].sum() == 0 and mask[0, n_q:2 * n_q].all()  # video 1 has no sound
    tiny_model.eval()
    for kwargs in ({}, {"num_beams": 3}, {"do_sample": True}):
        captions = tiny_model.generate(**feature_batch, max_new_tokens=6, **kwargs)
        assert len(captions) == 3 and all(isinstance(c, str) for c in captions)


def test_return_loss_false_gives_the_same_logits_without_a_loss(tiny_model, feature_batch):
    tiny_model.eval()
    with_loss = tiny_model(**feature_batch, labels=LABELS)
    without = tiny_model(**feature_batch, labels=LABELS, return_loss=False)
    assert without.loss is None and torch.equal(without.logits, with_loss.logits)


def test_bad_feature_shapes_are_explained(tiny_model, feature_batch):
    with pytest.raises(ValueError, match=r"video features must have shape \(B, T, 768\)"):
        tiny_model(torch.randn(2, 4, 512))
    with pytest.raises(ValueError, match="max_frames=16"):
        tiny_model(torch.randn(1, 17, 768))


def test_loss_falls_on_a_fixed_batch(tiny_model, feature_batch):
    torch.manual_seed(0)
    opt = torch.optim.AdamW([p for p in tiny_model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(15):
        loss = tiny_model(**feature_batch, labels=LABELS).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_only_t5_base_is_frozen(tiny_frozen_t5_model, feature_batch):
    tiny_model = tiny_frozen_t5_model
    tiny_model(**feature_batch, labels=LABELS).loss.backward()
    last = tiny_model.config.qformer.num_hidden_layers - 1
    unused = tuple(f"qformer.encoder.layer.{last}.{m}." for m in ("intermediate", "output"))
    for name, p in tiny_model.named_parameters():
        if (name.startswith("t5.") and "lora_" not in name) or any(u in name for u in unused):
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.requires_grad and p.grad is not None, name
            if "lora_A" not in name:  # lora_B starts at zero, so dL/dA is exactly zero at step 0
                assert p.grad.abs().sum() > 0, name
    trainable = {n for n, p in tiny_model.named_parameters() if p.requires_grad}
    assert any("lora_B" in n and ".q." in n for n in trainable) and any(".v." in n and "lora_A" in n for n in trainable)
    assert not any(".k." in n or ".o." in n for n in trainable if n.startswith("t5."))


def test_frame_order_matters(tiny_model, feature_batch):
    tiny_model.eval()
    video = feature_batch["video"][:, :6]
    forward, _ = tiny_model.encode(video)
    backward, _ = tiny_model.encode(video.flip(1))
    n_q = tiny_model.config.qformer.num_query_tokens
    again, _ = tiny_model.encode(video.clone())
    torch.testing.assert_close(forward, again, atol=1e-6, rtol=1e-6)
    # at initialisation the effect is small (the attention is nearly uniform) but well above float noise
    assert (forward[:, :n_q] - backward[:, :n_q]).abs().max() > 1e-5


def test_video_time_embedding_starts_sinusoidal_unless_asked(tiny_model_factory):
    from videoblip2.modeling import sinusoidal_positions

    table = sinusoidal_positions(16, 64)
    assert table.shape == (16, 64) and table[0, 0::2].abs().max() == 0 and torch.equal(table[0, 1::2], torch.ones(32))
    # position t, column 2i: sin(t / 10000^(2i / 64)); column 2i + 1: cos of the same
    assert table[3, 4].item() == pytest.approx(torch.sin(torch.tensor(3 / 10000 ** (4 / 64))).item())
    assert table[5, 7].item() == pytest.approx(torch.cos(torch.tensor(5 / 10000 ** (6 / 64))).item())
    assert sinusoidal_positions(4, 5).shape == (4, 5)  # odd widths: one more sine column than cosine columns
    model = tiny_model_factory(seed=0)
    scale = model.config.video_time_init_scale
    assert scale == 0.3 == VideoBLIP2Config().video_time_init_scale
    torch.testing.assert_close(model.video_time_embedding.detach(), scale * table[None])
    assert model.video_time_embedding.requires_grad  # a start, not a fixed table: it is trained
    # 0 keeps the BERT-style start (normal, std 0.02) of the earlier models; the audio positions always have it
    torch.manual_seed(0)
    old = VideoBLIP2(dataclasses.replace(model.config, video_time_init_scale=0.0), model.t5_tokenizer,
                     model.qformer_tokenizer)
    assert 0.01 < old.video_time_embedding.std().item() < 0.03

    def order_effect(m):  # how far reversing 6 frames moves the video queries at initialisation
        m.eval()
        video = torch.randn(3, 6, 768, generator=torch.Generator().manual_seed(0))
        forward, backward = m.encode(video)[0], m.encode(video.flip(1))[0]
        n_q = m.config.qformer.num_query_tokens
        return (forward[:, :n_q] - backward[:, :n_q]).abs().max().item()

    assert order_effect(model) > 5 * order_effect(old)  # 7.6x with these seeds
    assert 0.01 < model.audio_time_embedding.std().item() < 0.03
    with pytest.raises(ConfigError, match="video_time_init_scale"):
        VideoBLIP2Config(video_time_init_scale=-1)


def test_video_without_audio_ignores_the_masked_audio(tiny_model, feature_batch):
    tiny_model.eval()
    labels = LABELS[1:2]
    b = {k: v[1:2] for k, v in feature_batch.items()}  # video 1 has no sound
    logits = tiny_model(**b, labels=labels).logits
    b2 = dict(b, audio=torch.randn_like(b["audio"]) * 100)
    assert torch.equal(logits, tiny_model(**b2, labels=labels).logits)
    # `audio=None` means the same thing
    no_audio = tiny_model(b["video"], b["video_mask"], labels=labels).logits
    torch.testing.assert_close(no_audio, logits)
    # ...and a video with sound does depend on it
    b3 = {k: v[0:1] for k, v in feature_batch.items()}
    b4 = dict(b3, audio=torch.randn_like(b3["audio"]))
    assert not torch.allclose(tiny_model(**b3, labels=labels).logits, tiny_model(**b4, labels=labels).logits)


def test_padded_frames_are_ignored(tiny_model, feature_batch):
    tiny_model.eval()
    b = {k: v[0:1] for k, v in feature_batch.items()}  # frames 7.. are padding
    changed = b["video"].clone()
    changed[:, 7:] = 55.0
    torch.testing.assert_close(tiny_model.encode(**b)[0], tiny_model.encode(**dict(b, video=changed))[0])


def _perturb_trainable(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)


def test_tiny_t5_trains_whole_unless_asked(tiny_model, tiny_frozen_t5_model):
    base = "t5.base_model.model.decoder.block.0.layer.2.DenseReluDense.wo.weight"
    assert dict(tiny_model.named_parameters())[base].requires_grad
    assert not dict(tiny_frozen_t5_model.named_parameters())[base].requires_grad


@pytest.mark.parametrize("frozen", [False, True])
def test_save_load_round_trip(tiny_model, tiny_frozen_t5_model, feature_batch, tmp_path, frozen):
    tiny_model = tiny_frozen_t5_model if frozen else tiny_model
    _perturb_trainable(tiny_model)  # so LoRA is non-zero and a wrong load would show
    tiny_model.eval()
    tiny_model.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {
        "config.json", "model.safetensors", "t5_tokenizer", "qformer_tokenizer"}
    loaded = VideoBLIP2.from_pretrained(tmp_path / "m").eval()
    assert torch.equal(tiny_model(**feature_batch, labels=LABELS).logits, loaded(**feature_batch, labels=LABELS).logits)
    assert tiny_model.generate(**feature_batch, num_beams=2) == loaded.generate(**feature_batch, num_beams=2)

    # standalone directory with LoRA merged: same logits (up to float rounding), fresh zero adapters
    tiny_model.save_pretrained(tmp_path / "merged", merge_lora=True)
    merged = VideoBLIP2.from_pretrained(tmp_path / "merged").eval()
    torch.testing.assert_close(merged(**feature_batch, labels=LABELS).logits,
                               tiny_model(**feature_batch, labels=LABELS).logits, atol=1e-4, rtol=1e-4)
    state = load_file(str(tmp_path / "merged" / "model.safetensors"))
    assert all(v.abs().sum() == 0 for k, v in state.items() if "lora_B" in k)


def test_saved_directory_names_a_base_t5_instead_of_copying_it(tiny_frozen_t5_model, feature_batch, tmp_path):
    """The real path: a base T5 loaded by name/path; only trained weights go into model.safetensors."""
    tiny_model = tiny_frozen_t5_model
    base_dir = tmp_path / "flan-t5-local"
    T5ForConditionalGeneration(transformers.T5Config(**tiny_model.config.t5.architecture)).save_pretrained(base_dir)
    config = VideoBLIP2Config.from_dict(tiny_model.config.to_dict())
    config.t5.name_or_path, config.t5.architecture = str(base_dir), None
    torch.manual_seed(3)
    model = VideoBLIP2(config, tiny_model.t5_tokenizer, tiny_model.qformer_tokenizer)
    _perturb_trainable(model)
    model.eval().save_pretrained(tmp_path / "m")
    saved = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert set(saved) == {n for n in model.state_dict() if not n.startswith("t5.") or "lora_" in n}
    assert any("lora_B" in n for n in saved)
    loaded = VideoBLIP2.from_pretrained(tmp_path / "m").eval()
    assert torch.equal(model(**feature_batch, labels=LABELS).logits, loaded(**feature_batch, labels=LABELS).logits)


def test_from_pretrained_errors(tiny_model, tmp_path):
    with pytest.raises(CheckpointError, match="no such model directory"):
        VideoBLIP2.from_pretrained(tmp_path / "nope")
    tiny_model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").rename(tmp_path / "weights.bak")
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        VideoBLIP2.from_pretrained(tmp_path / "m")
    (tmp_path / "weights.bak").rename(tmp_path / "m" / "model.safetensors")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["qformer"]["num_query_tokens"] = 5
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"query_tokens has shape \(1, 4, 64\)"):
        VideoBLIP2.from_pretrained(tmp_path / "m")


def test_sample_with_logprobs_matches_teacher_forcing(tiny_model, feature_batch):
    tiny_model.eval()
    torch.manual_seed(0)
    out = tiny_model.sample_with_logprobs(**feature_batch, num_samples=4, max_new_tokens=8, include_greedy=True)
    assert out.sequences.shape[0] == 12 and len(out.captions) == 12 and len(out.greedy_captions) == 3
    assert out.logprobs.requires_grad
    # reference: score each sample separately with the ordinary forward pass
    labels = out.sequences.masked_fill(out.token_mask == 0, -100)
    repeated = {k: v.repeat_interleave(4, dim=0) for k, v in feature_batch.items()}
    logits = tiny_model(**repeated, labels=labels).logits
    ref = torch.log_softmax(logits, -1).gather(-1, out.sequences.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(out.logprobs, (ref * out.token_mask).sum(1), atol=1e-4, rtol=1e-4)
    greedy = tiny_model.generate(**feature_batch, max_new_tokens=8)
    assert out.greedy_captions == greedy and all(greedy)  # decoded with the samples, yet the same captions
    assert out.captions != [g for g in greedy for _ in range(4)]  # the samples are not all greedy
    out.logprobs.sum().backward()
    assert tiny_model.video_query_tokens.grad.abs().sum() > 0


def test_greedy_rows_always_draw_their_argmax_and_leave_other_rows_alone():
    torch.manual_seed(0)
    scores = torch.randn(4, 50)
    rows = torch.tensor([False, True, False, True])
    processed = GreedyRows(rows)(None, scores.clone())
    assert torch.equal(processed[~rows], scores[~rows])
    assert torch.isfinite(processed[rows]).sum(dim=1).tolist() == [1, 1]
    probs = torch.softmax(processed / 7.0, dim=-1)  # a hot temperature changes nothing for the greedy rows
    draws = torch.multinomial(probs, num_samples=200, replacement=True)
    assert (draws[rows] == scores[rows].argmax(-1, keepdim=True)).all()
    assert len(set(draws[0].tolist())) > 10  # the sampling rows still sample


def test_frozen_t5_in_bf16_gives_the_same_loss_gradients_and_captions_under_autocast(tiny_frozen_t5_model,
                                                                                       feature_batch):
    import copy

    reference = tiny_frozen_t5_model.eval()
    model = copy.deepcopy(reference)
    frozen_linear = sum(m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
                        for m in model.t5.modules()
                        if isinstance(m, torch.nn.Linear) and not m.weight.requires_grad)
    assert model.cast_frozen_t5(torch.bfloat16) == frozen_linear > 0
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)  # LoRA, Q-Formers
    assert model.t5.get_base_model().lm_head.weight.dtype == torch.bfloat16
    assert model.t5.get_input_embeddings().weight.dtype == torch.float32
    results = []
    for m in (reference, model):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = m(**feature_batch, labels=LABELS).loss
            captions = m.generate(**feature_batch, max_new_tokens=6)
        loss.backward()
        results.append((loss.detach(), captions, {n: p.grad for n, p in m.named_parameters() if p.requires_grad}))
    (loss_ref, captions_ref, grads_ref), (loss, captions, grads) = results
    assert torch.equal(loss, loss_ref) and captions == captions_ref
    assert grads.keys() == grads_ref.keys() and all(torch.equal(grads[n], grads_ref[n]) for n in grads)


def test_cast_frozen_t5_leaves_a_trained_t5_alone(tiny_model):
    assert tiny_model.cast_frozen_t5() == 0
    assert all(p.dtype == torch.float32 for p in tiny_model.parameters())


def test_caption_token_mask():
    seq = torch.tensor([[5, 1, 0, 0], [5, 6, 7, 8], [1, 4, 1, 0]])
    assert caption_token_mask(seq, 1).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]


def test_untied_lm_head_like_flan_t5(tiny_model):
    """Flan-T5 has a separate output matrix; transformers 5 would tie it when building from a config."""
    base = tiny_model.t5.get_base_model()
    assert tiny_model.config.t5.architecture["tie_word_embeddings"] is False
    assert base.lm_head.weight is not base.shared.weight and not torch.equal(base.lm_head.weight, base.shared.weight)


def _saved_bytes_and_grads(model, batch, seed):
    """Loss, trainable gradients and the bytes autograd keeps for backward (train mode, dropout on)."""
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    torch.manual_seed(seed)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(**batch, labels=LABELS).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return loss.detach(), grads, sum(storages.values())


def test_activation_checkpointing_keeps_loss_and_gradients_and_saves_memory(tiny_frozen_t5_model, feature_batch):
    model = tiny_frozen_t5_model.train()  # dropout on: the recompute must replay the same masks
    loss_ref, grads_ref, saved_ref = _saved_bytes_and_grads(model, feature_batch, seed=3)
    saved = {}
    for parts, layers in ((["t5_encoder"], 2), (["t5_encoder", "t5_decoder", "qformers"], 8)):
        assert model.set_activation_checkpointing(parts) == layers  # 2 T5 blocks each, 2 layers per Q-Former
        loss, grads, saved[len(parts)] = _saved_bytes_and_grads(model, feature_batch, seed=3)
        assert torch.equal(loss, loss_ref)
        assert grads.keys() == grads_ref.keys() and all(torch.equal(grads[n], grads_ref[n]) for n in grads)
    assert saved_ref > saved[1] > saved[3]
    assert model.set_activation_checkpointing([]) == 0
    assert _saved_bytes_and_grads(model, feature_batch, seed=3)[2] == saved_ref
    with pytest.raises(ValueError, match=r"unknown activation-checkpointing part\(s\) \['t5'\]"):
        model.set_activation_checkpointing(["t5"])


PROMPTS = ["a dog:", "is the man talking about a car in a garage?", "who opens a door in a small room?"]


def test_per_sample_prompts_give_each_sample_its_own_output(tiny_model, feature_batch):
    """Mixed prompts of different lengths (padded): every sample gets what it gets alone with its prompt."""
    tiny_model.eval()
    lengths = [len(tiny_model.t5_tokenizer(p).input_ids) for p in PROMPTS]
    assert len(set(lengths)) == 3  # the batch really pads
    tokens = tiny_model.tokenize_prompts(PROMPTS)
    batched = tiny_model(**feature_batch, labels=LABELS, prompt=PROMPTS).logits
    pretokenized = tiny_model(**feature_batch, labels=LABELS, prompt=tokens).logits
    assert torch.equal(batched, pretokenized)
    answers = tiny_model.generate(**feature_batch, prompt=tokens, max_new_tokens=6)
    assert len(set(answers)) > 1  # the prompts change the outputs
    for i, prompt in enumerate(PROMPTS):
        alone = {k: v[i:i + 1] for k, v in feature_batch.items()}
        labels = LABELS[i:i + 1, :int((LABELS[i] != -100).sum())]
        logits = tiny_model(**alone, labels=labels, prompt=prompt).logits
        torch.testing.assert_close(batched[i:i + 1, :labels.shape[1]], logits, atol=1e-5, rtol=1e-5)
        assert tiny_model.generate(**alone, prompt=prompt, max_new_tokens=6) == [answers[i]]
    # a prompt changes the output: the same sample with another prompt differs
    other = {k: v[0:1] for k, v in feature_batch.items()}
    assert not torch.allclose(tiny_model(**other, labels=LABELS[:1], prompt=PROMPTS[1]).logits, batched[:1])


def test_single_string_prompt_path_is_unchanged(tiny_model, feature_batch):
    """One string: tokenized once (cached) as before this change; same as one copy per sample."""
    tiny_model.eval()
    cfg = tiny_model.config
    q = tiny_model.qformer_tokenizer(cfg.prompt, truncation=True, max_length=cfg.qformer.max_prompt_len,
                                     return_tensors="pt")
    t = tiny_model.t5_tokenizer(cfg.prompt, truncation=True, max_length=cfg.max_prompt_len, return_tensors="pt")
    cached = tiny_model._prompt_tokens(None, 3)
    for got, want in zip(cached, (q.input_ids, q.attention_mask, t.input_ids, t.attention_mask)):
        assert torch.equal(got, want.expand(3, -1))
    assert cfg.prompt in tiny_model._prompt_cache
    shared = tiny_model.encode(**feature_batch)
    per_sample = tiny_model.encode(**feature_batch, prompt=[cfg.prompt] * 3)
    assert torch.equal(shared[0], per_sample[0]) and torch.equal(shared[1], per_sample[1])
    with pytest.raises(ValueError, match="2 prompts for a batch of 3"):
        tiny_model.encode(**feature_batch, prompt=PROMPTS[:2])


def test_sample_with_logprobs_takes_per_sample_prompts(tiny_model, feature_batch):
    tiny_model.eval()
    torch.manual_seed(0)
    out = tiny_model.sample_with_logprobs(**feature_batch, num_samples=2, max_new_tokens=6, prompt=PROMPTS,
                                          include_greedy=True)
    assert out.greedy_captions == tiny_model.generate(**feature_batch, prompt=PROMPTS, max_new_tokens=6)
    labels = out.sequences.masked_fill(out.token_mask == 0, -100)
    repeated = {k: v.repeat_interleave(2, dim=0) for k, v in feature_batch.items()}
    logits = tiny_model(**repeated, labels=labels, prompt=[p for p in PROMPTS for _ in range(2)]).logits
    ref = torch.log_softmax(logits, -1).gather(-1, out.sequences.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(out.logprobs, (ref * out.token_mask).sum(1), atol=1e-4, rtol=1e-4)


def test_qa_prompt_template_round_trips_and_is_checked(tmp_path):
    config = VideoBLIP2Config()
    assert config.qa_prompt("Is the cello playing?") == "Question: Is the cello playing? Short answer:"
    config.qa_prompt_template = "Q: {question} A:"
    config.save(tmp_path / "c.json")
    again = VideoBLIP2Config.load(tmp_path / "c.json")
    assert again.qa_prompt_template == "Q: {question} A:" and again.qa_prompt("x") == "Q: x A:"
    for bad in ("no field", "{question} {other}", "{question} and {question}", "{"):
        with pytest.raises(ConfigError, match="qa_prompt_template"):
            VideoBLIP2Config(qa_prompt_template=bad)


def test_no_warning_on_build_run_save_load(tiny_model_factory, feature_batch, tmp_path):
    """Warnings as errors (pytest.ini ignores FutureWarning globally, so this test turns them back on):
    building (peft's `is_gradient_checkpointing` FutureWarning), forward, generate, save and load."""
    import warnings

    from videoblip2.modeling import VideoBLIP2

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = tiny_model_factory(seed=0)
        labels = torch.tensor([[5, 6, 1], [7, 1, -100], [8, 9, 1]])
        model(**feature_batch, labels=labels).loss.backward()
        model.generate(**feature_batch, max_new_tokens=3)
        model.save_pretrained(tmp_path / "m")
        VideoBLIP2.from_pretrained(tmp_path / "m")
