"""Initialise an InstructBLIP Q-Former from BERT and a BLIP-2 checkpoint, as LAVIS does, with a load report.

LAVIS builds the BLIP-2 Q-Former from `bert-base-uncased`, copies BERT's text feed-forward into the query
feed-forward (`intermediate_query` / `output_query`), then loads the BLIP-2 checkpoint over it. The stage-2
Flan-T5 checkpoints (`blip2_pretrained_flant5xl.pth`) drop the Q-Former's text side (word/position embeddings,
text feed-forward), so with a prompt fed into the Q-Former those tensors have to come from BERT.

Every key of both sources ends up in the `LoadReport`: loaded into which parameter, or skipped for a reason
from an explicit list. A key that maps nowhere and is on no skip list is an error (`CheckpointKeyError`),
never a silent drop; a shape that does not fit is an error (`CheckpointShapeError`) that names the config
field to change.

Example:
    >>> report = init_qformer(qformer, query_tokens, bert="bert-base-uncased",
    ...                       blip2="blip2_pretrained_flant5xl.pth")
    >>> print(report.summary())
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointFormatError",
    "CheckpointKeyError",
    "CheckpointShapeError",
    "KeyLoad",
    "LoadReport",
    "read_state_dict",
    "init_qformer",
    "copy_qformer",
    "infer_qformer_dims",
]

# Files tried, in order, in a Hugging Face model directory or hub repository.
HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


class CheckpointError(ValueError):
    """A BERT / BLIP-2 checkpoint that cannot initialise the Q-Former."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No weights file at the given path, or a hub id that is not in the local cache (offline)."""


class CheckpointFormatError(CheckpointError):
    """A file that is not a state dict (or a LAVIS {"model": state_dict} checkpoint)."""


class CheckpointKeyError(CheckpointError):
    """A checkpoint key that maps to no Q-Former parameter and is on no skip list."""


class CheckpointShapeError(CheckpointError):
    """A checkpoint tensor whose shape does not fit the Q-Former parameter it maps to."""


# --------------------------------------------------------------------------------------------- skip lists
# (source, pattern on the full key, reason). First match wins. Both sources are checked against "any".
_VISION = "vision encoder (EVA ViT-g); VideoBLIP2 reads precomputed CLIP/CLAP features"
_LN_VISION = "LayerNorm on the ViT-g output (vision side); VideoBLIP2 normalises its own inputs"
_LM_PROJ = ("projection into the BLIP-2 language model, {width} wide (Flan-T5-XL: 2048); does not fit "
            "flan-t5-base (768): proj_video / proj_audio are trained from scratch")
_LM = "BLIP-2's own (frozen) language model; VideoBLIP2 loads Flan-T5 separately"
_STAGE1_HEAD = "stage-1 text-only / contrastive head (ITC, ITM, LM); not part of the Q-Former encoder"
_BERT_HEAD = "BERT pre-training head (MLM / NSP); text-only, not part of the Q-Former"
_POOLER = "BERT pooler; the Q-Former has none"
_TOKEN_TYPE = "token-type embeddings; the Q-Former has none"
_BUFFER = "position_ids buffer (an arange, not a weight)"

_SKIP_RULES: list[tuple[str, re.Pattern[str], str]] = [
    ("any", re.compile(r"(^|\.)position_ids$"), _BUFFER),
    ("any", re.compile(r"(^|\.)embeddings\.token_type_embeddings\."), _TOKEN_TYPE),
    ("any", re.compile(r"(^|\.)pooler\."), _POOLER),
    ("bert", re.compile(r"^cls\."), _BERT_HEAD),
    ("blip2", re.compile(r"^(visual_encoder|vision_model)\."), _VISION),
    ("blip2", re.compile(r"^ln_vision\."), _LN_VISION),
    ("blip2", re.compile(r"^(t5_proj|opt_proj|llm_proj|language_projection)\."), _LM_PROJ),
    ("blip2", re.compile(r"^(t5_model|opt_model|llm_model|language_model)\."), _LM),
    ("blip2", re.compile(r"^(Qformer\.cls|vision_proj|text_proj|itm_head|vision_projection|text_projection)\."),
     _STAGE1_HEAD),
    ("blip2", re.compile(r"^temp$"), _STAGE1_HEAD),
]

