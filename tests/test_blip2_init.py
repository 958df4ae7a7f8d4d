"""Q-Former initialisation from BERT + BLIP-2 (LAVIS .pth and Hugging Face directories), by value."""

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertModel,
    Blip2Config,
    Blip2ForConditionalGeneration,
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    InstructBlipQFormerConfig,
    InstructBlipQFormerModel,
    T5Config,
)

from videoblip2.blip2_init import (
    CheckpointKeyError,
    CheckpointNotFoundError,
    CheckpointShapeError,
    copy_qformer,
    infer_qformer_dims,
    init_qformer,
    read_state_dict,
)

HIDDEN, LAYERS, HEADS, FFN, ENC, QUERIES, VOCAB, POSITIONS = 32, 2, 4, 64, 48, 4, 100, 64
QFORMER = dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
               intermediate_size=FFN, cross_attention_frequency=2, encoder_hidden_size=ENC,
               max_position_embeddings=POSITIONS)

# LAVIS Qformer.py naming of one BertLayer (relative to Qformer.bert.encoder.layer.N.) -> InstructBLIP naming,
# written out by hand so the test does not reuse the loader's renaming rules.
LAVIS_TO_HF_LAYER = {
    "attention.self.query.weight": "attention.attention.query.weight",
    "attention.self.query.bias": "attention.attention.query.bias",
    "attention.self.key.weight": "attention.attention.key.weight",
    "attention.self.key.bias": "attention.attention.key.bias",
    "attention.self.value.weight": "attention.attention.value.weight",
    "attention.self.value.bias": "attention.attention.value.bias",
    "attention.output.dense.weight": "attention.output.dense.weight",
    "attention.output.dense.bias": "attention.output.dense.bias",
    "attention.output.LayerNorm.weight": "attention.output.LayerNorm.weight",
    "attention.output.LayerNorm.bias": "attention.output.LayerNorm.bias",
    "intermediate_query.dense.weight": "intermediate_query.dense.weight",
    "intermediate_query.dense.bias": "intermediate_query.dense.bias",
    "output_query.dense.weight": "output_query.dense.weight",
    "output_query.dense.bias": "output_query.dense.bias",
    "output_query.LayerNorm.weight": "output_query.LayerNorm.weight",
    "output_query.LayerNorm.bias": "output_query.LayerNorm.bias",
}
LAVIS_TO_HF_CROSS = {
    "crossattention.self.query.weight": "crossattention.attention.query.weight",
    "crossattention.self.query.bias": "crossattention.attention.query.bias",
    "crossattention.self.key.weight": "crossattention.attention.key.weight",
    "crossattention.self.key.bias": "crossattention.attention.key.bias",
    "crossattention.self.value.weight": "crossattention.attention.value.weight",
    "crossattention.self.value.bias": "crossattention.attention.value.bias",
    "crossattention.output.dense.weight": "crossattention.output.dense.weight",
    "crossattention.output.dense.bias": "crossattention.output.dense.bias",
    "crossattention.output.LayerNorm.weight": "crossattention.output.LayerNorm.weight",
    "crossattention.output.LayerNorm.bias": "crossattention.output.LayerNorm.bias",
}
LAVIS_TO_HF_TEXT = {  # only in stage-1 checkpoints; stage-2 T5 checkpoints drop it
    "intermediate.dense.weight": "intermediate.dense.weight",
    "intermediate.dense.bias": "intermediate.dense.bias",
    "output.dense.weight": "output.dense.weight",
    "output.dense.bias": "output.dense.bias",
    "output.LayerNorm.weight": "output.LayerNorm.weight",
    "output.LayerNorm.bias": "output.LayerNorm.bias",
}


def new_qformer(seed=123, num_queries=QUERIES, **overrides):
    torch.manual_seed(seed)
    qformer = InstructBlipQFormerModel(InstructBlipQFormerConfig(**{**QFORMER, **overrides}))
    query_tokens = torch.nn.Parameter(torch.randn(1, num_queries, HIDDEN))
    return qformer, query_tokens


