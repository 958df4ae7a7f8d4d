"""Model setup of bench/throughput.py: the sizes, the word-level tokenizer, ours and the reference on the same
random weights, ours' result-preserving optimisations, the optimizers and the random batches."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any
from collections.abc import Sequence

import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from torch import nn
from transformers import InstructBlipQFormerModel, PreTrainedTokenizerFast, T5ForConditionalGeneration

from bench.cider_speed import EXTRA, OBJECTS, PLACES, SUBJECTS, VERBS
from videoblip2.config import FLAN_T5_BASE_ARCHITECTURE, LoRAConfig, QFormerConfig, T5Config, VideoBLIP2Config
from videoblip2.data import lengths_to_mask
from videoblip2.modeling import VideoBLIP2, build_t5, qformer_hf_config
from videoblip2.tiny import bert_style_tokenizer

# 11 words + EOS = 12 T5 tokens with the word-level benchmark tokenizer ([CLS] + 11 + [SEP] on the Q-Former side).
PROMPT = "A short description of the video and of its sound:"
IMPLEMENTATIONS = ("reference", "ours")
DEFAULT_BATCH = {("real", "cuda"): 256, ("real", "cpu"): 4, ("small", "cuda"): 256, ("small", "cpu"): 8,
                 ("tiny", "cuda"): 8, ("tiny", "cpu"): 4}


class BenchmarkError(RuntimeError):
    """The benchmark cannot run as asked (no CUDA device, a size that does not fit, ...)."""


# ------------------------------------------------------------------------------------------ sizes
@dataclass
class Size:
    """Architecture and sequence lengths of one benchmark size."""

    qformer: dict[str, Any]
    t5: dict[str, Any]
    lora: dict[str, Any]
    frames: int = 32
    audio_windows: int = 16
    caption_len: int = 20  # EOS included; also the number of generated tokens

    def config(self) -> VideoBLIP2Config:
        return VideoBLIP2Config(
            max_frames=self.frames, max_audio_windows=self.audio_windows, qformer=QFormerConfig(**self.qformer),
            t5=T5Config(name_or_path="random-t5", architecture=dict(self.t5)), lora=LoRAConfig(**self.lora),
            qformer_tokenizer="word-level", prompt=PROMPT, max_caption_len=self.caption_len,
        )


SIZES: dict[str, Size] = {
    "real": Size(qformer={}, t5=dict(FLAN_T5_BASE_ARCHITECTURE), lora={}),
    "small": Size(
        qformer=dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                     encoder_width=512),
        t5=dict(FLAN_T5_BASE_ARCHITECTURE, d_model=256, d_kv=64, d_ff=768, num_layers=4, num_decoder_layers=4,
                num_heads=4),
        lora={},
    ),
    "tiny": Size(
        qformer=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     cross_attention_frequency=1, encoder_width=32, num_query_tokens=4, vocab_size=400,
                     max_position_embeddings=64),
        t5=dict(FLAN_T5_BASE_ARCHITECTURE, vocab_size=512, d_model=32, d_kv=16, d_ff=64, num_layers=2,
                num_decoder_layers=2, num_heads=2),
        lora=dict(r=4, alpha=8),
        frames=8, audio_windows=4, caption_len=8,
    ),
}


# ------------------------------------------------------------------------------------------ models
def caption_words() -> list[str]:
    """The words of the synthetic MSR-VTT-like captions (bench/cider_speed.py) and of the prompt."""
    words: dict[str, None] = {}
    for phrase in [*SUBJECTS, *VERBS, *OBJECTS, *PLACES, *EXTRA, PROMPT.lower().replace(":", " :")]:
        for word in phrase.split():
            words[word] = None
    return list(words)


def word_level_t5_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """T5-style ids (<pad>=0, </s>=1, <unk>=2; appends </s>) over the caption words, filled up to vocab_size.

    One token per word, so a 20-token caption decodes to 19 words; the filler words ("w0", "w1", ...) are what a
    random-weight model mostly generates, which gives the CIDEr-D reward captions of realistic length.
    """
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in caption_words():
        vocab.setdefault(word, len(vocab))
    if len(vocab) > vocab_size:
        raise BenchmarkError(f"T5 vocab_size={vocab_size} is smaller than the {len(vocab)} benchmark words")
    filler = 0
    while len(vocab) < vocab_size:
        vocab[f"w{filler}"] = len(vocab)
        filler += 1
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def random_t5(architecture: dict[str, Any], seed: int) -> T5ForConditionalGeneration:
    """A random T5 with its own lm_head, like flan-t5-base's checkpoint (`videoblip2.modeling.build_t5`)."""
    torch.manual_seed(seed)
    return build_t5(VideoBLIP2Config(t5=T5Config(architecture=dict(architecture))))