# Where the Q-Former lives inside each source, longest first: LAVIS, Hugging Face Blip2/InstructBLIP, bare.
_PREFIXES = {
    "bert": ("bert.", ""),
    "blip2": ("Qformer.bert.", "qformer.", ""),
}
_QFORMER_ROOTS = ("embeddings.", "encoder.layer.", "layernorm.")
_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.")
# LAVIS's BLIP-2 tokenizer is bert-base-uncased plus [DEC] (30523 rows, InstructBLIP's qformer vocab_size too). A
# BLIP-2 checkpoint with up to this many rows more than the Q-Former grows its vocabulary on load, as LAVIS's
# resize_token_embeddings(len(tokenizer)) does; more extra rows mean another vocabulary: an error.
MAX_EXTRA_VOCAB_ROWS = 16
_TEXT_FFN = re.compile(r"^(encoder\.layer\.\d+\.)(intermediate|output)\.(.*)$")


def _canonical(rel: str) -> str:
    """A Q-Former-relative key in BERT / LAVIS / HF Blip2 naming -> the InstructBlipQFormerModel name."""
    rel = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", rel)  # TF-era BERT checkpoints
    rel = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", rel)
    # BERT / LAVIS call the attention module `self`; transformers' Blip2/InstructBLIP call it `attention`.
    rel = re.sub(r"(^|\.)(attention|crossattention)\.self\.", r"\1\2.attention.", rel)
    rel = re.sub(r"^embeddings\.(LayerNorm|layer_norm)\.", "embeddings.layernorm.", rel)
    # Blip2QFormerModel keeps the LayerNorm over the query embeddings at its top level.
    rel = re.sub(r"^layernorm\.", "embeddings.layernorm.", rel)
    return rel


def _skip_reason(source: str, key: str, shape: tuple[int, ...]) -> str | None:
    for rule_source, pattern, reason in _SKIP_RULES:
        if rule_source in ("any", source) and pattern.search(key):
            return reason.format(width=shape[0] if shape else "?")
    return None


def _target_name(source: str, key: str) -> str | None:
    """The InstructBlipQFormerModel parameter (or "query_tokens") a source key maps to, None if none."""
    if source == "blip2" and key == "query_tokens":
        return "query_tokens"
    for prefix in _PREFIXES[source]:
        if key.startswith(prefix) and key[len(prefix):].startswith(_QFORMER_ROOTS):
            return _canonical(key[len(prefix):])
    return None


# --------------------------------------------------------------------------------------------- reading
class _Source:
    """Keys, shapes and (lazily) tensors of one checkpoint; safetensors files are read key by key."""

    def __init__(self, label: str, keys: list[str], shape: Callable[[str], tuple[int, ...]],
                 tensor: Callable[[str], torch.Tensor]):
        self.label, self.keys, self.shape, self.tensor = label, keys, shape, tensor

    @classmethod
    def from_dict(cls, state_dict: Mapping[str, torch.Tensor], label: str) -> "_Source":
        bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise CheckpointFormatError(f"{label}: values of {bad[:3]} are not tensors; not a state dict")
        return cls(label, list(state_dict), lambda k: tuple(state_dict[k].shape), state_dict.__getitem__)

    @classmethod
    def from_safetensors(cls, files: list[str], label: str) -> "_Source":
        from safetensors import safe_open

        handles = [safe_open(f, framework="pt", device="cpu") for f in files]
        owner = {k: h for h in handles for k in h.keys()}
        return cls(label, list(owner), lambda k: tuple(owner[k].get_slice(k).get_shape()),
                   lambda k: owner[k].get_tensor(k))

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {k: self.tensor(k) for k in self.keys}


def _torch_load(path: str) -> dict[str, torch.Tensor]:
    """A torch pickle (LAVIS .pth with {"model": ...}, or a flat state dict), tensors only, memory-mapped."""
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:  # pre-zipfile pickles cannot be memory-mapped
            if "mmap" not in str(err):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - reported with the file name, the cause chained
        raise CheckpointFormatError(
            f"{path}: cannot be read as a tensor-only torch checkpoint (torch.load weights_only=True): {err}. "
            "If it holds arbitrary Python objects, re-save just its state dict."
        ) from err
    if isinstance(obj, Mapping):
        for wrapper in ("model", "state_dict", "module"):  # LAVIS saves {"model": ..., "optimizer": ...}
            if isinstance(obj.get(wrapper), Mapping):
                return dict(obj[wrapper])
        return dict(obj)
    raise CheckpointFormatError(f"{path}: holds a {type(obj).__name__}, not a state dict")