def params(qformer, query_tokens):
    out = {k: v.detach().clone() for k, v in qformer.named_parameters()}
    out["query_tokens"] = query_tokens.detach().clone()
    return out


def tiny_t5():
    return T5Config(vocab_size=VOCAB, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_decoder_layers=1,
                    num_heads=4, decoder_start_token_id=0).to_dict()


def lavis_shape(name, enc):
    """Shape of a LAVIS BertLayer tensor (name relative to the layer)."""
    is_weight = name.endswith("dense.weight") or (name.endswith("weight") and ".self." in name)
    if name.startswith("crossattention.self.") and (".key." in name or ".value." in name) and is_weight:
        return (HIDDEN, enc)  # cross-attention reads the vision features
    if name.startswith("intermediate"):
        return (FFN, HIDDEN) if is_weight else (FFN,)
    if name.startswith("output") and is_weight:
        return (HIDDEN, FFN)
    return (HIDDEN, HIDDEN) if is_weight else (HIDDEN,)


def lavis_checkpoint(stage=2, seed=7, enc=ENC, vocab=VOCAB):
    """(LAVIS state dict, {LAVIS key: InstructBLIP target}) with random values and LAVIS's key names."""
    g = torch.Generator().manual_seed(seed)
    sd, expected = {}, {}

    def put(key, shape, target=None):
        sd[key] = torch.randn(*shape, generator=g)
        if target:
            expected[key] = target

    put("query_tokens", (1, QUERIES, HIDDEN), "query_tokens")
    put("Qformer.bert.embeddings.LayerNorm.weight", (HIDDEN,), "embeddings.layernorm.weight")
    put("Qformer.bert.embeddings.LayerNorm.bias", (HIDDEN,), "embeddings.layernorm.bias")
    sd["Qformer.bert.embeddings.position_ids"] = torch.arange(POSITIONS)[None]
    if stage == 1:
        put("Qformer.bert.embeddings.word_embeddings.weight", (vocab, HIDDEN), "embeddings.word_embeddings.weight")
        put("Qformer.bert.embeddings.position_embeddings.weight", (POSITIONS, HIDDEN),
            "embeddings.position_embeddings.weight")
    for n in range(LAYERS):
        table = dict(LAVIS_TO_HF_LAYER)
        if n % 2 == 0:
            table.update(LAVIS_TO_HF_CROSS)
        if stage == 1:
            table.update(LAVIS_TO_HF_TEXT)
        for lavis, hf in table.items():
            shape = lavis_shape(lavis, enc)
            put(f"Qformer.bert.encoder.layer.{n}.{lavis}", shape, f"encoder.layer.{n}.{hf}")
    # Parts of BLIP-2 that are not the Q-Former: EVA ViT-g, its LayerNorm, the T5 projection, stage-1 heads.
    put("visual_encoder.cls_token", (1, 1, ENC))
    put("visual_encoder.pos_embed", (1, 5, ENC))
    put("visual_encoder.patch_embed.proj.weight", (ENC, 3, 14, 14))
    put("visual_encoder.blocks.0.attn.qkv.weight", (3 * ENC, ENC))
    put("visual_encoder.blocks.0.attn.q_bias", (ENC,))
    put("ln_vision.weight", (ENC,))
    put("ln_vision.bias", (ENC,))
    put("t5_proj.weight", (16, HIDDEN))
    put("t5_proj.bias", (16,))
    if stage == 1:
        put("Qformer.cls.predictions.bias", (vocab,))
        put("Qformer.cls.predictions.transform.dense.weight", (HIDDEN, HIDDEN))
        put("vision_proj.weight", (8, HIDDEN))
        put("text_proj.weight", (8, HIDDEN))
        put("itm_head.weight", (2, HIDDEN))
        sd["temp"] = torch.tensor(0.07)
    return sd, expected


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    torch.manual_seed(1)
    config = BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                        intermediate_size=FFN, max_position_embeddings=POSITIONS)
    path = tmp_path_factory.mktemp("bert")
    BertForMaskedLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def bert_sd(bert_dir):
    return load_file(bert_dir / "model.safetensors")