def build_models(size: str, seed: int = 0, with_reference: bool = True
                 ) -> tuple[VideoBLIP2, ReferenceVideoBLIP2 | None]:
    """Ours and the reference on the same random weights (the reference loads ours' state dict).

    `with_reference=False`: ours alone (the same weights), the reference is None.
    """
    spec = SIZES[size]
    config = spec.config()
    t5_tokenizer = word_level_t5_tokenizer(spec.t5["vocab_size"])
    qformer_tokenizer = bert_style_tokenizer([" ".join(caption_words())])
    t5 = random_t5(spec.t5, seed)
    reference_t5 = copy.deepcopy(t5) if with_reference else None  # before peft injects LoRA into ours' copy
    ours = VideoBLIP2(config, t5_tokenizer=t5_tokenizer, qformer_tokenizer=qformer_tokenizer, t5=t5)
    if not with_reference:
        return ours, None
    reference = ReferenceVideoBLIP2(config, t5_tokenizer, qformer_tokenizer, reference_t5)
    missing, unexpected = reference.load_state_dict(ours.state_dict(), strict=True)
    if missing or unexpected:
        raise BenchmarkError(f"state dicts differ: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return ours, reference


class ReferenceVideoBLIP2(nn.Module):
    """The straightforward version of the same architecture, as a user would glue it from stock classes.

    Same submodule names as `VideoBLIP2`, so `load_state_dict(ours.state_dict())` gives the same weights. Nothing
    is cached (the prompt is tokenized on each call) and every trainable-looking parameter trains.
    """

    def __init__(self, config: VideoBLIP2Config, t5_tokenizer, qformer_tokenizer,
                 t5: T5ForConditionalGeneration):
        super().__init__()
        self.config = config
        self.t5_tokenizer = t5_tokenizer
        self.qformer_tokenizer = qformer_tokenizer
        q = config.qformer
        qformer_config = qformer_hf_config(config, vocab_size=max(q.vocab_size, len(qformer_tokenizer)))
        self.video_input_proj = nn.Linear(config.video_dim, q.encoder_width)
        self.video_time_embedding = nn.Parameter(torch.zeros(1, config.max_frames, q.encoder_width))
        self.video_input_norm = nn.LayerNorm(q.encoder_width)
        self.video_query_tokens = nn.Parameter(torch.zeros(1, q.num_query_tokens, q.hidden_size))
        self.video_qformer = InstructBlipQFormerModel(qformer_config)
        self.audio_upscaler = nn.Linear(config.audio_dim, q.encoder_width)
        self.audio_time_embedding = nn.Parameter(torch.zeros(1, config.max_audio_windows, q.encoder_width))
        self.audio_input_norm = nn.LayerNorm(q.encoder_width)
        self.audio_query_tokens = nn.Parameter(torch.zeros(1, q.num_query_tokens, q.hidden_size))
        self.audio_qformer = InstructBlipQFormerModel(qformer_config)
        self.proj_video = nn.Linear(q.hidden_size, t5.config.d_model)
        self.proj_audio = nn.Linear(q.hidden_size, t5.config.d_model)
        lora = config.lora
        self.t5 = get_peft_model(t5, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                target_modules=list(lora.target_modules), bias="none"))

    @property
    def device(self) -> torch.device:
        return self.proj_video.weight.device

    def encode(self, video, video_mask, audio, audio_mask) -> tuple[torch.Tensor, torch.Tensor]:
        """T5 encoder input [video queries, audio queries, prompt] (B, 2Q+P, d) and its mask (B, 2Q+P)."""
        batch, device = video.shape[0], self.device
        prompts = [self.config.prompt] * batch
        q = self.qformer_tokenizer(prompts, return_tensors="pt", truncation=True,
                                   max_length=self.config.qformer.max_prompt_len).to(device)
        t = self.t5_tokenizer(prompts, return_tensors="pt", truncation=True,
                              max_length=self.config.max_prompt_len).to(device)
        has_audio = audio_mask.any(dim=1)
        audio = audio * audio_mask.unsqueeze(-1)
        audio_mask = audio_mask.clone()
        audio_mask[~has_audio, 0] = True  # a silent video keeps one zero window visible; T5 never sees its queries
        branches = []
        for proj, time_embedding, norm, query_tokens, qformer, out_proj, x, mask in (
            (self.video_input_proj, self.video_time_embedding, self.video_input_norm, self.video_query_tokens,
             self.video_qformer, self.proj_video, video, video_mask),
            (self.audio_upscaler, self.audio_time_embedding, self.audio_input_norm, self.audio_query_tokens,
             self.audio_qformer, self.proj_audio, audio, audio_mask),
        ):
            x = norm(proj(x) + time_embedding[:, : x.shape[1]])
            queries = query_tokens.expand(batch, -1, -1)
            out = qformer(input_ids=q.input_ids,
                          attention_mask=torch.cat([torch.ones(queries.shape[:2], dtype=q.attention_mask.dtype,
                                                               device=device), q.attention_mask], dim=1),
                          query_embeds=queries, encoder_hidden_states=x, encoder_attention_mask=mask.long())
            branches.append(out_proj(out.last_hidden_state[:, : queries.shape[1]]))
        prompt_embeds = self.t5.get_input_embeddings()(t.input_ids).to(branches[0].dtype)
        n_q = branches[0].shape[1]
        mask = torch.cat([torch.ones(batch, n_q, dtype=torch.long, device=device),
                          has_audio.long().unsqueeze(1).expand(batch, n_q), t.attention_mask.long()], dim=1)
        return torch.cat([*branches, prompt_embeds], dim=1), mask

    def forward(self, video, video_mask, audio, audio_mask, labels=None):
        inputs_embeds, attention_mask = self.encode(video, video_mask, audio, audio_mask)
        return self.t5(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels)

    @torch.no_grad()
    def generate(self, video, video_mask, audio, audio_mask, **kwargs) -> torch.Tensor:
        inputs_embeds, attention_mask = self.encode(video, video_mask, audio, audio_mask)
        return self.t5.generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs)


