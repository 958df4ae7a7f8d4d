"""VideoBLIP2: video + audio Q-Formers bridged into a LoRA-adapted, frozen Flan-T5.

Data flow (B = batch, Q = query tokens per branch, P = prompt tokens):

    video (B, T_v, 768) --video_input_proj + time--> video_qformer(queries + prompt) --proj_video--> (B, Q, d_t5)
    audio (B, T_a, 512) --audio_upscaler + time----> audio_qformer(queries + prompt) --proj_audio--> (B, Q, d_t5)
    T5 encoder input = [video queries, audio queries, prompt token embeddings]   (B, 2Q + P, d_t5)

The prompt is the caption instruction shared by the batch, or one per sample (a question in
`config.qa_prompt_template`): see `Prompt`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
import transformers
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    InstructBlipQFormerConfig,
    InstructBlipQFormerModel,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedTokenizerBase,
    T5ForConditionalGeneration,
)
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput

from .config import ConfigError, VideoBLIP2Config
from .data import PromptTokens, tokenize_prompts, tokenize_questions
from .fileio import atomic_target
from .noinit import skip_init

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
T5_TOKENIZER_DIR = "t5_tokenizer"
QFORMER_TOKENIZER_DIR = "qformer_tokenizer"
_T5_BASE_PREFIX = "t5.base_model.model."

# What `prompt` may be: None (config.prompt), one string for the whole batch (tokenized once and cached), B
# strings (one per sample, e.g. questions), or B pre-tokenized prompts (videoblip2.data.PromptTokens, what
# datasets hand over so that no training or answering step tokenizes text).
Prompt = str | Sequence[str] | PromptTokens | None

# The parts `VideoBLIP2.set_activation_checkpointing` takes; the choices of --activation-checkpointing.
CHECKPOINTABLE_PARTS = ("t5_encoder", "t5_decoder", "qformers")


class CheckpointError(RuntimeError):
    """A model directory that is missing, incomplete, or does not match its config."""


@dataclass
class VideoBLIP2Output:
    loss: torch.Tensor | None
    logits: torch.Tensor  # (B, L, vocab)


@dataclass
class SampleOutput:
    """K sampled captions per video with their summed token log-probs (with gradient)."""

    sequences: torch.Tensor  # (B*K, L) token ids, padded with pad_token_id after EOS
    token_mask: torch.Tensor  # (B*K, L) 1 up to and including EOS
    logprobs: torch.Tensor  # (B*K,) sum of token log-probs under the mask
    captions: list[str]  # B*K strings, sample k of video b at index b*K + k
    greedy_captions: list[str] | None = None  # B strings when asked for
    ended: torch.Tensor | None = None  # (B*K,) bool: the sample ended with EOS (False: cut at the length limit)
    greedy_ended: torch.Tensor | None = None  # (B,) bool, the same for the greedy captions


def qformer_hf_config(config: VideoBLIP2Config, vocab_size: int) -> InstructBlipQFormerConfig:
    q = config.qformer
    return InstructBlipQFormerConfig(
        vocab_size=vocab_size,
        hidden_size=q.hidden_size,
        num_hidden_layers=q.num_hidden_layers,
        num_attention_heads=q.num_attention_heads,
        intermediate_size=q.intermediate_size,
        hidden_dropout_prob=q.hidden_dropout_prob,
        attention_probs_dropout_prob=q.attention_probs_dropout_prob,
        max_position_embeddings=q.max_position_embeddings,
        cross_attention_frequency=q.cross_attention_frequency,
        encoder_hidden_size=q.encoder_width,
    )


def sinusoidal_positions(length: int, width: int) -> torch.Tensor:
    """``(length, width)`` sinusoidal positions of Vaswani et al. (2017): ``sin(t / 10000^(2i/width))`` in the even
    columns, ``cos`` in the odd ones (values in [-1, 1]). The start of the video time embedding."""
    position = torch.arange(length, dtype=torch.float32)[:, None]  # (T, 1)
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-torch.log(torch.tensor(10000.0)) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: width // 2])
    return table


def build_t5(config: VideoBLIP2Config, name_or_path: str | os.PathLike | None = None) -> T5ForConditionalGeneration:
    """Flan-T5 from a hub id or local path, or randomly initialised from `t5.architecture` (`t5.dropout_rate` applied).

    `name_or_path` replaces `t5.name_or_path` as the place to load from (a folder `from_pretrained` resolved).
    """
    dropout = {} if config.t5.dropout_rate is None else {"dropout_rate": config.t5.dropout_rate}
    if config.t5.architecture is None:
        return T5ForConditionalGeneration.from_pretrained(name_or_path or config.t5.name_or_path, **dropout)
    t5 = T5ForConditionalGeneration(transformers.T5Config(**{**config.t5.architecture, **dropout}))
    if config.t5.architecture.get("tie_word_embeddings") is False:
        # transformers 5 always ties T5's lm_head to its input embeddings when building from a config (it unties
        # only when loading a checkpoint whose two matrices differ); Flan-T5 keeps them apart, so do we.
        t5.config.tie_word_embeddings = False
        t5.lm_head.weight = nn.Parameter(torch.empty_like(t5.shared.weight))
        nn.init.normal_(t5.lm_head.weight, std=t5.config.initializer_factor)  # (a no-op under skip_init)
    return t5


class VideoBLIP2(nn.Module):
    """Audio-visual captioner: two Q-Formers feeding a frozen, LoRA-adapted Flan-T5."""

    def __init__(
        self,
        config: VideoBLIP2Config,
        t5_tokenizer: PreTrainedTokenizerBase | None = None,
        qformer_tokenizer: PreTrainedTokenizerBase | None = None,
        t5: T5ForConditionalGeneration | None = None,
    ):
        super().__init__()
        self.config = config
        self.t5_tokenizer = t5_tokenizer or AutoTokenizer.from_pretrained(config.t5_tokenizer)
        self.qformer_tokenizer = qformer_tokenizer or AutoTokenizer.from_pretrained(config.qformer_tokenizer)
        q = config.qformer
        qformer_config = qformer_hf_config(config, vocab_size=max(q.vocab_size, len(self.qformer_tokenizer)))

        # Video branch: CLIP frame features -> Q-Former encoder width, plus a learned position per frame that
        # starts sinusoidal (frame order must matter: "opens" and "closes" are the same frames reversed).
        self.video_input_proj = nn.Linear(config.video_dim, q.encoder_width)
        self.video_time_embedding = nn.Parameter(torch.zeros(1, config.max_frames, q.encoder_width))
        self.video_input_norm = nn.LayerNorm(q.encoder_width)
        self.video_query_tokens = nn.Parameter(torch.zeros(1, q.num_query_tokens, q.hidden_size))
        self.video_qformer = InstructBlipQFormerModel(qformer_config)
        # Audio branch: the "audio upscaler" lifts CLAP's 512-d windows to the Q-Former encoder width.
        self.audio_upscaler = nn.Linear(config.audio_dim, q.encoder_width)
        self.audio_time_embedding = nn.Parameter(torch.zeros(1, config.max_audio_windows, q.encoder_width))
        self.audio_input_norm = nn.LayerNorm(q.encoder_width)
        self.audio_query_tokens = nn.Parameter(torch.zeros(1, q.num_query_tokens, q.hidden_size))
        self.audio_qformer = InstructBlipQFormerModel(qformer_config)

        t5 = t5 if t5 is not None else build_t5(config)
        d_model = t5.config.d_model
        self.proj_video = nn.Linear(q.hidden_size, d_model)
        self.proj_audio = nn.Linear(q.hidden_size, d_model)
        for p in (self.video_time_embedding, self.audio_time_embedding,
                  self.video_query_tokens, self.audio_query_tokens):
            nn.init.normal_(p, std=0.02)
        if config.video_time_init_scale > 0:  # frame order visible from the first step (config.py says why)
            with torch.no_grad():
                self.video_time_embedding.copy_(
                    sinusoidal_positions(config.max_frames, q.encoder_width)[None] * config.video_time_init_scale)

        # Flan-T5 stays frozen; peft adds trainable LoRA matrices on the attention q and v projections.
        lora = LoraConfig(
            r=config.lora.r,
            lora_alpha=config.lora.alpha,
            lora_dropout=config.lora.dropout,
            target_modules=list(config.lora.target_modules),
            bias="none",
        )
        with warnings.catch_warnings():
            # peft 0.21's PeftModel.__init__ reads `model.is_gradient_checkpointing`, a property transformers 5
            # deprecated (FutureWarning on every model build). Only that warning, only here; our activation
            # checkpointing does not go through it (set_activation_checkpointing).
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                                    category=FutureWarning)
            self.t5 = get_peft_model(t5, lora)
        if config.t5.train_base:
            self.t5.get_base_model().requires_grad_(True)

        # The last Q-Former layer's text feed-forward only produces prompt-token outputs, which nothing reads
        # (only query outputs go on): freeze it so every trainable parameter is one that training can change.
        for qformer in (self.video_qformer, self.audio_qformer):
            last = qformer.encoder.layer[-1]
            for module in (last.intermediate, last.output):
                module.requires_grad_(False)

        self._prompt_cache: dict[str, PromptTokens] = {}

    # ------------------------------------------------------------------ inputs
    @property
    def device(self) -> torch.device:
        return self.proj_video.weight.device

    def _check_features(self, name: str, x: torch.Tensor, dim: int, max_len: int, limit_field: str) -> None:
        if x.dim() != 3 or x.shape[-1] != dim:
            raise ValueError(f"{name} features must have shape (B, T, {dim}), got {tuple(x.shape)}")
        if x.shape[1] > max_len:
            raise ValueError(
                f"{name} has {x.shape[1]} time steps but config.{limit_field}={max_len}; "
                "subsample it (videoblip2.data does) or raise the limit"
            )

    def _prompt_tokens(self, prompt: Prompt, batch_size: int) -> PromptTokens:
        """(B, P) prompt ids and masks for both sides, on the model's device, from any `Prompt`.

        One string is tokenized once and cached, then expanded (no copy) to the batch: the caption path.
        """
        if isinstance(prompt, PromptTokens):
            if prompt.qformer_ids.shape[0] != batch_size or prompt.t5_ids.shape[0] != batch_size:
                raise ValueError(f"prompt tokens have {prompt.qformer_ids.shape[0]} / {prompt.t5_ids.shape[0]} "
                                 f"rows for a batch of {batch_size}")
            return prompt.to(self.device)
        if prompt is None or isinstance(prompt, str):
            prompt = self.config.prompt if prompt is None else prompt
            if prompt not in self._prompt_cache:
                self._prompt_cache[prompt] = self.tokenize_prompts([prompt])
            return PromptTokens(*(x.to(self.device).expand(batch_size, -1) for x in self._prompt_cache[prompt]))
        if len(prompt) != batch_size:
            raise ValueError(f"{len(prompt)} prompts for a batch of {batch_size}; give one string or one per sample")
        return self.tokenize_prompts(prompt).to(self.device)

    def tokenize_prompts(self, prompts: Sequence[str]) -> PromptTokens:
        """Prompts as this model reads them (both tokenizers, the config's length limits), right-padded, on CPU."""
        return tokenize_prompts(prompts, self.qformer_tokenizer, self.t5_tokenizer,
                                qformer_max_len=self.config.qformer.max_prompt_len,
                                t5_max_len=self.config.max_prompt_len)

    def tokenize_questions(self, questions: Sequence[str]) -> tuple[PromptTokens, Any]:
        """Questions in `config.qa_prompt_template`, a long one cut at a word, never the template
        (`videoblip2.data.tokenize_questions`): (tokens on CPU, bool array of the questions cut)."""
        return tokenize_questions(questions, self.config.qa_prompt_template, self.qformer_tokenizer,
                                  self.t5_tokenizer, qformer_max_len=self.config.qformer.max_prompt_len,
                                  t5_max_len=self.config.max_prompt_len)

    def _query_outputs(
        self,
        qformer: InstructBlipQFormerModel,
        query_tokens: torch.Tensor,
        features: torch.Tensor,  # (B, T, encoder_width)
        feature_mask: torch.Tensor,  # (B, T) bool
        prompt_ids: torch.Tensor,  # (B, P)
        prompt_mask: torch.Tensor,  # (B, P)
    ) -> torch.Tensor:
        batch = features.shape[0]
        queries = query_tokens.expand(batch, -1, -1)  # (B, Q, H)
        # InstructBLIP's self-attention mask covers [queries + prompt tokens].
        attention_mask = torch.cat([torch.ones(queries.shape[:2], dtype=prompt_mask.dtype,
                                               device=prompt_mask.device), prompt_mask], dim=1)
        out = qformer(
            input_ids=prompt_ids,
            attention_mask=attention_mask,
            query_embeds=queries,
            encoder_hidden_states=features,
            encoder_attention_mask=feature_mask.long(),
        )
        return out.last_hidden_state[:, : queries.shape[1]]  # (B, Q, H)

    def encode(
        self,
        video: torch.Tensor,
        video_mask: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        prompt: Prompt = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Build the T5 encoder input: returns inputs_embeds (B, 2Q+P, d_t5) and attention_mask (B, 2Q+P).

        `prompt` (a `Prompt`: shared or one per sample) goes into both Q-Formers, whose queries attend to it
        (InstructBLIP's instruction-aware queries), and after the queries into T5. A sample's output does not
        depend on the other prompts of its batch: padding is masked everywhere.
        """
        cfg = self.config
        batch, t_video = video.shape[:2]
        self._check_features("video", video, cfg.video_dim, cfg.max_frames, "max_frames")
        dtype = self.video_input_proj.weight.dtype
        video = video.to(self.device, dtype)
        if video_mask is None:
            video_mask = torch.ones(batch, t_video, dtype=torch.bool, device=self.device)
        video_mask = video_mask.to(self.device, torch.bool)
        if audio is None:  # no sound in the whole batch: keep one masked window so shapes stay uniform
            audio = video.new_zeros(batch, 1, cfg.audio_dim)
            audio_mask = torch.zeros(batch, 1, dtype=torch.bool, device=self.device)
        self._check_features("audio", audio, cfg.audio_dim, cfg.max_audio_windows, "max_audio_windows")
        audio = audio.to(self.device, dtype)
        if audio_mask is None:
            audio_mask = torch.ones(audio.shape[:2], dtype=torch.bool, device=self.device)
        audio_mask = audio_mask.to(self.device, torch.bool)
        has_audio = audio_mask.any(dim=1)  # (B,)
        q_ids, q_mask, t5_prompt_ids, t5_prompt_mask = self._prompt_tokens(prompt, batch)

        # 1. video branch
        v = self.video_input_proj(video) + self.video_time_embedding[:, :t_video]  # (B, T_v, W)
        v = self.video_input_norm(v)
        v_queries = self._query_outputs(self.video_qformer, self.video_query_tokens, v, video_mask, q_ids, q_mask)
        v_queries = self.proj_video(v_queries)  # (B, Q, d_t5)

        # 2. audio branch. A silent video keeps one (zeroed) window visible so attention stays finite;
        # its audio queries are masked out of T5 below, so no output depends on them.
        audio = audio * audio_mask.unsqueeze(-1)
        audio_mask = audio_mask.clone()
        audio_mask[:, 0] |= ~has_audio  # not audio_mask[~has_audio, 0] = True: a host sync on CUDA
        a = self.audio_upscaler(audio) + self.audio_time_embedding[:, : audio.shape[1]]  # (B, T_a, W)
        a = self.audio_input_norm(a)
        a_queries = self._query_outputs(self.audio_qformer, self.audio_query_tokens, a, audio_mask, q_ids, q_mask)
        a_queries = self.proj_audio(a_queries)  # (B, Q, d_t5)

        # 3. T5 encoder input: [video queries, audio queries, prompt tokens]
        prompt_embeds = self.t5.get_input_embeddings()(t5_prompt_ids).to(v_queries.dtype)  # (B, P, d_t5)
        inputs_embeds = torch.cat([v_queries, a_queries, prompt_embeds], dim=1)
        n_q = v_queries.shape[1]
        attention_mask = torch.cat([
            torch.ones(batch, n_q, dtype=torch.long, device=self.device),
            has_audio.long().unsqueeze(1).expand(batch, n_q),
            t5_prompt_mask.long(),
        ], dim=1)
        return inputs_embeds, attention_mask

    # ------------------------------------------------------------------ training
    def forward(
        self,
        video: torch.Tensor,
        video_mask: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        prompt: Prompt = None,
        return_loss: bool = True,
    ) -> VideoBLIP2Output:
        """Teacher-forced T5 pass. `labels` (B, L) are caption ids ending with EOS, padded with -100.

        `return_loss=False`: the labels only give the decoder inputs and no loss is computed (the same
        logits), for callers that compute their own loss from the logits, such as train_ce's summed one.
        """
        inputs_embeds, attention_mask = self.encode(video, video_mask, audio, audio_mask, prompt)
        if labels is not None:
            labels = labels.to(self.device).contiguous()  # T5 flattens it with .view
            if not return_loss:  # what T5 derives from labels, without its cross-entropy over the vocabulary
                decoder_input_ids, labels = self.t5.get_base_model()._shift_right(labels), None
        out = self.t5(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels,
                      decoder_input_ids=decoder_input_ids, use_cache=False)  # no KV cache to build in one pass
        return VideoBLIP2Output(loss=out.loss, logits=out.logits)

    # ------------------------------------------------------------------ inference
    def _decode(self, sequences: torch.Tensor) -> list[str]:
        return [s.strip() for s in self.t5_tokenizer.batch_decode(sequences, skip_special_tokens=True)]

    @torch.no_grad()
    def generate(
        self,
        video: torch.Tensor,
        video_mask: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        prompt: Prompt = None,
        num_beams: int = 1,
        do_sample: bool = False,
        max_new_tokens: int | None = None,
        return_ids: bool = False,
        **generate_kwargs,
    ) -> list[str] | tuple[list[str], torch.Tensor]:
        """Captions for a batch: greedy by default, `num_beams>1` for beam search, `do_sample` for sampling.

        Decoding follows these arguments alone (`generation_config_for`): a field not given takes transformers'
        default, never the T5's saved `generation_config` (a Hub T5 may set min_new_tokens, a repetition
        penalty, ...). `generate_kwargs` that are not generation settings (logits_processor, ...) go to
        `t5.generate` as they are.
        """
        inputs_embeds, attention_mask = self.encode(video, video_mask, audio, audio_mask, prompt)
        base = self.t5.get_base_model()
        config = generation_config_for(base, num_beams=num_beams, do_sample=do_sample,
                                       max_new_tokens=max_new_tokens or self.config.max_caption_len)
        rest = config.update(**generate_kwargs)  # the generation settings among them; returns the others
        with _generation_config(base, config):
            ids = self.t5.generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                   generation_config=config, **rest)
        captions = self._decode(ids)
        return (captions, ids) if return_ids else captions

    @torch.no_grad()
    def score_candidates(
        self,
        video: torch.Tensor,
        video_mask: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        prompt: Prompt = None,
        candidates: Sequence[str] | Sequence[Sequence[int]] = (),
        candidate_chunk: int = 64,
    ) -> torch.Tensor:
        """Log-likelihood of every candidate answer for every video, (B, A): summed token log-probs, EOS included.

        Closed-vocabulary answering ranks them (`argmax` over A). `candidates` are strings or token id lists
        ending with EOS (`videoblip2.data.tokenize_captions`, to tokenize them once). Each video is encoded once
        (Q-Formers, T5 encoder); its candidates are packed into one decoder sequence, [<start> a1 a2 | <start> b1
        | ...], under a block-diagonal causal mask, so that one teacher-forced decoder pass per video scores
        `candidate_chunk` candidates: the encoder output and its cross-attention keys and values serve them all.
        T5's decoder has relative positions only, so each candidate sees the same position biases as alone and
        gets the same log-likelihood as its own teacher-forced pass.
        """
        if candidates and isinstance(candidates[0], str):
            from .data import tokenize_captions

            candidates = tokenize_captions(candidates, self.t5_tokenizer, self.config.max_caption_len)
        if not candidates:
            raise ValueError("score_candidates needs at least one candidate")
        inputs_embeds, attention_mask = self.encode(video, video_mask, audio, audio_mask, prompt)
        encoder_hidden = self.t5.get_encoder()(inputs_embeds=inputs_embeds,
                                               attention_mask=attention_mask).last_hidden_state  # (B, S, d)
        batch, device = encoder_hidden.shape[0], self.device
        start = self.t5.get_base_model().config.decoder_start_token_id
        scores = []
        for first in range(0, len(candidates), candidate_chunk):
            chunk = [list(c) for c in candidates[first: first + candidate_chunk]]
            targets = torch.tensor([t for c in chunk for t in c], device=device)  # (N,) all candidates' tokens
            inputs = torch.tensor([t for c in chunk for t in [start, *c[:-1]]], device=device)  # shifted right
            segment = torch.tensor([i for i, c in enumerate(chunk) for _ in c], device=device)  # (N,)
            n = len(targets)
            causal = torch.arange(n, device=device)[:, None] >= torch.arange(n, device=device)[None, :]
            allowed = causal & (segment[:, None] == segment[None, :])  # (N, N) block-diagonal causal
            out = self.t5(encoder_outputs=(encoder_hidden,), attention_mask=attention_mask,
                          decoder_input_ids=inputs.expand(batch, -1),
                          decoder_attention_mask=self._decoder_mask(allowed), use_cache=False)
            logp = F.log_softmax(out.logits.float(), dim=-1)  # (B, N, V)
            token_logp = logp.gather(-1, targets.expand(batch, -1).unsqueeze(-1)).squeeze(-1)  # (B, N)
            scores.append(token_logp.new_zeros(batch, len(chunk)).index_add_(1, segment, token_logp))
        return torch.cat(scores, dim=1)  # (B, A)

    def _decoder_mask(self, allowed: torch.Tensor) -> torch.Tensor:
        """A custom (N, N) decoder self-attention pattern as the 4D mask T5 takes as-is: (1, 1, N, N).

        Boolean (True = attend) for SDPA, additive float for the eager attention, which adds it to the scores.
        """
        if self.t5.get_base_model().decoder.config._attn_implementation == "sdpa":
            return allowed[None, None]
        return torch.zeros(allowed.shape, device=allowed.device).masked_fill(~allowed, torch.finfo(torch.float32).min)[
            None, None]

    def sample_with_logprobs(
        self,
        video: torch.Tensor,
        video_mask: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        num_samples: int = 5,
        temperature: float = 1.0,
        max_new_tokens: int | None = None,
        include_greedy: bool = False,
        prompt: Prompt = None,
        block_bad_endings: bool = False,
        **generate_kwargs,
    ) -> SampleOutput:
        """Sample K captions per video for SCST, and their log-probs with gradients.

        Each video is encoded once (Q-Formers and T5 encoder, with grad); the K samples reuse that encoder
        output. Sampling runs without grad, then one teacher-forced decoder pass over all B*K samples gives
        the log-probs with grad. The samples come from exactly the distribution that is scored: sampling uses
        `scst_sampling_config` (plain multinomial at `temperature`), not the base T5's generation_config
        (whose repetition_penalty, no_repeat_ngram_size, ... would change what is drawn but not the
        log-probs), and the log-probs apply the same processing: `temperature`, and with
        `block_bad_endings` EOS forbidden right after a bad ending (videoblip2.decoding.BlockBadEndings).
        `include_greedy` adds each video's greedy caption, decoded in the same `t5.generate` call as the
        samples. `generate_kwargs` go to that call (e.g. `cache_implementation="static"`).
        """
        inputs_embeds, attention_mask = self.encode(video, video_mask, audio, audio_mask, prompt)
        encoder_hidden = self.t5.get_encoder()(inputs_embeds=inputs_embeds,
                                               attention_mask=attention_mask).last_hidden_state  # (B, S, d)
        batch = encoder_hidden.shape[0]
        n_samples = batch * num_samples
        sample_hidden = encoder_hidden.repeat_interleave(num_samples, dim=0)  # (B*K, S, d), with grad
        sample_mask = attention_mask.repeat_interleave(num_samples, dim=0)
        with torch.no_grad():
            # One decode for everything: rows [0, B*K) sample, rows [B*K, B*K + B) (the greedy captions, when
            # asked for) go through GreedyRows, which keeps only their argmax. Half the decode steps of a
            # separate greedy generate, and the greedy captions are the same.
            hidden, mask = sample_hidden.detach(), sample_mask
            processors = []
            blocker = None
            if block_bad_endings:
                from .decoding import BlockBadEndings

                blocker = BlockBadEndings(self.t5_tokenizer)
                processors.append(blocker)  # before GreedyRows: the greedy rows take the best allowed token
            if include_greedy:
                hidden = torch.cat([hidden, encoder_hidden.detach()])
                mask = torch.cat([mask, attention_mask])
                greedy_rows = torch.arange(hidden.shape[0], device=hidden.device) >= n_samples
                processors.append(GreedyRows(greedy_rows))
            sampling = scst_sampling_config(self.t5.get_base_model(), temperature,
                                            max_new_tokens or self.config.max_caption_len)
            with _generation_config(self.t5.get_base_model(), sampling):
                decoded = self.t5.generate(
                    encoder_outputs=BaseModelOutput(last_hidden_state=hidden), attention_mask=mask,
                    generation_config=sampling, logits_processor=LogitsProcessorList(processors), **generate_kwargs,
                )[:, 1:]  # drop the decoder start token
        eos = self.t5_tokenizer.eos_token_id
        greedy_captions = self._decode(decoded[n_samples:]) if include_greedy else None
        greedy_ended = (decoded[n_samples:] == eos).any(dim=1) if include_greedy else None
        sequences = decoded[:n_samples]
        token_mask = caption_token_mask(sequences, self.t5_tokenizer.eos_token_id)
        sequences = sequences.masked_fill(token_mask == 0, self.t5_tokenizer.pad_token_id)
        # Decoded before the teacher-forced pass: decoding reads the ids on the host (a sync). After it, the
        # pass below is queued without a sync, so on CUDA the caller's CPU-side reward overlaps with it.
        captions = self._decode(sequences)
        # decoder_input_ids rather than labels: with labels T5 also computes a cross-entropy over the whole
        # vocabulary that nothing reads. These are the inputs T5 derives from labels (_shift_right).
        decoder_input_ids = self.t5.get_base_model()._shift_right(sequences)
        out = self.t5(
            encoder_outputs=(sample_hidden,),
            attention_mask=sample_mask,
            decoder_input_ids=decoder_input_ids,
            use_cache=False,
        )
        logits = out.logits.float()
        if blocker is not None:  # the sampler's processing, position by position
            is_eos = torch.arange(logits.shape[-1], device=logits.device) == eos  # (V,)
            logits = logits.masked_fill(blocker.blocked(decoder_input_ids).unsqueeze(-1) & is_eos, float("-inf"))
        logp = F.log_softmax(logits / temperature, dim=-1)
        token_logp = logp.gather(-1, sequences.unsqueeze(-1)).squeeze(-1) * token_mask
        return SampleOutput(
            sequences=sequences,
            token_mask=token_mask,
            logprobs=token_logp.sum(dim=1),
            captions=captions,
            greedy_captions=greedy_captions,
            ended=(sequences == eos).any(dim=1),
            greedy_ended=greedy_ended,
        )

    # ------------------------------------------------------------------ parameters
    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen base T5: Q-Formers, queries, projections, LoRA adapters."""
        return {k: v for k, v in self.state_dict().items() if not _is_t5_base_key(k)}

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def cast_frozen_t5(self, dtype: torch.dtype = torch.bfloat16) -> int:
        """Store the frozen T5's linear weights in `dtype`, for running under autocast to that dtype.

        Autocast casts every linear weight to its dtype on each call. A frozen weight stored in that dtype
        gives the same products, bit for bit, with no per-call cast and half the memory. Trained weights
        (LoRA, a `train_base` T5), norms and embeddings stay fp32 (T5's norm casts its output to a
        half-precision weight's dtype). Outside autocast, the model then fails with a dtype mismatch. A
        `save_pretrained` that writes the base T5 (`merge_lora=True`, a random or trained base) writes these
        weights rounded to `dtype`; merge from a model loaded with `from_pretrained` to keep fp32.
        Returns how many parameters are stored in `dtype`.
        """
        embedding = self.t5.get_input_embeddings().weight
        cast = 0
        for module in self.t5.modules():
            if isinstance(module, nn.Linear) and not module.weight.requires_grad and module.weight is not embedding:
                module.weight.data = module.weight.data.to(dtype)
                cast += module.weight.numel()
                if module.bias is not None:
                    module.bias.data = module.bias.data.to(dtype)
                    cast += module.bias.numel()
        return cast

    def checkpointable_parts(self) -> dict[str, nn.Module]:
        """The parts whose layers `set_activation_checkpointing` can recompute, by name (CHECKPOINTABLE_PARTS)."""
        t5 = self.t5.get_base_model()
        return {"t5_encoder": t5.encoder, "t5_decoder": t5.decoder,
                "qformers": nn.ModuleList([self.video_qformer, self.audio_qformer])}

    def set_activation_checkpointing(self, parts: Iterable[str] = ("t5_encoder",)) -> int:
        """Recompute the layers of `parts` during backward instead of keeping their activations.

        Parts: "t5_encoder", "t5_decoder", "qformers"; an empty list turns it off. Only each layer's input is
        kept; backward runs the layer's forward again with the same dropout masks (the RNG state is
        restored), so losses and gradients are those of the model without it. It costs one more forward of
        those layers per step (T5 encoder: about 14% more training FLOPs at real size) and applies in
        training mode only: SCST, which runs in eval mode, and generation are unchanged.
        Returns how many layers are checkpointed.
        """
        available = self.checkpointable_parts()
        parts = set(parts)
        unknown = parts - set(available)
        if unknown:
            raise ValueError(f"unknown activation-checkpointing part(s) {sorted(unknown)}; "
                             f"choose from {sorted(available)}")
        # Non-reentrant: gradients also reach tensors passed as keyword arguments (the Q-Formers' frame
        # features, the decoder's encoder states), and the frozen T5's inputs need not require grad.
        recompute = functools.partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)
        layers = 0
        for name, part in available.items():
            for module in part.modules():
                if isinstance(module, GradientCheckpointingLayer):
                    module.gradient_checkpointing = name in parts
                    module._gradient_checkpointing_func = recompute
                    layers += name in parts
        return layers

    def init_qformers(self, bert: str | None = None, blip2: str | None = None, verbose: bool = True):
        """Initialise both Q-Formers and their query tokens from BERT and a BLIP-2 checkpoint (same start).

        Returns the load report (videoblip2.blip2_init.LoadReport), which accounts for every source key.
        A BLIP-2 / InstructBLIP checkpoint whose vocabulary has the [DEC] row (30523 rows) grows both
        Q-Formers' vocabularies and `config.qformer.vocab_size` to match, so save / load round-trips.
        """
        from .blip2_init import init_qformer

        report = init_qformer(self.video_qformer, self.video_query_tokens, bert=bert, blip2=blip2)
        if report.vocab_resized:
            rows = report.vocab_resized[1]
            self.audio_qformer.resize_token_embeddings(rows, mean_resizing=False)
            self.config.qformer.vocab_size = rows
        self.audio_qformer.load_state_dict(self.video_qformer.state_dict())
        with torch.no_grad():
            self.audio_query_tokens.copy_(self.video_query_tokens)
        if verbose:
            print(report.summary())
        return report

    # ------------------------------------------------------------------ save / load
    def save_pretrained(self, save_directory: str | os.PathLike, merge_lora: bool = False) -> None:
        """Write config.json, model.safetensors and both tokenizers (Hugging Face layout).

        By default the directory holds the trained weights and names the base T5 (`t5.name_or_path`); a
        randomly initialised or trained base (`t5.architecture`, `t5.train_base`) is saved with it.
        `merge_lora=True` writes a standalone directory: LoRA merged into the T5 weights, all weights saved.
        """
        path = Path(save_directory)
        path.mkdir(parents=True, exist_ok=True)
        config = VideoBLIP2Config.from_dict(self.config.to_dict())
        if merge_lora:
            state = self._merged_state_dict()
            base = self.t5.get_base_model()
            skip = ("transformers_version", "architectures", "_name_or_path", "scale_decoder_outputs")
            config.t5.architecture = {k: v for k, v in base.config.to_dict().items() if k not in skip}
            # T5Config reads "tie_word_embeddings" as "is lm_head the input embedding" (and scales outputs if so)
            config.t5.architecture["tie_word_embeddings"] = base.lm_head.weight is base.shared.weight
        elif config.t5.architecture is not None or config.t5.train_base:
            state = self.state_dict()
        else:
            state = self.trained_state_dict()
        state = {k: v.detach().contiguous().clone() for k, v in state.items()}
        with atomic_target(path / WEIGHTS_NAME) as tmp:  # a full disk leaves the previous weights whole
            save_file(state, str(tmp), metadata={"format": "pt", "merged_lora": str(merge_lora)})
        config.save(path / CONFIG_NAME)
        self.t5_tokenizer.save_pretrained(path / T5_TOKENIZER_DIR)
        self.qformer_tokenizer.save_pretrained(path / QFORMER_TOKENIZER_DIR)

    def push_to_hub(self, repo_id: str, *, private: bool = False, commit_message: str | None = None,
                    token: str | bool | None = None) -> str:
        """Upload this model to the Hugging Face Hub repository `repo_id` (created if needed); returns its URL.

        The repository gets the `save_pretrained` files and a model card (README.md) from the config; a trained
        run is better published with ``python -m videoblip2.publish RUN``, whose card also carries the recipe,
        the feature extractors and the test metrics. The token: `token`, else ``HF_TOKEN`` or the saved login.
        """
        import tempfile

        from .publish import publish

        with tempfile.TemporaryDirectory(prefix="videoblip2-push-") as tmp:
            self.save_pretrained(tmp)
            return publish(tmp, repo_id, private=private, commit_message=commit_message, token=token)

    def _merged_state_dict(self) -> dict[str, torch.Tensor]:
        """State dict with each LoRA delta folded into its base weight and the adapters zeroed."""
        state = dict(self.state_dict())
        scale = self.config.lora.alpha / self.config.lora.r
        for key in [k for k in state if k.endswith(".lora_A.default.weight")]:
            stem = key[: -len(".lora_A.default.weight")]
            a, b = state[key], state[f"{stem}.lora_B.default.weight"]
            state[f"{stem}.base_layer.weight"] = state[f"{stem}.base_layer.weight"] + scale * (b @ a)
            state[f"{stem}.lora_B.default.weight"] = torch.zeros_like(b)
        return state

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        map_location: str | torch.device = "cpu",
    ) -> VideoBLIP2:
        """Rebuild a model written by `save_pretrained`: a local folder, or a Hugging Face Hub id (``org/name``).

        Args:
            name_or_path: a `save_pretrained` folder, or a Hub model repository (published with `push_to_hub` or
                ``python -m videoblip2.publish``), fetched into the huggingface_hub cache (``HF_HOME``); offline
                (``HF_HUB_OFFLINE=1``) a cached copy is used.
            revision: branch, tag or commit of a Hub repository (default: main).
            cache_dir: huggingface_hub cache folder (default: ``HF_HUB_CACHE``).
            local_files_only: never go to the network; the cached copy or an error.
            token: Hub token for private repositories (default: ``HF_TOKEN`` or the saved login).
            map_location: device of the returned model (in eval mode, like transformers').

        The base T5 the config names (`t5.name_or_path`, unless its weights are in the folder) is resolved the
        same way (cache, offline, token); the tokenizers come from the folder. A name that cannot be resolved
        raises `videoblip2.hub.HubError` (a `CheckpointError`) naming it and what to do, before any weights load.
        """
        from .hub import resolve, resolve_t5

        hub = dict(cache_dir=cache_dir, local_files_only=local_files_only, token=token)
        path = resolve(name_or_path, revision=revision, **hub)
        if not path.is_dir():
            raise CheckpointError(f"{path}: no such model directory")
        for needed in (CONFIG_NAME, WEIGHTS_NAME, T5_TOKENIZER_DIR, QFORMER_TOKENIZER_DIR):
            if not (path / needed).exists():
                raise CheckpointError(f"{path}: missing {needed}; is this a VideoBLIP2 save_pretrained directory?")
        try:
            config = VideoBLIP2Config.load(path / CONFIG_NAME)
        except ConfigError as e:
            raise CheckpointError(str(e)) from None
        # A base T5 named by hub id or path is loaded by transformers (which initialises nothing it loads); every
        # other module is built without initialising it (`skip_init`): the checkpoint overwrites all of it, and
        # the checks below refuse a checkpoint that misses any of it.
        t5_source = None if config.t5.architecture is not None else resolve_t5(config.t5.name_or_path, **hub)
        t5 = None if t5_source is None else build_t5(config, t5_source)
        with skip_init():
            model = cls(
                config,
                t5_tokenizer=_load_tokenizer(path / T5_TOKENIZER_DIR),
                qformer_tokenizer=_load_tokenizer(path / QFORMER_TOKENIZER_DIR),
                t5=t5,
            )
        try:
            state = load_file(str(path / WEIGHTS_NAME), device=str(map_location))
        except Exception as error:  # safetensors' SafetensorError (truncated header/data), OSError
            raise CheckpointError(f"{path / WEIGHTS_NAME}: cannot read the weights ({type(error).__name__}: "
                                  f"{error}); the file is truncated or corrupt, copy or save it again") from None
        expected = model.state_dict()
        unexpected = sorted(set(state) - set(expected))
        if unexpected:
            raise CheckpointError(f"{path / WEIGHTS_NAME}: keys the model does not have: {unexpected[:5]}")
        missing = sorted(set(expected) - set(state))
        # A directory may omit the frozen base T5 (loaded by name above); everything else must be there.
        not_base = [k for k in missing if not _is_t5_base_key(k)]
        if not_base or (missing and (config.t5.architecture is not None or config.t5.train_base)):
            raise CheckpointError(f"{path / WEIGHTS_NAME}: missing weights {(not_base or missing)[:5]}")
        for key, value in state.items():
            if value.shape != expected[key].shape:
                raise CheckpointError(
                    f"{path / WEIGHTS_NAME}: {key} has shape {tuple(value.shape)}, "
                    f"config.json expects {tuple(expected[key].shape)}"
                )
        model.load_state_dict(state, strict=False)
        return model.to(map_location).eval()  # like transformers' from_pretrained: ready for inference