def bert_to_hf(key):
    """bert-base key -> InstructBLIP Q-Former name, by hand (None for keys with no Q-Former counterpart)."""
    table = {
        "bert.embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
        "bert.embeddings.position_embeddings.weight": "embeddings.position_embeddings.weight",
        "bert.embeddings.LayerNorm.weight": "embeddings.layernorm.weight",
        "bert.embeddings.LayerNorm.bias": "embeddings.layernorm.bias",
    }
    for n in range(LAYERS):
        for lavis, hf in {**LAVIS_TO_HF_LAYER, **LAVIS_TO_HF_TEXT}.items():
            if "_query" not in lavis:
                table[f"bert.encoder.layer.{n}.{lavis}"] = f"encoder.layer.{n}.{hf}"
    return table.get(key)


def assert_report_covers(report, source, state_dict):
    assert sorted(e.key for e in report.entries if e.source == source) == sorted(state_dict)


# ---------------------------------------------------------------------------------------------- BERT only
def test_bert_only_loads_text_side_and_copies_query_ffn(bert_dir, bert_sd):
    qformer, query_tokens = new_qformer()
    before = params(qformer, query_tokens)
    report = init_qformer(qformer, query_tokens, bert=str(bert_dir), blip2=None)
    after = params(qformer, query_tokens)

    mapped = {k: bert_to_hf(k) for k in bert_sd if bert_to_hf(k)}
    assert len(mapped) == 4 + LAYERS * 16
    for key, target in mapped.items():
        assert torch.equal(after[target], bert_sd[key]), key
    for n in range(LAYERS):  # LAVIS: the query FFN starts as a copy of BERT's text FFN
        for name in LAVIS_TO_HF_TEXT:
            query_name = name.replace("intermediate.", "intermediate_query.").replace("output.", "output_query.")
            assert torch.equal(after[f"encoder.layer.{n}.{query_name}"], bert_sd[f"bert.encoder.layer.{n}.{name}"])

    # Cross-attention and the queries are BLIP-2's: with BERT alone they keep their initialisation.
    untouched = [n for n in after if "crossattention" in n] + ["query_tokens"]
    assert sorted(report.not_written) == sorted(untouched)
    for name in untouched:
        assert torch.equal(after[name], before[name])
    assert_report_covers(report, "bert", bert_sd)
    skipped = {e.key: e.reason for e in report.skipped("bert")}
    assert set(skipped) == {k for k in bert_sd if k.startswith("cls.")} | {
        "bert.embeddings.token_type_embeddings.weight"}
    assert "token-type" in skipped["bert.embeddings.token_type_embeddings.weight"]
    assert f"{len(bert_sd)} keys, {len(mapped)} loaded, {len(skipped)} skipped" in report.summary()


def test_bert_without_prefix_with_gamma_beta_names(tmp_path, bert_sd):
    torch.manual_seed(2)
    config = BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                        intermediate_size=FFN, max_position_embeddings=POSITIONS)
    sd = BertModel(config).state_dict()  # no "bert." prefix, with a pooler and a position_ids buffer
    sd["embeddings.position_ids"] = torch.arange(POSITIONS)[None]
    old = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
           for k, v in sd.items()}
    assert "embeddings.LayerNorm.gamma" in old and "pooler.dense.weight" in old
    (tmp_path / "bert").mkdir()
    torch.save(old, tmp_path / "bert" / "pytorch_model.bin")

    qformer, query_tokens = new_qformer()
    report = init_qformer(qformer, query_tokens, bert=tmp_path / "bert", blip2=None)
    after = params(qformer, query_tokens)
    assert torch.equal(after["embeddings.layernorm.weight"], sd["embeddings.LayerNorm.weight"])
    assert torch.equal(after["encoder.layer.1.output.LayerNorm.bias"], sd["encoder.layer.1.output.LayerNorm.bias"])
    assert torch.equal(after["encoder.layer.1.output_query.LayerNorm.bias"],
                       sd["encoder.layer.1.output.LayerNorm.bias"])
    assert torch.equal(after["encoder.layer.0.attention.attention.value.weight"],
                       sd["encoder.layer.0.attention.self.value.weight"])
    assert_report_covers(report, "bert", old)
    reasons = {e.key: e.reason for e in report.skipped()}
    assert set(reasons) == {"pooler.dense.weight", "pooler.dense.bias", "embeddings.position_ids",
                            "embeddings.token_type_embeddings.weight"}