def optimise_ours(model: VideoBLIP2, device: torch.device, checkpointing: Sequence[str] = ()) -> dict[str, Any]:
    """Changes to ours that keep every result: on CUDA, the frozen T5 linear weights stored in bf16.

    `VideoBLIP2.cast_frozen_t5`, as train_ce/train_scst do under bf16 autocast: autocast casts every linear
    weight to bf16 on each call, so the stored bf16 copies give the same products without the casts.
    `checkpointing` parts (`--activation-checkpointing`) recompute their layers in CE training's backward.
    """
    done: dict[str, Any] = {"activation_checkpointing": list(checkpointing),
                            "checkpointed_layers": model.set_activation_checkpointing(checkpointing)}
    if device.type != "cuda":
        return {"frozen_t5_linear_bf16": False, **done}
    return {"frozen_t5_linear_bf16": True, "bf16_parameters": model.cast_frozen_t5(torch.bfloat16), **done}


def make_optimizer(model: nn.Module, impl: str, device: torch.device, lr: float = 1e-5) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if impl == "ours" and device.type == "cuda":
        return torch.optim.AdamW(params, lr=lr, fused=True)
    return torch.optim.AdamW(params, lr=lr)


# ------------------------------------------------------------------------------------------ batches
def random_batch(batch_size: int, spec: Size, config: VideoBLIP2Config, vocab_size: int, eos: int, seed: int,
                 device: torch.device) -> dict[str, torch.Tensor]:
    """Random features and labels: every frame present, 8-16 audio windows, 1 video in 10 silent."""
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch_size, spec.frames, config.video_dim, generator=g)
    audio = torch.randn(batch_size, spec.audio_windows, config.audio_dim, generator=g)
    audio_len = torch.randint(max(1, spec.audio_windows // 2), spec.audio_windows + 1, (batch_size,), generator=g)
    audio_len[torch.rand(batch_size, generator=g) < 0.1] = 0
    labels = torch.randint(3, vocab_size, (batch_size, spec.caption_len), generator=g)
    labels[:, -1] = eos
    batch = {"video": video, "video_mask": torch.ones(batch_size, spec.frames, dtype=torch.bool),
             "audio": audio, "audio_mask": lengths_to_mask(audio_len, spec.audio_windows), "labels": labels}
    return {k: v.to(device) for k, v in batch.items()}


def model_inputs(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: batch[k] for k in ("video", "video_mask", "audio", "audio_mask")}


def repeat_inputs(batch: dict[str, Any], k: int) -> dict[str, torch.Tensor]:
    return {key: v.repeat_interleave(k, dim=0) for key, v in model_inputs(batch).items()}
