"""Throughput of VideoBLIP2 against a straightforward reference: CE training, SCST, generation, data.

Two implementations of the same architecture run on the same weights (the reference's state dict is copied
from ours) and the same batches:

* reference: what a user writes first. The two InstructBLIP Q-Formers and the peft-LoRA Flan-T5 glued
  from the stock `transformers` / `peft` classes (`ReferenceVideoBLIP2` below): fp32 weights, bf16
  autocast on CUDA, plain `torch.optim.AdamW`, the prompt tokenized on every call, SCST written with
  `generate` twice (greedy, then K samples) and a teacher-forced pass over the K copies of each video.
* ours: `videoblip2.modeling.VideoBLIP2` as it is (`sample_with_logprobs` encodes each video once for
  its K samples), plus what changes no result: on CUDA the frozen T5 linear weights stored in bf16
  (autocast casts them to bf16 anyway), fused AdamW; optional `--compile` (torch.compile of the training
  forward) and `--static-cache` (static KV cache for `generate` and SCST sampling).

Checks (eval mode, same weights, same batch): the CE loss of both equal within tolerance (fp32 on CPU:
1e-5 relative, bf16 on CUDA: 1e-2), greedy and beam-3 token ids identical, and the reference's
teacher-forced log-probs of ours' SCST samples equal to the log-probs `sample_with_logprobs` returned.

Measures, for both, and the ratio ours / reference:

* CE training samples/s (forward + backward + AdamW step, train mode), peak memory
  (`torch.cuda.max_memory_allocated` on CUDA, the process' peak RSS on CPU) and MFU (`flops_per_sample`
  below x samples/s over a measured matmul rate: bf16 on CUDA, fp32 on CPU);
* SCST step videos/s: K samples + greedy, `--caption-len` new tokens, CIDEr-D reward on CPU
  (`eval.cider.CiderD` over an MSR-VTT-sized synthetic corpus), greedy-baseline policy gradient, AdamW;
  timed as whole steps (no synchronisation inside, so whatever the step overlaps counts), and split into
  generation, log-prob forward (with grad), reward, backward + step from separately synchronised steps;
* generation captions/s, greedy and beam-3;
* data: `CaptionDataset.batch()` from a preloaded `FeatureStore` of `--data-videos` x
  `--captions-per-video` (MSR-VTT size by default: 10,000 videos, 200,000 captions; float16 features built
  in memory) against ours' training step time.

Sizes (random weights, nothing downloaded): `real` is flan-t5-base's architecture
(`videoblip2.config.FLAN_T5_BASE_ARCHITECTURE`, lm_head untied as in the checkpoint) with the default
`QFormerConfig` (BERT-base, 12 layers, cross-attention every 2nd, 32 queries, encoder width 1408) and LoRA
r=16 on q, v; 32 frames x 768, 16 audio windows x 512, a 12-token T5 prompt, 20-token captions. `small`
(hidden 256, 4 layers, same sequence lengths and vocabulary) fits a CPU; `tiny` is for the tests.

    python bench/throughput.py --size real --device cuda --out bench_throughput.json
    python bench/throughput.py --size real --device cuda --batch-size 512 --compile --static-cache
    python bench/throughput.py --size small --device cpu --batch-size 8 --steps 3 --profile bench_profile
    python bench/throughput.py --size real --device cpu --flops-only      # check the FLOP count
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `python bench/...`

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors  # noqa: E402
from torch import nn  # noqa: E402
from transformers import (  # noqa: E402
    InstructBlipQFormerModel,
    PreTrainedTokenizerFast,
    T5ForConditionalGeneration,
)

from bench.cider_speed import EXTRA, OBJECTS, PLACES, SUBJECTS, VERBS, make_data  # noqa: E402
from videoblip2.eval.cider import CiderD  # noqa: E402
from videoblip2.train.scst import scst_advantages, scst_loss  # noqa: E402
from videoblip2.config import (  # noqa: E402
    FLAN_T5_BASE_ARCHITECTURE,
    LoRAConfig,
    QFormerConfig,
    T5Config,
    VideoBLIP2Config,
)
from videoblip2.data import CaptionDataset, FeatureStore, index_batches, lengths_to_mask  # noqa: E402
from videoblip2.modeling import (  # noqa: E402
    CHECKPOINTABLE_PARTS,
    VideoBLIP2,
    build_t5,
    caption_token_mask,
    qformer_hf_config,
)
from videoblip2.tiny import bert_style_tokenizer  # noqa: E402
from videoblip2.fileio import atomic_write_json

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


# ------------------------------------------------------------------------------------------ FLOPs
def flops_per_sample(config: VideoBLIP2Config, t5_arch: dict[str, Any], frames: int, audio_windows: int,
                     qformer_prompt_len: int, t5_prompt_len: int, caption_len: int) -> dict[str, float]:
    """Matrix-multiply FLOPs (2 m n k each) of one sample's forward pass, by component, and the training total.

    Counted: every linear layer (input projections, Q-Former self/cross attention and both feed-forwards, the
    projections to T5, T5 encoder and decoder attention and gated feed-forward, LoRA on q and v, lm_head over
    the vocabulary) and the attention score / value products (full L x L for the causal decoder, what SDPA
    computes). Not counted: norms, softmax, GELU, embeddings, the loss. Training = 3 x forward for the trained
    Q-Formers (input gradients + weight gradients) + 2 x forward for the frozen T5 (input gradients only; the
    Q-Formers below it need them) + 3 x forward for LoRA; the issue's rough count of these sizes is ~88 GFLOP.
    """
    q = config.qformer
    h, inter, w, n_q = q.hidden_size, q.intermediate_size, q.encoder_width, q.num_query_tokens
    s = n_q + qformer_prompt_len  # Q-Former self-attention over [queries, prompt]

    def qformer_forward(input_dim: int, t: int) -> float:
        total = 2 * t * input_dim * w  # input projection to the encoder width
        for layer in range(q.num_hidden_layers):
            total += 2 * s * h * h * 4 + 2 * 2 * s * s * h  # q, k, v, o + scores, values
            if layer % q.cross_attention_frequency == 0:  # queries read the features
                total += 2 * n_q * h * h * 2 + 2 * t * w * h * 2 + 2 * 2 * n_q * t * h
            total += 2 * s * h * inter * 2  # query feed-forward (queries) + text feed-forward (prompt)
        return total + 2 * n_q * h * t5_arch["d_model"]  # projection to T5

    d, inner, d_ff = t5_arch["d_model"], t5_arch["num_heads"] * t5_arch["d_kv"], t5_arch["d_ff"]
    gated = 3 if str(t5_arch.get("feed_forward_proj", "relu")).startswith("gated") else 2
    enc_len, dec_len = 2 * n_q + t5_prompt_len, caption_len
    encoder = t5_arch["num_layers"] * (2 * enc_len * d * inner * 4 + 2 * 2 * enc_len * enc_len * inner
                                       + 2 * enc_len * d * d_ff * gated)
    decoder = t5_arch["num_decoder_layers"] * (
        2 * dec_len * d * inner * 4 + 2 * 2 * dec_len * dec_len * inner  # self-attention
        + 2 * dec_len * d * inner * 2 + 2 * enc_len * d * inner * 2 + 2 * 2 * dec_len * enc_len * inner  # cross
        + 2 * dec_len * d * d_ff * gated)
    lm_head = 2 * dec_len * d * t5_arch["vocab_size"]
    # LoRA (d -> r -> inner) on each target projection, over the tokens that projection sees: q and o see the
    # queries' side (decoder length in both decoder attentions), k and v the keys' side (encoder length in cross)
    r = config.lora.r
    tokens = {"q": dec_len, "o": dec_len, "k": enc_len, "v": enc_len}  # decoder cross-attention
    lora = sum(2 * (d * r + r * inner) * (t5_arch["num_layers"] * enc_len
                                          + t5_arch["num_decoder_layers"] * (dec_len + tokens.get(name, 0)))
               for name in config.lora.target_modules)
    video_qformer = qformer_forward(config.video_dim, frames)
    audio_qformer = qformer_forward(config.audio_dim, audio_windows)
    t5 = encoder + decoder + lm_head
    return {
        "video_qformer_forward": video_qformer,
        "audio_qformer_forward": audio_qformer,
        "t5_encoder_forward": encoder,
        "t5_decoder_forward": decoder,
        "t5_lm_head_forward": lm_head,
        "lora_forward": lora,
        "forward": video_qformer + audio_qformer + t5 + lora,
        "train": 3 * (video_qformer + audio_qformer) + 2 * t5 + 3 * lora,
    }


def counted_flops(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs per sample as torch.utils.flop_counter counts them: a check of the above."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    counts = []
    for backward in (False, True):
        counter = FlopCounterMode(display=False)
        with counter, torch.set_grad_enabled(backward):
            loss = model(**model_inputs(batch), labels=batch["labels"]).loss
            if backward:
                loss.backward()
        counts.append(counter.get_total_flops() / batch["video"].shape[0])
    model.zero_grad(set_to_none=True)
    return counts[0], counts[1]


def matmul_rate(device: torch.device) -> tuple[float, str]:
    """Measured matmul FLOP/s: bf16 8192^3 on CUDA (median of 20, CUDA events), fp32 1024^3 on CPU."""
    if device.type == "cuda":
        n, dtype, reps = 8192, torch.bfloat16, 20
    else:
        n, dtype, reps = 1024, torch.float32, 5
    gen = torch.Generator(device=device).manual_seed(0)
    inputs = [(torch.randn(n, n, device=device, dtype=dtype, generator=gen),
               torch.randn(n, n, device=device, dtype=dtype, generator=gen)) for _ in range(2)]
    for a, b in inputs:
        a @ b
    times = []
    for i in range(reps):
        a, b = inputs[i % 2]
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            a @ b
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / float(np.median(times)), str(dtype).replace("torch.", "")


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


# ------------------------------------------------------------------------------------------ timing
@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with `threads` torch CPU threads (None: leave torch's number), and restore the number after."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Accumulates device-synchronised wall time per named part."""

    def __init__(self, device: torch.device, enabled: bool = True):
        self.device = device
        self.enabled = enabled  # False: no synchronisation and no timing (a step timed as a whole)
        self.parts: dict[str, float] = {}

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - start