# ---------------------------------------------------------------------------------------------- LAVIS .pth
def test_lavis_stage2_over_bert(tmp_path, bert_dir, bert_sd):
    sd, expected = lavis_checkpoint(stage=2)
    path = tmp_path / "blip2_pretrained_flant5xl.pth"
    torch.save({"model": sd, "epoch": 3}, path)

    qformer, query_tokens = new_qformer()
    report = init_qformer(qformer, query_tokens, bert=str(bert_dir), blip2=str(path))
    after = params(qformer, query_tokens)

    for key, target in expected.items():
        assert torch.equal(after[target], sd[key]), key
    # Stage 2 drops the text side: embeddings and text FFN stay BERT's, the query FFN is BLIP-2's.
    assert torch.equal(after["embeddings.word_embeddings.weight"], bert_sd["bert.embeddings.word_embeddings.weight"])
    assert torch.equal(after["embeddings.position_embeddings.weight"],
                       bert_sd["bert.embeddings.position_embeddings.weight"])
    assert torch.equal(after["encoder.layer.0.intermediate.dense.weight"],
                       bert_sd["bert.encoder.layer.0.intermediate.dense.weight"])
    assert torch.equal(after["encoder.layer.0.intermediate_query.dense.weight"],
                       sd["Qformer.bert.encoder.layer.0.intermediate_query.dense.weight"])
    assert not torch.equal(after["encoder.layer.0.intermediate_query.dense.weight"],
                           after["encoder.layer.0.intermediate.dense.weight"])

    assert report.not_written == []
    assert_report_covers(report, "blip2", sd)
    assert_report_covers(report, "bert", bert_sd)
    assert {e.key: e.target for e in report.loaded("blip2")} == expected
    reasons = {e.key: e.reason for e in report.skipped("blip2")}
    assert set(reasons) == set(sd) - set(expected)
    assert "vision encoder" in reasons["visual_encoder.blocks.0.attn.qkv.weight"]
    assert "ViT" in reasons["ln_vision.weight"]
    assert "16 wide" in reasons["t5_proj.weight"] and "flan-t5-base" in reasons["t5_proj.weight"]
    assert "position_ids" in reasons["Qformer.bert.embeddings.position_ids"]

    kept = set(report.kept_from_bert())
    assert kept == {"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight"} | {
        f"encoder.layer.{n}.{hf}" for n in range(LAYERS) for hf in LAVIS_TO_HF_TEXT.values()}
    bert_entry = {e.key: e for e in report.entries if e.source == "bert"}
    assert "overridden by blip2" in bert_entry["bert.encoder.layer.0.attention.self.query.weight"].note
    assert "overridden" not in bert_entry["bert.encoder.layer.0.intermediate.dense.weight"].note  # text copy stays
    summary = report.summary()
    assert "drop the Q-Former text side" in summary and "encoder.layer.{0-1}.intermediate.*" in summary
    assert str(report).count("\n") > len(sd) + len(bert_sd)


