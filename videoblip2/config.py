"""VideoBLIP2 configuration: every architecture default lives here, once."""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from .fileio import atomic_write_text


class ConfigError(ValueError):
    """A configuration value or file that VideoBLIP2 cannot use."""


@dataclass
class QFormerConfig:
    """One InstructBLIP-style Q-Former per branch (video, audio); both share this shape."""

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    cross_attention_frequency: int = 2
    # Width of the features the cross-attention reads. BLIP-2's Q-Former was trained on EVA ViT-g (1408),
    # so keeping 1408 keeps every pretrained cross-attention key/value matrix; the per-branch input
    # projections map 768 (CLIP) / 512 (CLAP) features to this width.
    encoder_width: int = 1408
    num_query_tokens: int = 32
    vocab_size: int = 30522  # bert-base-uncased
    max_position_embeddings: int = 512
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    # Prompt tokens fed into the Q-Former (special tokens included); see VideoBLIP2Config.max_prompt_len.
    max_prompt_len: int = 64

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"qformer.hidden_size={self.hidden_size} is not a multiple of "
                f"qformer.num_attention_heads={self.num_attention_heads}"
            )
        if self.max_prompt_len > self.max_position_embeddings:
            raise ConfigError("qformer.max_prompt_len exceeds qformer.max_position_embeddings")


# google/flan-t5-base's transformers.T5Config: builds a real-size T5 with random weights, no download
# (benchmarks, parameter counts).
FLAN_T5_BASE_ARCHITECTURE: dict[str, Any] = dict(
    vocab_size=32128, d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_decoder_layers=12, num_heads=12,
    feed_forward_proj="gated-gelu", tie_word_embeddings=False, relative_attention_num_buckets=32,
    relative_attention_max_distance=128, dropout_rate=0.1, layer_norm_epsilon=1e-6,
    pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
)


@dataclass
class T5Config:
    """The frozen language model. `architecture` builds a randomly initialised T5 instead of loading one."""

    name_or_path: str = "google/flan-t5-base"
    # A transformers.T5Config dict: used for tiny test models and real-size benchmarks without a download.
    architecture: dict[str, Any] | None = None
    tokenizer: str | None = None  # defaults to name_or_path
    # Train every T5 weight, not only LoRA. For randomly initialised (tiny) T5s only: they have no
    # pretrained language to preserve, and a frozen random T5 learns captions far too slowly.
    train_base: bool = False
    # Override of the T5's dropout_rate (train_ce --dropout); None keeps the checkpoint's / architecture's.
    # Stored here so that a saved model, and a resumed run, rebuild the T5 with the same dropout.
    dropout_rate: float | None = None


@dataclass
class LoRAConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q", "v"])


