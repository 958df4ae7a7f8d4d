"""How captions are decoded: one set of options for every command that generates, and bad endings.

`DecodingOptions` holds beam search and its controls; `add_decoding_args` gives `videoblip2.predict`,
`videoblip2.caption`, `train.train_ce` and `train.train_scst` (validation) the same flags, and
`DecodingOptions.generate_kwargs` turns them into `VideoBLIP2.generate` arguments. Every predictions file gets
a sidecar `PREDICTIONS.meta.json` recording the options it was decoded with (`write_predictions_meta`); the
predictions file itself keeps the `[{"video_id", "caption"}]` format that `eval.evaluate` reads.

Bad endings: a caption whose last word is one of `BAD_ENDINGS` (an article, preposition, conjunction,
possessive or auxiliary: "a man is playing with a") is unfinished. `bad_ending_rate` measures them
(`eval.evaluate` reports it); `BlockBadEndings` is a transformers LogitsProcessor that forbids EOS right after
such a word (`--block-bad-endings`), usable in generation and in SCST sampling.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .annotations import normalize_caption
from .cli import finite_float, non_negative_int, positive_float, positive_int

if TYPE_CHECKING:  # torch and transformers load lazily: eval.evaluate imports this module for bad_ending_rate
    import torch
    from transformers import PreTrainedTokenizerBase

# Words a finished English caption does not end with. self-critical.pytorch's `grammar_rules` penalty lists
# a, an, the, with, of, on, in; the rest are the other function words SCST-trained captioners are reported to
# stop on (conjunctions, prepositions, possessives, the auxiliary of "a man is ..."). Not "her"/"it"/"up":
# they end real captions ("a man hugs her", "a woman picks it up").
BAD_ENDINGS: tuple[str, ...] = (
    "a", "an", "the",
    "with", "of", "on", "in", "at", "to", "for", "from", "by", "into", "onto", "about",
    "and", "or", "while",
    "his", "their", "its",
    "is", "are",
)

# LAVIS reports BLIP-2 captioning with beam search of 5 (lavis/projects/blip2/train/caption_coco_ft.yaml and
# the caption_coco eval configs: num_beams 5, max_len 30, min_len 8): the default for test predictions.
# Validation during training stays greedy (num_beams 1): it runs many times and only ranks checkpoints.
PREDICT_NUM_BEAMS = 5
# Widest beam the flags accept: beam search keeps batch x beams decoder states, and captioning gains nothing past
# ~10 beams (a wider beam favours short generic captions); 100000 was killed for memory without a word.
MAX_NUM_BEAMS = 64


def last_word(caption: str) -> str:
    """The last word of a caption as CIDEr-D tokenises it ('' for an empty caption)."""
    words = normalize_caption(caption).split()
    return words[-1] if words else ""


def ends_badly(caption: str, words: Iterable[str] = BAD_ENDINGS) -> bool:
    """True if the caption's last word is on the list (`BAD_ENDINGS`)."""
    return last_word(caption) in set(words)


def bad_ending_rate(captions: Iterable[str], words: Iterable[str] = BAD_ENDINGS) -> float:
    """Share of captions whose last word is on the list; 0.0 for no captions.

    >>> bad_ending_rate(["a man is cooking", "a man is playing with a", "a dog and"])
    0.6666666666666666
    """
    words = set(words)
    flags = [last_word(c) in words for c in captions]
    return sum(flags) / len(flags) if flags else 0.0


class BlockBadEndings:
    """A transformers logits processor (`__call__(input_ids, scores)`) that forbids EOS (score -inf) right after a word of `words`: no caption ends on "a", "the", "with", ...

    The prefix of each row is decoded (special tokens skipped) and its last word looked up, so a word made of
    several tokens ("an" = "▁a" + "n") counts, and a longer word ending in the same letters ("bathe") does not.
    `blocked` gives the same decision for every position of whole sequences, for a teacher-forced pass that
    must score exactly what was sampled (VideoBLIP2.sample_with_logprobs).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, words: Iterable[str] = BAD_ENDINGS):
        self.tokenizer = tokenizer
        self.eos_token_id = tokenizer.eos_token_id
        self.words = frozenset(words)

    def _ends_badly(self, prefixes: Sequence[Sequence[int]]) -> list[bool]:
        texts = self.tokenizer.batch_decode(prefixes, skip_special_tokens=True)
        return [last_word(t) in self.words for t in texts]

    def blocked(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(N, L) decoder inputs -> (N, L) bool: is EOS forbidden as the next token after position t."""
        import torch

        rows = input_ids.tolist()
        flags = self._ends_badly([row[: t + 1] for row in rows for t in range(len(row))])
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device).view(input_ids.shape)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        rows = torch.tensor(self._ends_badly(input_ids.tolist()), dtype=torch.bool, device=scores.device)
        if rows.any():
            scores = scores.clone()
            scores[rows, self.eos_token_id] = float("-inf")
        return scores