def generation_config_for(t5: T5ForConditionalGeneration, **fields: Any) -> GenerationConfig:
    """A GenerationConfig of `fields` and the T5's special token ids, nothing else.

    Every other field stays unset, so transformers fills it with its global default
    (`GenerationConfig._get_default_generation_params`) and, inside `_generation_config(t5, config)`, not
    from the T5's own `generation_config`: decoding depends on `fields` alone, never on settings saved
    with the T5.
    """
    return GenerationConfig(decoder_start_token_id=t5.config.decoder_start_token_id,
                            eos_token_id=t5.config.eos_token_id, pad_token_id=t5.config.pad_token_id, **fields)


def scst_sampling_config(t5: T5ForConditionalGeneration, temperature: float, max_new_tokens: int) -> GenerationConfig:
    """Plain multinomial sampling at `temperature`: every logits processor and warper off, nothing inherited.

    The fields a processor reads are set to their do-nothing values; `_generation_config` then stands this
    config in for the T5's own during the call, so no field left unset is filled from a hub generation_config.
    """
    return GenerationConfig(
        do_sample=True, num_beams=1, num_return_sequences=1, temperature=temperature, top_k=0, top_p=1.0,
        typical_p=1.0, min_p=None, epsilon_cutoff=0.0, eta_cutoff=0.0, repetition_penalty=1.0,
        encoder_repetition_penalty=1.0, no_repeat_ngram_size=0, encoder_no_repeat_ngram_size=0, min_length=0,
        max_new_tokens=max_new_tokens, length_penalty=1.0, renormalize_logits=False,
        remove_invalid_values=False, decoder_start_token_id=t5.config.decoder_start_token_id,
        eos_token_id=t5.config.eos_token_id, pad_token_id=t5.config.pad_token_id,
    )