@dataclass
class VideoBLIP2Config:
    """Architecture and tokenization of a VideoBLIP2 model; JSON round-trips, unknown keys are errors."""

    video_dim: int = 768  # CLIP ViT-L/14 image embedding
    audio_dim: int = 512  # CLAP audio embedding
    max_frames: int = 32
    max_audio_windows: int = 16
    # Start of the learned per-frame time embedding: sinusoidal positions (Vaswani et al. 2017; root mean square
    # 0.71) times this scale. 0.3 (0.21 per dimension) puts them between the projected synthetic frame
    # features (~0.1 per dimension) and projected ViT-L/14 rows (norm ~22: ~0.46), so frame order is visible to
    # the Q-Former's cross-attention from the first step. The BERT-style start (normal, std 0.02) is a saddle
    # (query x key x position all small): with it the tiny model learned frame order in 1500 train_ce steps on
    # 1 of 3 seeds of the synthetic recipe level with visibility 0.5-1, with this start on 3 of 3 (on today's
    # level, visibility 0.25-1, both starts on 3 of 3; BENCHMARKS.md, "Frame order"). 0: that old start.
    video_time_init_scale: float = 0.3
    qformer: QFormerConfig = field(default_factory=QFormerConfig)
    t5: T5Config = field(default_factory=T5Config)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    qformer_tokenizer: str = "bert-base-uncased"
    prompt: str = "A short description of the video:"
    # Question answering: each question goes into this template, which then plays the caption prompt's part
    # (both Q-Formers and T5). InstructBLIP's VQA instruction for Flan-T5 ("Question: {} Short answer:").
    qa_prompt_template: str = "Question: {question} Short answer:"
    # T5 prompt tokens (EOS included). A QA prompt is the template (about 8 tokens
    # on each side: "Question: ... Short answer:") plus the question. The QA releases' questions are short
    # (MSRVTT-QA / MSVD-QA are generated from single captions, MUSIC-AVQA from ~30 fixed templates: a few to
    # ~20 words); 64 leaves about 55 word pieces (~40 words) for the question, past the longest caption-length
    # question. Prompts are padded to the longest of each batch only, so the limit costs nothing for short
    # ones. A longer question loses its last words, never the template (videoblip2.data.tokenize_questions),
    # and train_ce / predict report how many.
    max_prompt_len: int = 64
    max_caption_len: int = 32  # T5 caption tokens, EOS included
    # Decoding default: EOS forbidden right after a bad ending (videoblip2.decoding.BAD_ENDINGS). train_ce /
    # train_scst --block-bad-endings record it here, so predict and caption decode the model as it was trained
    # (their --no-block-bad-endings overrides it).
    block_bad_endings: bool = False

    def __post_init__(self) -> None:
        # Nested dicts (from JSON) become their dataclasses; unknown keys fail loudly.
        for name, cls in (("qformer", QFormerConfig), ("t5", T5Config), ("lora", LoRAConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, _from_dict(cls, value, prefix=f"{name}."))
        for name in ("video_dim", "audio_dim", "max_frames", "max_audio_windows", "max_caption_len"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.video_time_init_scale < 0:
            raise ConfigError(f"video_time_init_scale must be >= 0, got {self.video_time_init_scale}")
        try:
            filled = self.qa_prompt_template.format(question="\0")
        except (KeyError, IndexError, ValueError) as e:
            raise ConfigError(f"qa_prompt_template {self.qa_prompt_template!r} must have one {{question}} field "
                              f"and no other ({type(e).__name__}: {e})") from None
        if filled.count("\0") != 1:
            raise ConfigError(f"qa_prompt_template {self.qa_prompt_template!r} must contain {{question}} once")
        if self.lora.r <= 0:
            raise ConfigError(f"lora.r must be positive, got {self.lora.r}")

    def qa_prompt(self, question: str) -> str:
        """The prompt for one question: `qa_prompt_template` filled in."""
        return self.qa_prompt_template.format(question=question)

    @property
    def t5_tokenizer(self) -> str:
        return self.t5.tokenizer or self.t5.name_or_path

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VideoBLIP2Config":
        return _from_dict(cls, data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "VideoBLIP2Config":
        try:
            with open(path) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        try:
            return cls.from_dict(data)
        except (ConfigError, TypeError) as e:
            raise ConfigError(f"{path}: {e}") from None


def _from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'} must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, (dict, hint)):
                raise ConfigError(f"{prefix}{key}: expected a JSON object, got {type(value).__name__} {value!r}")
        elif not _has_type(value, hint):
            raise ConfigError(f"{prefix}{key}: expected {_type_name(hint)}, got {type(value).__name__} {value!r}")
    return cls(**data)


def _has_type(value: Any, hint: Any) -> bool:
    """JSON-level type check of one config value: int is not bool, float accepts int, containers checked inside."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, (list, tuple)) and all(_has_type(v, args[0]) for v in value) if args else True
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "null"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if hint in names:
        return names[hint]
    origin = typing.get_origin(hint)
    if origin is list:
        return f"a list ({_type_name(typing.get_args(hint)[0])} each)" if typing.get_args(hint) else "a list"
    if origin is dict:
        return "a JSON object"
    return getattr(hint, "__name__", str(hint))