def _open_file(path: str) -> _Source:
    if path.endswith(".safetensors"):
        return _Source.from_safetensors([path], path)
    if path.endswith(".index.json"):
        with open(path) as f:
            weight_map = json.load(f)["weight_map"]
        folder = os.path.dirname(path)
        shards = [os.path.join(folder, s) for s in dict.fromkeys(weight_map.values())]
        missing = [s for s in shards if not os.path.isfile(s)]
        if missing:
            raise CheckpointNotFoundError(f"{path}: shard files missing: {missing}")
        if path.endswith(".safetensors.index.json"):
            return _Source.from_safetensors(shards, path)
        merged: dict[str, torch.Tensor] = {}
        for shard in shards:
            merged.update(_torch_load(shard))
        return _Source.from_dict(merged, path)
    return _Source.from_dict(_torch_load(path), path)


def _open_hub(repo_id: str, cache_dir: str | None) -> _Source:
    """A hub id through transformers' cached-file machinery: works offline when the files are cached."""
    from transformers.utils import cached_file

    def fetch(filename: str) -> str | None:
        try:
            return cached_file(repo_id, filename, cache_dir=cache_dir,
                               _raise_exceptions_for_missing_entries=False,
                               _raise_exceptions_for_connection_errors=False)
        except (OSError, ValueError) as err:  # e.g. an id that is not a valid repository name
            raise CheckpointNotFoundError(f"{repo_id!r}: not a local path, and not usable as a hub id: {err}") from err

    for filename in HF_WEIGHT_FILES:
        resolved = fetch(filename)
        if resolved is None:
            continue
        if filename.endswith(".index.json"):
            with open(resolved) as f:
                for shard in dict.fromkeys(json.load(f)["weight_map"].values()):
                    if fetch(shard) is None:
                        raise CheckpointNotFoundError(f"{repo_id}: shard {shard} is not available")
        return _open_file(resolved)
    raise CheckpointNotFoundError(
        f"{repo_id!r} is neither a local file or directory nor a cached hub repository with one of "
        f"{list(HF_WEIGHT_FILES)} (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}: download it "
        "once with network access, or pass a local path)"
    )


def _open(source: str | os.PathLike | Mapping[str, torch.Tensor], label: str,
          cache_dir: str | None = None) -> _Source:
    if isinstance(source, Mapping):
        return _Source.from_dict(source, f"<{label} state dict>")
    path = os.path.expanduser(os.fspath(source))
    if os.path.isfile(path):
        return _open_file(path)
    if os.path.isdir(path):
        for filename in HF_WEIGHT_FILES:
            if os.path.isfile(os.path.join(path, filename)):
                return _open_file(os.path.join(path, filename))
        raise CheckpointNotFoundError(f"{path}: directory holds none of {list(HF_WEIGHT_FILES)}")
    if path.endswith((".pth", ".pt", ".bin", ".safetensors")) or path.startswith((".", "/")):
        raise CheckpointNotFoundError(f"{path}: no such file")
    return _open_hub(path, cache_dir)


def read_state_dict(path_or_id: str | os.PathLike, cache_dir: str | None = None) -> dict[str, torch.Tensor]:
    """Read a checkpoint's tensors on the CPU.

    Args:
        path_or_id: a LAVIS `.pth` (`{"model": state_dict, ...}` or a flat state dict), a single
            `.safetensors` / `.bin` / `.pt` file, a `*.index.json` of shards, a Hugging Face model directory
            (`model.safetensors`, sharded `model.safetensors.index.json`, or `pytorch_model.bin`), or a hub
            id such as `bert-base-uncased` (resolved from the local cache when offline).
        cache_dir: Hugging Face cache directory for hub ids (default: the standard cache).
    """
    return _open(path_or_id, "checkpoint", cache_dir).to_dict()