def test_lavis_stage1_with_dec_token_and_heads(tmp_path, bert_dir, bert_sd):
    sd, expected = lavis_checkpoint(stage=1, vocab=VOCAB + 1)  # LAVIS's tokenizer adds [DEC]
    path = tmp_path / "blip2_pretrained.pth"
    torch.save({"model": sd}, path)

    # A Q-Former without the [DEC] row grows to 101 rows (as LAVIS's resize_token_embeddings does).
    qformer, query_tokens = new_qformer()
    report = init_qformer(qformer, query_tokens, bert=bert_dir, blip2=path)
    assert report.vocab_resized == (VOCAB, VOCAB + 1) and qformer.config.vocab_size == VOCAB + 1
    assert torch.equal(qformer.embeddings.word_embeddings.weight, sd["Qformer.bert.embeddings.word_embeddings.weight"])
    assert "grown from 100 to 101 rows" in report.summary()
    # many more rows is another vocabulary, not [DEC]: still an error that names vocab_size
    big, _ = lavis_checkpoint(stage=1, vocab=VOCAB + 40)
    qformer, query_tokens = new_qformer()
    with pytest.raises(CheckpointShapeError, match=r"vocab_size"):
        init_qformer(qformer, query_tokens, bert=None, blip2=big)
    assert qformer.embeddings.word_embeddings.weight.shape[0] == VOCAB  # nothing changed

    # A Q-Former with the [DEC] row: BERT fills rows 0..99, BLIP-2 then all 101.
    qformer, query_tokens = new_qformer(vocab_size=VOCAB + 1)
    before = params(qformer, query_tokens)
    report = init_qformer(qformer, query_tokens, bert=bert_dir, blip2=path)
    after = params(qformer, query_tokens)
    for key, target in expected.items():
        assert torch.equal(after[target], sd[key]), key
    assert "rows 0..99 of 101" in {e.key: e.note for e in report.entries}["bert.embeddings.word_embeddings.weight"]
    reasons = {e.key: e.reason for e in report.skipped("blip2")}
    for head in ("Qformer.cls.predictions.bias", "vision_proj.weight", "text_proj.weight", "itm_head.weight", "temp"):
        assert "stage-1" in reasons[head]
    assert report.kept_from_bert() == []

    # BERT alone into the 101-row vocabulary: the extra row keeps its initialisation.
    qformer, query_tokens = new_qformer(vocab_size=VOCAB + 1)
    init_qformer(qformer, query_tokens, bert=bert_dir, blip2=None)
    emb = qformer.embeddings.word_embeddings.weight
    assert torch.equal(emb[:VOCAB], bert_sd["bert.embeddings.word_embeddings.weight"])
    assert torch.equal(emb[VOCAB:], before["embeddings.word_embeddings.weight"][VOCAB:])


# ---------------------------------------------------------------------------------------------- HF directories
def test_hf_instructblip_directory(tmp_path, bert_dir):
    torch.manual_seed(3)
    vision = dict(hidden_size=ENC, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                  image_size=28, patch_size=14)
    config = InstructBlipConfig(vision_config=vision, qformer_config=QFORMER, text_config=tiny_t5(),
                                num_query_tokens=QUERIES)
    source = InstructBlipForConditionalGeneration(config)
    # Sharded, to go through model.safetensors.index.json.
    source.save_pretrained(tmp_path / "instructblip", max_shard_size="20KB")
    assert (tmp_path / "instructblip" / "model.safetensors.index.json").exists()
    reference = {k: v.detach().clone() for k, v in source.qformer.named_parameters()}
    reference["query_tokens"] = source.query_tokens.detach().clone()

    qformer, query_tokens = new_qformer()
    report = init_qformer(qformer, query_tokens, bert=bert_dir, blip2=tmp_path / "instructblip")
    after = params(qformer, query_tokens)
    assert set(after) == set(reference)
    for name, value in reference.items():
        assert torch.equal(after[name], value), name
    stored = read_state_dict(tmp_path / "instructblip")
    assert_report_covers(report, "blip2", stored)
    assert {e.key for e in report.loaded("blip2")} == {f"qformer.{n}" for n in reference if n != "query_tokens"} | {
        "query_tokens"}
    reasons = {r for r in (e.reason for e in report.skipped("blip2"))}
    assert any("vision encoder" in r for r in reasons) and any("language model" in r for r in reasons)
    assert report.kept_from_bert() == [] and report.not_written == []