@contextlib.contextmanager
def timed_method(obj: Any, name: str, watch: Stopwatch, part: str) -> Iterator[None]:
    """Time every call of obj.name (an instance attribute shadows the method for the duration)."""
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        with watch.part(part):
            return original(*args, **kwargs)

    object.__setattr__(obj, name, wrapper)
    try:
        yield
    finally:
        object.__delattr__(obj, name)


def rss_bytes() -> tuple[int, int]:
    """(current, peak) resident set size of this process, from /proc (peak resettable), else getrusage."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return peak, peak


class PeakMemory:
    """Peak memory of a phase: torch.cuda.max_memory_allocated on CUDA, peak RSS on CPU (reset where possible)."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        else:
            with contextlib.suppress(OSError):
                Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.start = rss_bytes()[0]
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self.peak = rss_bytes()[1]

    def result(self) -> dict[str, float]:
        return {"peak_memory_gb": self.peak / 2**30, "memory_at_start_gb": self.start / 2**30,
                "peak_over_start_gb": (self.peak - self.start) / 2**30}


def amp_factory(device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    if device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


# ------------------------------------------------------------------------------------------ steps
def ce_step(forward: Callable, batch: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
            amp: Callable) -> torch.Tensor:
    with amp():
        loss = forward(**model_inputs(batch), labels=batch["labels"]).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def scst_step(impl: str, model: nn.Module, batch: dict[str, torch.Tensor], video_ids: list[int],
              optimizer: torch.optim.Optimizer, cider: CiderD, num_samples: int, max_new_tokens: int,
              amp: Callable, watch: Stopwatch, static_cache: bool = False) -> dict[str, float]:
    """One SCST step (greedy baseline), times split into generate / logprob_forward / reward / backward."""
    k = num_samples
    eos = model.t5_tokenizer.eos_token_id
    model.eval()  # as train.train_scst: no dropout while sampling and in the log-prob pass
    if impl == "ours":
        with watch.part("sample_with_logprobs"), timed_method(model.t5, "generate", watch, "generate"), amp():
            extra = {"cache_implementation": "static"} if static_cache else {}
            out = model.sample_with_logprobs(**model_inputs(batch), num_samples=k, include_greedy=True,
                                             max_new_tokens=max_new_tokens, **extra)
        samples, greedy, logprobs = out.captions, out.greedy_captions, out.logprobs
        sample_len = float(out.token_mask.sum(dim=1).mean())
    else:
        with watch.part("generate"), amp():
            greedy_ids = model.generate(**model_inputs(batch), num_beams=1, do_sample=False,
                                        max_new_tokens=max_new_tokens)
            sample_ids = model.generate(**model_inputs(batch), do_sample=True, top_k=0, top_p=1.0,
                                        num_return_sequences=k, max_new_tokens=max_new_tokens)
        decode = model.t5_tokenizer.batch_decode
        greedy = [s.strip() for s in decode(greedy_ids, skip_special_tokens=True)]
        samples = [s.strip() for s in decode(sample_ids, skip_special_tokens=True)]
        with watch.part("logprob_forward"), amp():
            logprobs, mask = reference_logprobs(model, repeat_inputs(batch, k), sample_ids[:, 1:], eos)
        sample_len = float(mask.sum(dim=1).mean())
    with watch.part("reward"):
        rewards = torch.as_tensor(cider.score(samples, [v for v in video_ids for _ in range(k)]),
                                  dtype=torch.float32).view(len(video_ids), k)
        greedy_rewards = torch.as_tensor(cider.score(greedy, video_ids), dtype=torch.float32)
        advantages = scst_advantages(rewards, "greedy", greedy_rewards).flatten().to(logprobs.device)
    with watch.part("backward"):
        loss = scst_loss(logprobs, advantages)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {"sample_len": sample_len, "reward_mean": float(rewards.mean())}


def reference_logprobs(model: ReferenceVideoBLIP2, inputs: dict[str, torch.Tensor], sequences: torch.Tensor,
                       eos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed token log-probs of `sequences` (N, L) (no decoder start token), teacher-forced, with grad."""
    mask = caption_token_mask(sequences, eos)
    out = model(**inputs, labels=sequences.masked_fill(mask == 0, -100))
    token_logp = F.log_softmax(out.logits.float(), dim=-1).gather(-1, sequences.unsqueeze(-1)).squeeze(-1)
    return (token_logp * mask).sum(dim=1), mask


def generate_ids(impl: str, model: nn.Module, batch: dict[str, torch.Tensor], num_beams: int, max_new_tokens: int,
                 static_cache: bool) -> torch.Tensor:
    if impl == "ours":
        extra = {"cache_implementation": "static"} if static_cache else {}
        return model.generate(**model_inputs(batch), num_beams=num_beams, max_new_tokens=max_new_tokens,
                              return_ids=True, **extra)[1]
    return model.generate(**model_inputs(batch), num_beams=num_beams, do_sample=False,
                          max_new_tokens=max_new_tokens)


def mean_length(ids: torch.Tensor, eos: int) -> float:
    """Generated tokens per caption up to and including EOS (the decoder start token not counted)."""
    return float(caption_token_mask(ids[:, 1:], eos).sum(dim=1).mean())


# ------------------------------------------------------------------------------------------ phases
def run_checks(ours: VideoBLIP2, reference: ReferenceVideoBLIP2, batch: dict[str, torch.Tensor],
               args: argparse.Namespace, amp: Callable, device: torch.device) -> dict[str, Any]:
    """Same weights, same batch, eval mode: loss, greedy / beam-3 ids, SCST log-probs of ours' samples."""
    ours.eval()
    reference.eval()
    eos = ours.t5_tokenizer.eos_token_id
    n = args.caption_len
    with torch.no_grad(), amp():
        loss_ours = float(ours(**model_inputs(batch), labels=batch["labels"]).loss)
        loss_ref = float(reference(**model_inputs(batch), labels=batch["labels"]).loss)
        ids = {impl: {beams: generate_ids(impl, model, batch, beams, n, args.static_cache).cpu()
                      for beams in (1, 3)}
               for impl, model in (("ours", ours), ("reference", reference))}
        torch.manual_seed(args.seed)
        sampled = ours.sample_with_logprobs(**model_inputs(batch), num_samples=args.num_samples,
                                            include_greedy=True, max_new_tokens=n)
        ref_logprobs, _ = reference_logprobs(reference, repeat_inputs(batch, args.num_samples), sampled.sequences,
                                             eos)
    logprob_diff = (sampled.logprobs.float() - ref_logprobs.float()).abs()
    tol = 1e-2 if device.type == "cuda" else 1e-5
    greedy_rows = [torch.equal(a, b) for a, b in zip(ids["ours"][1], ids["reference"][1])]
    same_greedy_shape = ids["ours"][1].shape == ids["reference"][1].shape
    return {
        "tolerance_rel": tol,
        "loss_reference": loss_ref,
        "loss_ours": loss_ours,
        "loss_abs_diff": abs(loss_ours - loss_ref),
        "loss_match": abs(loss_ours - loss_ref) <= tol * abs(loss_ref),
        "greedy_identical": same_greedy_shape and all(greedy_rows),
        "greedy_match_fraction": float(np.mean(greedy_rows)) if same_greedy_shape else 0.0,
        "greedy_mean_len": mean_length(ids["ours"][1], eos),
        "greedy_distinct": len({tuple(r) for r in ids["ours"][1].tolist()}),
        "beam3_identical": torch.equal(ids["ours"][3], ids["reference"][3]),
        "greedy_ours_captions_match_sample_greedy": sampled.greedy_captions == ours._decode(ids["ours"][1]),
        "scst_logprob_max_abs_diff": float(logprob_diff.max()),
        "scst_logprob_match": bool((logprob_diff <= tol * ref_logprobs.abs().float().clamp_min(1.0)).all()),
        "scst_sample_mean_len": float(sampled.token_mask.sum(dim=1).mean()),
        "check_batch_size": batch["video"].shape[0],
    }


def bench_impl(impl: str, model: nn.Module, ce_batches: list[dict], scst_batch: dict, gen_batch: dict,
               cider: CiderD, args: argparse.Namespace, device: torch.device, amp: Callable,
               train_flops: float, peak_rate: float, check_batch: dict | None = None) -> dict[str, Any]:
    """CE training, SCST step and generation timings of one implementation.

    With --compile, ours' compiled forward first computes the eval loss of `check_batch` (result["ce"]
    ["compiled_eval_loss"]), on the weights the checks saw, to compare with the reference's loss.
    """
    eos = model.t5_tokenizer.eos_token_id
    optimizer = make_optimizer(model, impl, device)
    forward = torch.compile(model) if (impl == "ours" and args.compile) else model
    result: dict[str, Any] = {}
    compiled_eval_loss = None
    if forward is not model and check_batch is not None:  # before any step changes the weights
        model.eval()
        with torch.no_grad(), amp():
            compiled_eval_loss = float(forward(**model_inputs(check_batch), labels=check_batch["labels"]).loss)

    # 1. cross-entropy training
    model.train()
    batch_size = ce_batches[0]["video"].shape[0]
    with PeakMemory(device) as memory:
        for i in range(args.warmup):
            ce_step(forward, ce_batches[i % len(ce_batches)], optimizer, amp)
        times = []
        for i in tqdm_range(args.steps, f"{impl}: CE training"):
            synchronize(device)
            start = time.perf_counter()
            loss = ce_step(forward, ce_batches[i % len(ce_batches)], optimizer, amp)
            synchronize(device)
            times.append(time.perf_counter() - start)
    step_s = float(np.median(times))
    result["ce"] = {"batch_size": batch_size, "step_s_median": step_s, "step_s_all": times,
                    "samples_per_s": batch_size / step_s, "mfu": batch_size / step_s * train_flops / peak_rate,
                    "last_loss": float(loss), **memory.result()}
    if compiled_eval_loss is not None:
        result["ce"]["compiled_eval_loss"] = compiled_eval_loss

    # 2. SCST
    video_ids = list(range(scst_batch["video"].shape[0]))
    optimizer.zero_grad(set_to_none=True)
    with PeakMemory(device) as memory:
        for _ in range(min(args.warmup, 1)):
            scst_step(impl, model, scst_batch, video_ids, optimizer, cider, args.num_samples, args.caption_len,
                      amp, Stopwatch(device), args.static_cache)
        # Throughput from whole steps with no synchronisation inside: work the step overlaps (the CPU reward
        # while the GPU runs the queued log-prob pass) counts as it would in training. The split comes from
        # separate steps synchronised at every part boundary.
        whole, per_step, extra = [], [], []
        for _ in tqdm_range(args.steps, f"{impl}: SCST"):
            synchronize(device)
            start = time.perf_counter()
            extra.append(scst_step(impl, model, scst_batch, video_ids, optimizer, cider, args.num_samples,
                                   args.caption_len, amp, Stopwatch(device, enabled=False), args.static_cache))
            synchronize(device)
            whole.append(time.perf_counter() - start)
        for _ in tqdm_range(args.steps, f"{impl}: SCST, split"):
            watch = Stopwatch(device)
            scst_step(impl, model, scst_batch, video_ids, optimizer, cider, args.num_samples, args.caption_len,
                      amp, watch, args.static_cache)
            parts = dict(watch.parts)
            if impl == "ours":  # sample_with_logprobs = generate (timed inside it) + encode and log-prob forward
                parts["logprob_forward"] = parts.pop("sample_with_logprobs") - parts.get("generate", 0.0)
            per_step.append(parts)
    split = {name: float(np.median([p.get(name, 0.0) for p in per_step]))
             for name in ("generate", "logprob_forward", "reward", "backward")}
    step_s = float(np.median(whole))
    result["scst"] = {"videos": len(video_ids), "num_samples": args.num_samples, "step_s_median": step_s,
                      "step_s_split_median": float(np.median([sum(p.values()) for p in per_step])),
                      "videos_per_s": len(video_ids) / step_s, **{f"{name}_s": v for name, v in split.items()},
                      "sample_mean_len": float(np.mean([e["sample_len"] for e in extra])),
                      **memory.result()}

    # 3. generation
    model.eval()
    gen = {"batch_size": gen_batch["video"].shape[0]}
    with torch.no_grad(), amp():
        for beams, name in ((1, "greedy"), (3, "beam3")):
            ids = generate_ids(impl, model, gen_batch, beams, args.caption_len, args.static_cache)  # warm-up
            times = []
            for _ in tqdm_range(args.steps, f"{impl}: generate {name}"):
                synchronize(device)
                start = time.perf_counter()
                ids = generate_ids(impl, model, gen_batch, beams, args.caption_len, args.static_cache)
                synchronize(device)
                times.append(time.perf_counter() - start)
            gen[f"{name}_s_median"] = float(np.median(times))
            gen[f"{name}_captions_per_s"] = gen["batch_size"] / float(np.median(times))
            gen[f"{name}_mean_len"] = mean_length(ids, eos)
    result["generate"] = gen
    del optimizer
    return result


def tqdm_range(n: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(range(n), desc=desc, leave=False, disable=n < 3 or not sys.stderr.isatty())


def in_memory_store(num_videos: int, spec: Size, config: VideoBLIP2Config, seed: int) -> FeatureStore:
    """A preloaded FeatureStore filled in memory: float16 features, every frame, 8-16 windows, 10% silent."""
    store = FeatureStore("<in-memory>", [], max_frames=spec.frames, max_audio_windows=spec.audio_windows,
                         video_dim=config.video_dim, audio_dim=config.audio_dim, preload=True)
    g = torch.Generator().manual_seed(seed)
    video = torch.empty(num_videos, spec.frames, config.video_dim, dtype=torch.float16)
    audio = torch.empty(num_videos, spec.audio_windows, config.audio_dim, dtype=torch.float16)
    for start in range(0, num_videos, 1000):  # chunks: no float32 copy of the whole store
        stop = min(start + 1000, num_videos)
        video[start:stop] = torch.randn(stop - start, spec.frames, config.video_dim, generator=g)
        audio[start:stop] = torch.randn(stop - start, spec.audio_windows, config.audio_dim, generator=g)
    audio_len = torch.randint(max(1, spec.audio_windows // 2), spec.audio_windows + 1, (num_videos,), generator=g)
    audio_len[torch.rand(num_videos, generator=g) < 0.1] = 0
    store.video_ids = [f"video{i}" for i in range(num_videos)]
    store.index = {v: i for i, v in enumerate(store.video_ids)}
    store.video, store.audio = video, audio * (audio_len > 0).view(-1, 1, 1).to(audio.dtype)
    store.video_lengths = torch.full((num_videos,), spec.frames, dtype=torch.long)
    store.audio_lengths = audio_len
    store.video_mask = lengths_to_mask(store.video_lengths, spec.frames)
    store.audio_mask = lengths_to_mask(store.audio_lengths, spec.audio_windows)
    store.has_audio = audio_len > 0
    store.no_audio = [v for v, sound in zip(store.video_ids, store.has_audio.tolist()) if not sound]
    return store


def bench_data(refs: list[list[str]], spec: Size, config: VideoBLIP2Config, tokenizer, args: argparse.Namespace,
               device: torch.device) -> dict[str, Any]:
    """CaptionDataset.batch() from a preloaded MSR-VTT-sized store (on the training device)."""
    start = time.perf_counter()
    store = in_memory_store(len(refs), spec, config, args.seed).to(device)
    build_store_s = time.perf_counter() - start
    start = time.perf_counter()
    dataset = CaptionDataset(store, {f"video{i}": r for i, r in enumerate(refs)}, tokenizer, config.max_caption_len)
    tokenize_s = time.perf_counter() - start
    batch_size = min(args.ours_batch_size, len(dataset))
    batches = index_batches(len(dataset), batch_size, shuffle=True, seed=args.seed, drop_last=True)
    dataset.batch(next(batches))  # labels move to the device on the first batch
    times = []
    for _, indices in zip(range(args.data_batches), batches):
        synchronize(device)
        start = time.perf_counter()
        dataset.batch(indices)  # float16 store -> float32 batch on the device
        synchronize(device)
        times.append(time.perf_counter() - start)
    feature_bytes = store.video.numel() * 2 + store.audio.numel() * 2
    return {"num_videos": len(refs), "num_captions": len(dataset), "batch_size": batch_size,
            "store_gb": feature_bytes / 2**30, "build_store_s": build_store_s, "tokenize_captions_s": tokenize_s,
            "batch_ms_median": 1000 * float(np.median(times)), "batches_timed": len(times)}


def profile_steps(impl: str, model: nn.Module, ce_batch: dict, scst_batch: dict, cider: CiderD,
                  args: argparse.Namespace, device: torch.device, amp: Callable, out_dir: Path) -> list[str]:
    """torch.profiler tables (top ops by self time) of one CE step and one SCST step, written to out_dir."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sort = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    optimizer = make_optimizer(model, impl, device)
    video_ids = list(range(scst_batch["video"].shape[0]))

    def one_ce_step() -> None:
        model.train()
        ce_step(model, ce_batch, optimizer, amp)

    def one_scst_step() -> None:
        scst_step(impl, model, scst_batch, video_ids, optimizer, cider, args.num_samples, args.caption_len, amp,
                  Stopwatch(device), args.static_cache)

    written = []
    for name, run in (("ce", one_ce_step), ("scst", one_scst_step)):
        run()  # warm: the optimizer state exists before the profiled step
        with profile(activities=activities, record_shapes=True) as prof:
            run()
            synchronize(device)
        table = prof.key_averages().table(sort_by=sort, row_limit=30, max_name_column_width=60)
        shapes = prof.key_averages(group_by_input_shape=True).table(sort_by=sort, row_limit=20,
                                                                    max_name_column_width=50)
        path = out_dir / f"profile_{impl}_{name}.txt"
        path.write_text(f"{impl} {name} step, {args.size} size, {device.type}\n\n{table}\n\nby input shape\n\n"
                        f"{shapes}\n")
        if args.trace:
            prof.export_chrome_trace(str(out_dir / f"trace_{impl}_{name}.json"))
        written.append(str(path))
    return written


# ------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_argument_group("what to run")
    what.add_argument("--size", choices=sorted(SIZES), default="real")
    what.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    what.add_argument("--batch-size", type=int, default=None,
                      help="CE batch of the reference (default: 256 on CUDA, 4-8 on CPU); also ours' unless "
                           "--ours-batch-size")
    what.add_argument("--ours-batch-size", type=int, default=None, help="CE batch of ours (default: --batch-size)")
    what.add_argument("--scst-batch-size", type=int, default=None, help="videos per SCST step (default: batch/4)")
    what.add_argument("--gen-batch-size", type=int, default=None, help="videos per generate call (default: batch)")
    what.add_argument("--num-samples", type=int, default=5, help="SCST samples per video (K)")
    what.add_argument("--steps", type=int, default=10, help="timed steps per measurement (median reported)")
    what.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    what.add_argument("--seed", type=int, default=0)
    what.add_argument("--threads", type=int, default=None,
                      help="torch CPU threads (default: torch's); 1 is steadier on a shared CPU")
    opt = parser.add_argument_group("optimisations of ours that keep results")
    opt.add_argument("--compile", action="store_true", help="torch.compile ours' training forward")
    opt.add_argument("--static-cache", action="store_true", help="static KV cache in ours' generate and SCST sampling")
    opt.add_argument("--activation-checkpointing", nargs="+", default=[], metavar="PART",
                     choices=CHECKPOINTABLE_PARTS,
                     help="recompute these parts' layers in ours' CE backward (less memory, more compute)")
    data = parser.add_argument_group("data")
    data.add_argument("--data-videos", type=int, default=10_000, help="videos in the store and the CIDEr corpus")
    data.add_argument("--captions-per-video", type=int, default=20)
    data.add_argument("--data-batches", type=int, default=50, help="timed CaptionDataset.batch() calls")
    out = parser.add_argument_group("output")
    out.add_argument("--out", default="bench_throughput.json", help="JSON results")
    out.add_argument("--profile", default=None, help="directory for torch.profiler tables of one CE and SCST step")
    out.add_argument("--trace", action="store_true", help="with --profile: also write Chrome traces")
    out.add_argument("--data-only", action="store_true",
                     help="only the data check (no models): CaptionDataset.batch() time at --ours-batch-size")
    out.add_argument("--flops-only", action="store_true",
                     help="print the analytic FLOP count and torch's count of one training step, then stop")
    args = parser.parse_args(argv)
    default = DEFAULT_BATCH[(args.size, args.device)]
    args.batch_size = args.batch_size or default
    args.ours_batch_size = args.ours_batch_size or args.batch_size
    args.scst_batch_size = args.scst_batch_size or max(1, args.batch_size // 4)
    args.gen_batch_size = args.gen_batch_size or args.batch_size
    args.caption_len = SIZES[args.size].caption_len
    for name in ("batch_size", "ours_batch_size", "scst_batch_size", "gen_batch_size", "num_samples", "steps",
                 "data_videos", "captions_per_video", "data_batches"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.num_samples < 1 or args.warmup < 0:
        parser.error("--num-samples must be >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with torch_threads(args.threads):
        return run(args, argv)


def run(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda but torch.cuda.is_available() is False; use --device cpu")
    amp = amp_factory(device)
    spec = SIZES[args.size]
    started = time.perf_counter()
    if args.data_only:
        refs, _ = make_data(args.data_videos, args.captions_per_video, args.seed)
        data = bench_data(refs, spec, spec.config(), word_level_t5_tokenizer(spec.t5["vocab_size"]), args, device)
        print(f"CaptionDataset.batch({data['batch_size']}) on {args.device}: {data['batch_ms_median']:.2f} ms "
              f"(median of {data['batches_timed']}) from {data['num_videos']} videos / {data['num_captions']} "
              f"captions ({data['store_gb']:.2f} GB float16 store built in {data['build_store_s']:.1f} s, captions "
              f"tokenized in {data['tokenize_captions_s']:.1f} s)")
        result = {"config": {"size": args.size, "device": args.device, "device_name": device_name(device),
                             "date": datetime.date.today().isoformat(), "threads": torch.get_num_threads()},
                  "data": data}
        if args.out:
            atomic_write_json(args.out, result, indent=2)
        return result
    print(f"building {args.size} models (random weights) ...", flush=True)
    ours, reference = build_models(args.size, args.seed)
    config = ours.config
    tokenizer = ours.t5_tokenizer
    vocab, eos = spec.t5["vocab_size"], tokenizer.eos_token_id
    q_prompt = len(ours.qformer_tokenizer(PROMPT).input_ids)
    t5_prompt = len(tokenizer(PROMPT).input_ids)
    flops = flops_per_sample(config, spec.t5, spec.frames, spec.audio_windows, q_prompt, t5_prompt,
                             spec.caption_len)
    flop_batch = random_batch(2, spec, config, vocab, eos, args.seed + 99, torch.device("cpu"))
    flops["forward_counted_by_torch"], flops["train_counted_by_torch"] = counted_flops(ours, flop_batch)
    if args.flops_only:
        print(json.dumps({k: f"{v / 1e9:.3f} GFLOP" for k, v in flops.items()}, indent=2))
        return {"flops": flops}

    peak_rate, rate_dtype = matmul_rate(device)
    ours.to(device)
    reference.to(device)
    optimisations = optimise_ours(ours, device, args.activation_checkpointing)
    check_batch = random_batch(min(8, args.batch_size), spec, config, vocab, eos, args.seed + 1, device)
    print("checking that ours and the reference agree ...", flush=True)
    checks = run_checks(ours, reference, check_batch, args, amp, device)

    print(f"CIDEr-D corpus and data: {args.data_videos} videos x {args.captions_per_video} captions ...", flush=True)
    refs, _ = make_data(args.data_videos, args.captions_per_video, args.seed)
    if args.scst_batch_size > len(refs):
        raise BenchmarkError(f"--scst-batch-size {args.scst_batch_size} > --data-videos {len(refs)}")
    cider = CiderD(refs)

    results: dict[str, Any] = {}
    batches = {}
    for impl, model in (("reference", reference), ("ours", ours)):
        batch_size = args.ours_batch_size if impl == "ours" else args.batch_size
        ce_batches = [random_batch(batch_size, spec, config, vocab, eos, args.seed + 10 + i, device)
                      for i in range(2)]
        scst_batch = random_batch(args.scst_batch_size, spec, config, vocab, eos, args.seed + 20, device)
        gen_batch = random_batch(args.gen_batch_size, spec, config, vocab, eos, args.seed + 30, device)
        batches[impl] = (ce_batches[0], scst_batch)
        other = ours if impl == "reference" else reference
        other.to("cpu")  # one model on the device at a time: memory figures are per implementation
        model.to(device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"benchmarking {impl} ...", flush=True)
        results[impl] = bench_impl(impl, model, ce_batches, scst_batch, gen_batch, cider, args, device, amp,
                                   flops["train"], peak_rate, check_batch)
    if "compiled_eval_loss" in results["ours"]["ce"]:
        compiled = results["ours"]["ce"]["compiled_eval_loss"]
        checks["loss_ours_compiled"] = compiled
        checks["loss_compiled_match"] = abs(compiled - checks["loss_reference"]) <= (
            checks["tolerance_rel"] * abs(checks["loss_reference"]))

    profiles = []
    if args.profile:
        out_dir = Path(args.profile)
        out_dir.mkdir(parents=True, exist_ok=True)
        for impl, model in (("reference", reference), ("ours", ours)):
            (ours if impl == "reference" else reference).to("cpu")
            model.to(device)
            profiles += profile_steps(impl, model, *batches[impl], cider, args, device, amp, out_dir)

    print("timing the data path ...", flush=True)
    data = bench_data(refs, spec, config, tokenizer, args, device)
    data["ce_step_ms_ours"] = 1000 * results["ours"]["ce"]["step_s_median"]
    data["fraction_of_ce_step"] = data["batch_ms_median"] / data["ce_step_ms_ours"]

    ratio = {
        "ce_samples_per_s": results["ours"]["ce"]["samples_per_s"] / results["reference"]["ce"]["samples_per_s"],
        "ce_peak_memory": results["ours"]["ce"]["peak_memory_gb"] / results["reference"]["ce"]["peak_memory_gb"],
        "scst_videos_per_s": results["ours"]["scst"]["videos_per_s"] / results["reference"]["scst"]["videos_per_s"],
        "greedy_captions_per_s": (results["ours"]["generate"]["greedy_captions_per_s"]
                                  / results["reference"]["generate"]["greedy_captions_per_s"]),
        "beam3_captions_per_s": (results["ours"]["generate"]["beam3_captions_per_s"]
                                 / results["reference"]["generate"]["beam3_captions_per_s"]),
    }
    result = {
        "config": {
            "size": args.size, "device": args.device, "device_name": device_name(device),
            "date": datetime.date.today().isoformat(), "command": "python bench/throughput.py " + " ".join(
                sys.argv[1:] if argv is None else argv),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "threads": torch.get_num_threads(), "batch_size_reference": args.batch_size,
            "batch_size_ours": args.ours_batch_size, "scst_batch_size": args.scst_batch_size,
            "gen_batch_size": args.gen_batch_size, "num_samples": args.num_samples, "steps": args.steps,
            "warmup": args.warmup, "compile": args.compile, "static_cache": args.static_cache,
            "frames": spec.frames, "audio_windows": spec.audio_windows, "caption_tokens": spec.caption_len,
            "prompt_tokens_t5": t5_prompt, "prompt_tokens_qformer": q_prompt,
            "parameters": sum(p.numel() for p in ours.parameters()),
            "trainable_parameters_ours": sum(p.numel() for p in ours.parameters() if p.requires_grad),
            "trainable_parameters_reference": sum(p.numel() for p in reference.parameters() if p.requires_grad),
            "optimisations_ours": optimisations, "wall_s": None,
        },
        "flops": {**flops, "matmul_rate_flops": peak_rate, "matmul_dtype": rate_dtype},
        "checks": checks,
        "reference": results["reference"],
        "ours": results["ours"],
        "ratio": ratio,
        "data": data,
        "profiles": profiles,
    }
    result["config"]["wall_s"] = time.perf_counter() - started
    print_table(result)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, result, indent=2)
        print(f"wrote {args.out}")
    return result


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}), {os.cpu_count()} cores"


def print_table(result: dict[str, Any]) -> None:
    ref, ours, ratio, checks, data = (result["reference"], result["ours"], result["ratio"], result["checks"],
                                      result["data"])
    rows = [
        ("CE training samples/s", ref["ce"]["samples_per_s"], ours["ce"]["samples_per_s"], ratio["ce_samples_per_s"]),
        ("CE peak memory GB", ref["ce"]["peak_memory_gb"], ours["ce"]["peak_memory_gb"], ratio["ce_peak_memory"]),
        ("CE MFU", ref["ce"]["mfu"], ours["ce"]["mfu"], ours["ce"]["mfu"] / ref["ce"]["mfu"]),
        ("SCST videos/s", ref["scst"]["videos_per_s"], ours["scst"]["videos_per_s"], ratio["scst_videos_per_s"]),
        *[(f"  SCST {part} s/step", ref["scst"][f"{part}_s"], ours["scst"][f"{part}_s"], None)
          for part in ("generate", "logprob_forward", "reward", "backward")],
        ("greedy captions/s", ref["generate"]["greedy_captions_per_s"], ours["generate"]["greedy_captions_per_s"],
         ratio["greedy_captions_per_s"]),
        ("beam-3 captions/s", ref["generate"]["beam3_captions_per_s"], ours["generate"]["beam3_captions_per_s"],
         ratio["beam3_captions_per_s"]),
    ]
    cfg = result["config"]
    print(f"\n{cfg['size']} size on {cfg['device_name']}; CE batch {cfg['batch_size_reference']} / "
          f"{cfg['batch_size_ours']}, SCST {cfg['scst_batch_size']} videos x K={cfg['num_samples']}, "
          f"train FLOPs/sample {result['flops']['train'] / 1e9:.2f} G (torch counts "
          f"{result['flops']['train_counted_by_torch'] / 1e9:.2f} G), matmul "
          f"{result['flops']['matmul_rate_flops'] / 1e12:.2f} TFLOP/s {result['flops']['matmul_dtype']}")
    print(f"{'measure':<28}{'reference':>12}{'ours':>12}{'ours/ref':>10}")
    for name, a, b, r in rows:
        print(f"{name:<28}{a:>12.4g}{b:>12.4g}{'' if r is None else f'{r:>9.2f}x':>10}")
    print(f"checks: loss {checks['loss_reference']:.6f} vs {checks['loss_ours']:.6f} "
          f"({'match' if checks['loss_match'] else 'MISMATCH'}), greedy ids identical {checks['greedy_identical']}, "
          f"beam-3 identical {checks['beam3_identical']}, SCST log-prob max diff "
          f"{checks['scst_logprob_max_abs_diff']:.2e} ({'match' if checks['scst_logprob_match'] else 'MISMATCH'})")
    print(f"data: CaptionDataset.batch({data['batch_size']}) {data['batch_ms_median']:.2f} ms from "
          f"{data['num_videos']} videos / {data['num_captions']} captions = "
          f"{100 * data['fraction_of_ce_step']:.2f}% of ours' CE step ({data['ce_step_ms_ours']:.1f} ms)")


if __name__ == "__main__":
    main()