@dataclasses.dataclass(frozen=True)
class DecodingOptions:
    """Beam search and its controls for `VideoBLIP2.generate` (transformers' meanings; defaults: greedy).

    num_beams: beam width (1: greedy). length_penalty: exponent of the length normalisation of beam scores
    (>1 favours longer captions). no_repeat_ngram_size: no n-gram of this size twice (0: off).
    repetition_penalty: divides the logit of an already generated token (1: off). min_new_tokens: EOS
    forbidden before this many tokens. max_new_tokens: default the model's max_caption_len.
    block_bad_endings: EOS forbidden right after a word of BAD_ENDINGS; None: the model's default
    (`config.block_bad_endings`, recorded by a training run with `--block-bad-endings`; `for_model` resolves it).

    Every field not listed takes transformers' default, never the T5's saved `generation_config`
    (`VideoBLIP2.generate` builds the whole GenerationConfig from these options).
    """

    num_beams: int = 1
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0
    min_new_tokens: int = 0
    max_new_tokens: int | None = None
    block_bad_endings: bool | None = None

    def __post_init__(self):
        if not 1 <= self.num_beams <= MAX_NUM_BEAMS:
            raise ValueError(f"num_beams must be in 1..{MAX_NUM_BEAMS}, got {self.num_beams}")
        if not math.isfinite(self.length_penalty):
            raise ValueError(f"length_penalty must be a finite number, got {self.length_penalty}")
        if self.no_repeat_ngram_size < 0 or self.min_new_tokens < 0:
            raise ValueError("no_repeat_ngram_size and min_new_tokens must be >= 0")
        if not (math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0):
            raise ValueError(f"repetition_penalty must be > 0 and finite, got {self.repetition_penalty}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.max_new_tokens is not None and self.min_new_tokens > self.max_new_tokens:
            raise ValueError(f"min_new_tokens ({self.min_new_tokens}) must be <= max_new_tokens "
                             f"({self.max_new_tokens})")

    def for_model(self, config: Any) -> DecodingOptions:
        """These options with `block_bad_endings=None` replaced by the model's default (`config.block_bad_endings`)."""
        if self.block_bad_endings is not None:
            return self
        return dataclasses.replace(self, block_bad_endings=bool(getattr(config, "block_bad_endings", False)))

    def generate_kwargs(self, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
        """Keyword arguments of `VideoBLIP2.generate` (num_beams, max_new_tokens, the transformers controls)."""
        kwargs: dict[str, Any] = {
            "num_beams": self.num_beams, "max_new_tokens": self.max_new_tokens,
            "length_penalty": self.length_penalty, "no_repeat_ngram_size": self.no_repeat_ngram_size,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.min_new_tokens:  # (0 would make transformers warn that min_length is set too)
            kwargs["min_new_tokens"] = self.min_new_tokens
        if self.block_bad_endings:
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList([BlockBadEndings(tokenizer)])
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DecodingOptions:
        """The options `add_decoding_args` parsed."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def _num_beams(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_NUM_BEAMS:
        raise argparse.ArgumentTypeError(f"must be in 1..{MAX_NUM_BEAMS}, got {value}")
    return value


def _check_decoding(args: argparse.Namespace) -> str | None:
    """The decoding flags together (after parsing): one message, or None if they fit."""
    if args.max_new_tokens is not None and args.min_new_tokens > args.max_new_tokens:
        return (f"--min-new-tokens {args.min_new_tokens} is more than --max-new-tokens {args.max_new_tokens}: "
                "the minimum would be ignored")
    return None


def add_decoding_args(parser: argparse.ArgumentParser, *, num_beams: int = 1,
                      title: str = "decoding") -> argparse._ArgumentGroup:
    """The decoding flags (DecodingOptions' fields); `num_beams` is this command's default beam width."""
    group = parser.add_argument_group(title)
    group.add_argument("--num-beams", type=_num_beams, default=num_beams,
                       help=f"beam width, 1 = greedy, at most {MAX_NUM_BEAMS} (default {num_beams}"
                            + ("; LAVIS reports BLIP-2 captioning with 5)" if num_beams == PREDICT_NUM_BEAMS else ")"))
    group.add_argument("--length-penalty", type=finite_float, default=1.0,
                       help="beam search: exponent of the length normalisation (>1 favours longer captions)")
    group.add_argument("--no-repeat-ngram-size", type=non_negative_int, default=0,
                       help="never repeat an n-gram of this size (0: off)")
    group.add_argument("--repetition-penalty", type=positive_float, default=1.0,
                       help="penalise tokens already generated (1: off; CTRL's 1.2 is common)")
    group.add_argument("--min-new-tokens", type=non_negative_int, default=0, help="EOS forbidden before this many tokens")
    group.add_argument("--max-new-tokens", type=positive_int, default=None,
                       help="longest caption in tokens (default: the model's max_caption_len)")
    group.add_argument("--block-bad-endings", action="store_const", const=True, default=None,
                       help="forbid EOS right after " + ", ".join(BAD_ENDINGS[:6])
                            + ", ... (videoblip2.decoding.BAD_ENDINGS); default: the model's own setting (on for "
                              "a model trained with this flag, recorded in its config.json)")
    group.add_argument("--no-block-bad-endings", dest="block_bad_endings", action="store_false",
                       help="allow every ending, even for a model trained with --block-bad-endings")
    if hasattr(parser, "add_check"):  # videoblip2.cli.ArgumentParser: checked at parse time, one line
        parser.add_check(_check_decoding)
    return group


def meta_path(predictions_path: str | os.PathLike) -> str:
    """The sidecar of a predictions file: `preds.json` -> `preds.meta.json`."""
    return os.path.splitext(os.fspath(predictions_path))[0] + ".meta.json"


def write_predictions_meta(predictions_path: str | os.PathLike, decoding: DecodingOptions,
                           **fields: Any) -> str:
    """Write `PREDICTIONS.meta.json`: {"decoding": {...}, **fields} (temporary name, then rename). Returns its path."""
    from .fileio import atomic_write_json

    path = meta_path(predictions_path)
    atomic_write_json(path, {"decoding": decoding.to_dict(), **{k: _plain(v) for k, v in fields.items()}})
    return path


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool, list, dict)) else str(value)


__all__ = ["BAD_ENDINGS", "PREDICT_NUM_BEAMS", "BlockBadEndings", "DecodingOptions", "add_decoding_args",
           "bad_ending_rate", "ends_badly", "last_word", "meta_path", "write_predictions_meta"]