def test_hf_blip2_directory(tmp_path, bert_dir, bert_sd):
    torch.manual_seed(4)
    vision = dict(hidden_size=ENC, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                  image_size=28, patch_size=14)
    config = Blip2Config(vision_config=vision, qformer_config=QFORMER, text_config=tiny_t5(),
                         num_query_tokens=QUERIES)
    source = Blip2ForConditionalGeneration(config)
    source.save_pretrained(tmp_path / "blip2")
    stored = read_state_dict(tmp_path / "blip2")
    assert "qformer.layernorm.weight" in stored and "qformer.encoder.layer.0.intermediate.dense.weight" not in stored

    qformer, query_tokens = new_qformer()
    report = init_qformer(qformer, query_tokens, bert=bert_dir, blip2=tmp_path / "blip2")
    after = params(qformer, query_tokens)
    assert torch.equal(after["embeddings.layernorm.weight"], source.qformer.layernorm.weight)
    assert torch.equal(after["query_tokens"], source.query_tokens)
    for name, value in source.qformer.encoder.named_parameters():
        assert torch.equal(after[f"encoder.{name}"], value), name
    # Blip2's Q-Former has no text side: those come from BERT.
    assert torch.equal(after["encoder.layer.1.output.dense.weight"], bert_sd["bert.encoder.layer.1.output.dense.weight"])
    assert torch.equal(after["embeddings.word_embeddings.weight"], bert_sd["bert.embeddings.word_embeddings.weight"])
    assert_report_covers(report, "blip2", stored)
    assert len(report.kept_from_bert()) == 2 + LAYERS * 6


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("key, shape, message", [
    ("Qformer.bert.encoder.layer.0.attention.self.rotary.weight", (HIDDEN, HIDDEN), "no such Q-Former parameter"),
    ("Qformer.adapter.weight", (HIDDEN,), "maps to no Q-Former parameter and is on no skip list"),
    ("Qformer.bert.encoder.layer.5.attention.self.query.weight", (HIDDEN, HIDDEN), "num_hidden_layers=2"),
    ("Qformer.bert.encoder.layer.1.crossattention.self.query.weight", (HIDDEN, HIDDEN),
     "cross_attention_frequency=2"),
])
def test_unknown_key_raises_and_changes_nothing(tmp_path, key, shape, message):
    sd, _ = lavis_checkpoint()
    sd[key] = torch.zeros(shape)
    path = tmp_path / "odd.pth"
    torch.save({"model": sd}, path)
    qformer, query_tokens = new_qformer()
    before = params(qformer, query_tokens)
    with pytest.raises(CheckpointKeyError) as err:
        init_qformer(qformer, query_tokens, bert=None, blip2=path)
    assert str(path) in str(err.value) and key in str(err.value) and message in str(err.value)
    after = params(qformer, query_tokens)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_two_keys_for_one_parameter_raise():
    sd = {"qformer.layernorm.weight": torch.ones(HIDDEN), "qformer.embeddings.layernorm.weight": torch.ones(HIDDEN)}
    with pytest.raises(CheckpointKeyError, match="both map to 'embeddings.layernorm.weight'"):
        init_qformer(*new_qformer(), bert=None, blip2=sd)


def test_shape_mismatch_names_the_config_field(tmp_path):
    sd, _ = lavis_checkpoint(enc=40)  # cross-attention trained on 40-wide features; the Q-Former reads 48
    path = tmp_path / "narrow.pth"
    torch.save(sd, path)  # a flat state dict works too
    with pytest.raises(CheckpointShapeError) as err:
        init_qformer(*new_qformer(), bert=None, blip2=path)
    text = str(err.value)
    assert "crossattention.self.key.weight" in text and "[32, 40]" in text and "[32, 48]" in text
    assert "encoder_hidden_size" in text and "to 40" in text

    sd, _ = lavis_checkpoint()
    with pytest.raises(CheckpointShapeError, match="num_queries|num_query_tokens"):
        init_qformer(*new_qformer(num_queries=8), bert=None, blip2=sd)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="no such file"):
        read_state_dict(tmp_path / "missing.pth")
    with pytest.raises(CheckpointNotFoundError, match="none of"):
        read_state_dict(tmp_path)
    with pytest.raises(CheckpointNotFoundError, match="cached hub repository"):
        read_state_dict("tiny-org/not-cached", cache_dir=str(tmp_path))