# --------------------------------------------------------------------------------------------- the report
@dataclass(frozen=True)
class KeyLoad:
    """What happened to one source key: loaded into `targets`, or skipped for `reason`."""

    source: str  # "bert" | "blip2"
    key: str
    shape: tuple[int, ...]
    targets: tuple[str, ...] = ()  # Q-Former parameter names ("query_tokens" for the queries)
    reason: str | None = None  # why it was skipped; None when loaded
    note: str = ""  # e.g. "copied into the query FFN too", "overridden by blip2", partial rows

    @property
    def loaded(self) -> bool:
        return bool(self.targets)

    @property
    def target(self) -> str | None:
        return self.targets[0] if self.targets else None


@dataclass
class LoadReport:
    """Accounts for every key of every source, and for the Q-Former parameters no source wrote."""

    entries: list[KeyLoad] = field(default_factory=list)
    not_written: list[str] = field(default_factory=list)  # still at their random initialisation
    final_source: dict[str, str] = field(default_factory=dict)  # parameter -> "bert" | "blip2"
    files: dict[str, str] = field(default_factory=dict)  # source -> file / id it was read from
    vocab_resized: tuple[int, int] | None = None  # (old, new) Q-Former vocabulary rows, if the checkpoint grew it

    def loaded(self, source: str | None = None) -> list[KeyLoad]:
        return [e for e in self.entries if e.loaded and source in (None, e.source)]

    def skipped(self, source: str | None = None) -> list[KeyLoad]:
        return [e for e in self.entries if not e.loaded and source in (None, e.source)]

    def kept_from_bert(self) -> list[str]:
        """Parameters a BLIP-2 checkpoint did not provide, so they keep BERT's weights."""
        if "blip2" not in self.files:
            return []
        return [name for name, src in self.final_source.items() if src == "bert"]

    def summary(self) -> str:
        lines = []
        for source in ("bert", "blip2"):
            if source not in self.files:
                continue
            entries = [e for e in self.entries if e.source == source]
            loaded, skipped = self.loaded(source), self.skipped(source)
            overridden = sum("overridden" in e.note for e in loaded)
            lines.append(f"{source} ({self.files[source]}): {len(entries)} keys, {len(loaded)} loaded"
                         + (f" ({overridden} later overridden by blip2)" if overridden else "")
                         + f", {len(skipped)} skipped")
            for reason, n in Counter(e.reason for e in skipped).most_common():
                lines.append(f"  skipped {n:5d}: {reason}")
        n_params = len(self.final_source) + len(self.not_written)
        by_source = Counter(self.final_source.values())
        lines.append(f"Q-Former parameters: {n_params} tensors; "
                     + ", ".join(f"{n} from {s}" for s, n in sorted(by_source.items()))
                     + f", {len(self.not_written)} never written (random init)")
        if self.vocab_resized:
            old, new = self.vocab_resized
            lines.append(f"  Q-Former vocabulary grown from {old} to {new} rows to fit the BLIP-2 checkpoint "
                         "(its tokenizer adds [DEC]; LAVIS resizes the embeddings the same way)")
        kept = self.kept_from_bert()
        if kept:
            lines.append(f"  from BERT because the BLIP-2 checkpoint lacks them (the stage-2 T5 checkpoints drop "
                         f"the Q-Former text side): {', '.join(_group(kept))}")
        if self.not_written:
            lines.append(f"  never written: {', '.join(_group(self.not_written))}")
        return "\n".join(lines)

    def __str__(self) -> str:
        lines = [self.summary(), ""]
        for e in self.entries:
            shape = "x".join(map(str, e.shape)) or "scalar"
            what = " + ".join(e.targets) if e.loaded else f"SKIPPED: {e.reason}"
            lines.append(f"{e.source:5s} {e.key} [{shape}] -> {what}" + (f" ({e.note})" if e.note else ""))
        lines += [f"never written: {name}" for name in self.not_written]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: per-source counts by reason, and every entry."""
        counts = {}
        for source in self.files:
            counts[source] = {
                "keys": sum(e.source == source for e in self.entries),
                "loaded": len(self.loaded(source)),
                "skipped": dict(Counter(e.reason for e in self.skipped(source))),
            }
        return {
            "files": self.files,
            "counts": counts,
            "final_source": dict(Counter(self.final_source.values())),
            "kept_from_bert": self.kept_from_bert(),
            "not_written": self.not_written,
            "entries": [dict(source=e.source, key=e.key, shape=list(e.shape), targets=list(e.targets),
                             reason=e.reason, note=e.note) for e in self.entries],
        }


def _group(names: Iterable[str]) -> list[str]:
    """Parameter names -> short module groups, e.g. "encoder.layer.{0-11}.intermediate.* (24 tensors)"."""
    groups: dict[str, tuple[set[int], list[str]]] = {}
    for name in names:
        layer = re.match(r"^encoder\.layer\.(\d+)\.([^.]+)\.", name)
        if layer:
            group, index = f"encoder.layer.{{}}.{layer.group(2)}.*", int(layer.group(1))
        else:
            group, index = (name.rsplit(".", 1)[0] + ".*" if "." in name else name), None
        indices, members = groups.setdefault(group, (set(), []))
        members.append(name)
        if index is not None:
            indices.add(index)
    out = []
    for group, (indices, members) in groups.items():
        if indices:
            ordered = sorted(indices)
            span = (f"{ordered[0]}-{ordered[-1]}" if ordered == list(range(ordered[0], ordered[-1] + 1))
                    else ",".join(map(str, ordered)))
            group = group.format("{" + span + "}" if len(ordered) > 1 else span)
        out.append(group + (f" ({len(members)} tensors)" if len(members) > 1 else ""))
    return out


# --------------------------------------------------------------------------------------------- loading
def _shape_hint(target: str, src: tuple[int, ...]) -> str:
    """Which Q-Former config field would make a checkpoint tensor of shape `src` fit `target`."""
    if re.search(r"crossattention\.attention\.(key|value)\.weight$", target):
        return (f"the checkpoint's cross-attention reads {src[1]}-wide features: set the Q-Former config's "
                f"encoder_hidden_size (VideoBLIP2: qformer.encoder_width) to {src[1]}")
    if target == "query_tokens":
        return f"the checkpoint has {src[1]} query tokens of width {src[2]}: set num_query_tokens / hidden_size"
    if target.endswith("word_embeddings.weight"):
        return f"the checkpoint's vocabulary has {src[0]} rows of width {src[1]}: set vocab_size / hidden_size"
    if target.endswith("position_embeddings.weight"):
        return f"the checkpoint has {src[0]} positions of width {src[1]}: set max_position_embeddings / hidden_size"
    if re.search(r"\.intermediate(_query)?\.dense\.", target):
        return f"the checkpoint's feed-forward is {src[0]} wide: set intermediate_size (and hidden_size) to match"
    if re.search(r"\.output(_query)?\.dense\.weight$", target):
        return f"the checkpoint's feed-forward is {src[1]} wide: set intermediate_size (and hidden_size) to match"
    return f"the checkpoint's Q-Former is {src[0]} wide: set hidden_size (and num_attention_heads) to match"


def _missing_hint(target: str, qformer: nn.Module) -> str:
    config = getattr(qformer, "config", None)
    layer = _LAYER.match(target)
    if config is not None and layer:
        index = int(layer.group(1))
        if index >= config.num_hidden_layers:
            return f"the checkpoint has layer {index}; the Q-Former has num_hidden_layers={config.num_hidden_layers}"
        if ".crossattention." in target:
            return (f"the checkpoint has cross-attention in layer {index}; the Q-Former has "
                    f"cross_attention_frequency={config.cross_attention_frequency}")
    return "no such Q-Former parameter"


def _plan(source_name: str, source: _Source, targets: dict[str, torch.Tensor], qformer: nn.Module,
          ) -> list[KeyLoad]:
    """Map and check every key of one source, before anything is written."""
    plan: list[KeyLoad] = []
    written_by: dict[str, str] = {}
    for key in source.keys:
        shape = source.shape(key)
        reason = _skip_reason(source_name, key.removeprefix("module."), shape)
        if reason is not None:
            plan.append(KeyLoad(source_name, key, shape, reason=reason))
            continue
        target = _target_name(source_name, key.removeprefix("module."))  # "module.": saved from DDP
        if target is None:
            raise CheckpointKeyError(
                f"{source.label}: key {key!r} maps to no Q-Former parameter and is on no skip list "
                f"(expected a {source_name} Q-Former key under {[p for p in _PREFIXES[source_name] if p]} "
                "or a known non-Q-Former part)"
            )
        if target not in targets:
            raise CheckpointKeyError(f"{source.label}: key {key!r} maps to {target!r}: "
                                     f"{_missing_hint(target, qformer)}")
        names = [target]
        note = ""
        text_ffn = _TEXT_FFN.match(target)
        if source_name == "bert" and text_ffn:
            # LAVIS: the query feed-forward starts as a copy of BERT's text feed-forward.
            names.append(f"{text_ffn.group(1)}{text_ffn.group(2)}_query.{text_ffn.group(3)}")
            note = "query FFN initialised as a copy of the text FFN"
        dst = tuple(targets[target].shape)
        if shape != dst:
            # The BLIP-2 tokenizer adds [DEC]: a smaller vocabulary fills the first rows, like
            # resize_token_embeddings; every other mismatch is an error.
            if target.endswith("word_embeddings.weight") and len(shape) == 2 and shape[1] == dst[1] \
                    and shape[0] < dst[0]:
                note = f"rows 0..{shape[0] - 1} of {dst[0]}; the rest keep their initialisation"
            elif target.endswith("word_embeddings.weight") and len(shape) == 2 and shape[1] == dst[1] \
                    and source_name == "blip2" and dst[0] < shape[0] <= dst[0] + MAX_EXTRA_VOCAB_ROWS:
                note = (f"{shape[0]} rows: the Q-Former's vocabulary grows from {dst[0]} (vocab_size); "
                        "the extra rows are special tokens of the BLIP-2 tokenizer ([DEC])")
            else:
                raise CheckpointShapeError(
                    f"{source.label}: key {key!r} has shape {list(shape)} but Q-Former parameter {target!r} "
                    f"has {list(dst)}: {_shape_hint(target, shape)}"
                )
        for name in names:
            if name in written_by:
                raise CheckpointKeyError(f"{source.label}: keys {written_by[name]!r} and {key!r} both map to "
                                         f"{name!r}")
            written_by[name] = key
        plan.append(KeyLoad(source_name, key, shape, tuple(names), note=note))
    return plan


@torch.no_grad()
def init_qformer(
    qformer: nn.Module,
    query_tokens: nn.Parameter | None,
    *,
    bert: str | os.PathLike | Mapping[str, torch.Tensor] | None,
    blip2: str | os.PathLike | Mapping[str, torch.Tensor] | None,
    cache_dir: str | None = None,
    verbose: bool = False,
) -> LoadReport:
    """Initialise `qformer` (an `InstructBlipQFormerModel`) and `query_tokens` in place, as LAVIS does.

    BERT first (embeddings, self-attention, text feed-forward; the query feed-forward as a copy of the text
    one), then the BLIP-2 Q-Former over it (everything it has, cross-attention and query tokens included).
    All keys are mapped and checked before any parameter is written, so an error leaves the module as it was.

    Args:
        qformer: the Q-Former to initialise (InstructBLIP parameter naming).
        query_tokens: its `(1, num_queries, hidden)` query parameter; None only if no source has queries.
        bert: BERT weights (hub id such as `bert-base-uncased`, directory, file, or a state dict), or None.
        blip2: a LAVIS `.pth`, a Hugging Face Blip2/InstructBLIP directory or hub id, a file, a state dict,
            or None.
        cache_dir: Hugging Face cache directory for hub ids.
        verbose: print `report.summary()`.

    Returns:
        A `LoadReport` with one entry per source key and the parameters left at their initialisation.

    Raises:
        CheckpointKeyError: a key that maps nowhere and is not on a skip list.
        CheckpointShapeError: a tensor that does not fit; the message names the config field to set.
    """
    targets: dict[str, torch.Tensor] = dict(qformer.named_parameters())
    if query_tokens is not None:
        targets["query_tokens"] = query_tokens
    report = LoadReport()
    plans = []
    for name, spec in (("bert", bert), ("blip2", blip2)):
        if spec is None:
            continue
        source = _open(spec, name, cache_dir)
        report.files[name] = source.label
        plans.append((name, source, _plan(name, source, targets, qformer)))

    # A BLIP-2 vocabulary with [DEC]: grow the embeddings first (old rows kept), then write as usual.
    word_embeddings = "embeddings.word_embeddings.weight"
    rows = max((entry.shape[0] for _, _, plan in plans for entry in plan
                if entry.loaded and word_embeddings in entry.targets), default=0)
    current = targets[word_embeddings].shape[0] if word_embeddings in targets else 0
    if rows > current:
        if not hasattr(qformer, "resize_token_embeddings"):
            raise CheckpointShapeError(f"the BLIP-2 vocabulary has {rows} rows, the Q-Former {current}: set its "
                                       f"vocab_size to {rows}")
        qformer.resize_token_embeddings(rows, mean_resizing=False)  # also sets qformer.config.vocab_size
        targets[word_embeddings] = qformer.get_parameter(word_embeddings)
        report.vocab_resized = (current, rows)

    for name, source, plan in plans:
        for entry in plan:
            if not entry.loaded:
                continue
            tensor = source.tensor(entry.key)
            for target in entry.targets:
                param = targets[target]
                if tuple(tensor.shape) == tuple(param.shape):
                    param.copy_(tensor)
                else:  # a smaller vocabulary fills the first rows (checked in _plan)
                    param[: tensor.shape[0]].copy_(tensor)
                report.final_source[target] = name
        report.entries.extend(plan)

    # BERT entries whose every target the BLIP-2 checkpoint replaced.
    for i, entry in enumerate(report.entries):
        if entry.source == "bert" and entry.loaded and all(
                report.final_source[t] == "blip2" for t in entry.targets):
            note = "; ".join(filter(None, [entry.note, "overridden by blip2"]))
            report.entries[i] = KeyLoad(entry.source, entry.key, entry.shape, entry.targets, None, note)
    report.final_source = {t: report.final_source[t] for t in targets if t in report.final_source}
    report.not_written = [t for t in targets if t not in report.final_source]
    if verbose:
        print(report.summary())
    return report


@torch.no_grad()
def copy_qformer(src_qformer: nn.Module, src_query_tokens: nn.Parameter,
                 dst_qformer: nn.Module, dst_query_tokens: nn.Parameter) -> None:
    """Give a second branch the same starting weights (copies, not shared tensors)."""
    dst_qformer.load_state_dict(src_qformer.state_dict(), strict=True)
    if tuple(src_query_tokens.shape) != tuple(dst_query_tokens.shape):
        raise CheckpointShapeError(f"query tokens {list(src_query_tokens.shape)} vs {list(dst_query_tokens.shape)}")
    dst_query_tokens.copy_(src_query_tokens)


def infer_qformer_dims(blip2: str | os.PathLike | Mapping[str, torch.Tensor],
                       cache_dir: str | None = None) -> dict[str, int]:
    """The Q-Former shape a BLIP-2 checkpoint implies, named as InstructBlipQFormerConfig fields.

    Keys present when the checkpoint shows them: hidden_size, num_hidden_layers, intermediate_size,
    encoder_hidden_size, cross_attention_frequency, num_query_tokens, vocab_size, max_position_embeddings.
    """
    source = _open(blip2, "blip2", cache_dir)
    canonical = {}
    for key in source.keys:
        if _skip_reason("blip2", key, ()) is None:
            target = _target_name("blip2", key)
            if target is not None:
                canonical[target] = source.shape(key)
    dims: dict[str, int] = {}
    if "query_tokens" in canonical:
        dims["num_query_tokens"], dims["hidden_size"] = canonical["query_tokens"][1:]
    layers = sorted({int(m.group(1)) for t in canonical if (m := _LAYER.match(t))})
    if layers:
        dims["num_hidden_layers"] = layers[-1] + 1
    cross = sorted({int(m.group(1)) for t in canonical if (m := _LAYER.match(t)) and ".crossattention." in t})
    if cross:
        dims["encoder_hidden_size"] = canonical[f"encoder.layer.{cross[0]}.crossattention.attention.key.weight"][1]
        dims["cross_attention_frequency"] = cross[1] - cross[0] if len(cross) > 1 else max(1, len(layers))
    for t, shape in canonical.items():
        if t.endswith("intermediate_query.dense.weight"):
            dims["intermediate_size"] = shape[0]
            dims.setdefault("hidden_size", shape[1])
    if "embeddings.word_embeddings.weight" in canonical:
        dims["vocab_size"] = canonical["embeddings.word_embeddings.weight"][0]
    if "embeddings.position_embeddings.weight" in canonical:
        dims["max_position_embeddings"] = canonical["embeddings.position_embeddings.weight"][0]
    return dims