@contextlib.contextmanager
def _generation_config(t5: T5ForConditionalGeneration, config: GenerationConfig):
    """`t5.generation_config` is `config` inside the block (transformers fills unset fields from it)."""
    saved = t5.generation_config
    t5.generation_config = config
    try:
        yield
    finally:
        t5.generation_config = saved


class GreedyRows(LogitsProcessor):
    """Turns some rows of a sampling decode into greedy decoding: every score but the row's argmax is -inf.

    Runs before the sampling warpers (temperature, top-k/p), which leave a single finite score alone, so
    these rows always draw their argmax: the same token as greedy decoding under the same processors.
    """

    def __init__(self, rows: torch.Tensor):
        self.rows = rows  # (N,) bool, True for the greedy rows

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        best = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, scores.argmax(dim=-1, keepdim=True), True)
        return torch.where(self.rows.unsqueeze(1) & ~best, float("-inf"), scores)


def _load_tokenizer(folder: Path) -> Any:
    """AutoTokenizer.from_pretrained, with a corrupt file named: transformers raises a bare JSONDecodeError."""
    try:
        return AutoTokenizer.from_pretrained(folder)
    except Exception as error:
        broken = []
        for file in sorted(folder.glob("*.json")):
            try:
                json.loads(file.read_text(encoding="utf-8"))
            except (ValueError, OSError) as bad:
                broken.append(f"{file}: {type(bad).__name__}: {bad}")
        where = broken[0] if broken else f"{folder}: {type(error).__name__}: {error}"
        raise CheckpointError(f"cannot load the tokenizer ({where}); the file is truncated or corrupt, "
                              "copy or save the model again") from None


def _is_t5_base_key(key: str) -> bool:
    return key.startswith(_T5_BASE_PREFIX) and "lora_" not in key


def caption_token_mask(sequences: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """1 for every token up to and including the first EOS, 0 after it.  (N, L) -> (N, L) float.

    >>> caption_token_mask(torch.tensor([[5, 1, 0], [5, 6, 7]]), eos_token_id=1).tolist()
    [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    """
    is_eos = (sequences == eos_token_id).long()
    after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0
    return (~after_eos).float()