# ---------------------------------------------------------------------------------------------- helpers
def test_hub_id_resolves_from_the_local_cache(tmp_path, bert_sd):
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--tiny-org--tiny-bert"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    save_file(dict(bert_sd), repo / "snapshots" / revision / "model.safetensors")
    loaded = read_state_dict("tiny-org/tiny-bert", cache_dir=str(tmp_path))
    assert loaded.keys() == bert_sd.keys() and all(torch.equal(loaded[k], bert_sd[k]) for k in bert_sd)


def test_infer_dims_and_copy_to_a_second_branch(tmp_path):
    sd, _ = lavis_checkpoint(stage=1)
    assert infer_qformer_dims(sd) == dict(num_query_tokens=QUERIES, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                                          encoder_hidden_size=ENC, cross_attention_frequency=LAYERS,
                                          intermediate_size=FFN, vocab_size=VOCAB,
                                          max_position_embeddings=POSITIONS)
    video, video_queries = new_qformer(seed=1)
    init_qformer(video, video_queries, bert=None, blip2=sd)
    audio, audio_queries = new_qformer(seed=2)
    copy_qformer(video, video_queries, audio, audio_queries)
    a, v = params(audio, audio_queries), params(video, video_queries)
    assert all(torch.equal(a[n], v[n]) for n in v)
    with torch.no_grad():
        audio_queries.add_(1.0)
        audio.embeddings.layernorm.weight.add_(1.0)
    assert not torch.equal(video_queries, audio_queries)  # copies, not shared tensors
    assert not torch.equal(video.embeddings.layernorm.weight, audio.embeddings.layernorm.weight)


def test_videoblip2_loads_a_checkpoint_with_the_dec_row(tmp_path, tiny_model):
    """An InstructBLIP / LAVIS stage-1 Q-Former vocabulary (tokenizer + [DEC]) loads without editing
    qformer.vocab_size; the grown vocabulary survives save_pretrained / from_pretrained."""
    from videoblip2.modeling import VideoBLIP2

    model = tiny_model
    rows = model.video_qformer.config.vocab_size
    torch.manual_seed(5)
    checkpoint = {f"qformer.{k}": torch.randn_like(v) for k, v in model.video_qformer.state_dict().items()
                  if not k.endswith("position_ids")}
    checkpoint["qformer.embeddings.word_embeddings.weight"] = torch.randn(rows + 1, model.config.qformer.hidden_size)
    checkpoint["query_tokens"] = torch.randn_like(model.video_query_tokens)
    report = model.init_qformers(blip2=checkpoint, verbose=False)
    assert report.vocab_resized == (rows, rows + 1)
    assert model.config.qformer.vocab_size == rows + 1
    for qformer in (model.video_qformer, model.audio_qformer):
        assert torch.equal(qformer.embeddings.word_embeddings.weight,
                           checkpoint["qformer.embeddings.word_embeddings.weight"])
    model.save_pretrained(tmp_path / "m")
    loaded = VideoBLIP2.from_pretrained(tmp_path / "m")
    assert torch.equal(loaded.audio_qformer.embeddings.word_embeddings.weight,
                       checkpoint["qformer.embeddings.word_embeddings.weight"])
    batch = dict(video=torch.randn(1, 3, model.config.video_dim), video_mask=torch.ones(1, 3, dtype=torch.bool))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(**batch)[0], model.encode(**batch)[0])
