"""VideoBLIP2: audio-visual video captioning and question answering (CLIP/CLAP features -> two InstructBLIP
Q-Formers -> LoRA Flan-T5).

The public names load lazily (PEP 562, as ``transformers`` does): ``import videoblip2`` imports neither torch
nor transformers, ``from videoblip2 import VideoBLIP2`` imports what that name needs, once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> submodule that defines it
_LAZY: dict[str, str] = {
    "VideoBLIP2Config": "config",
    "ConfigError": "config",
    "VideoBLIP2": "modeling",
    "FeatureStore": "data",
    "CaptionDataset": "data",
    "VideoDataset": "data",
    "index_batches": "data",
    "ablate_features": "data",
    "ABLATIONS": "data",
    "load_annotations": "annotations",
    "load_predictions": "annotations",
    "save_predictions": "annotations",
    "predict_captions": "predict",
    "caption_videos": "caption",
    "extract_video": "caption",
    "generate_from_features": "caption",
    "VideoFeatures": "caption",
    "DecodingOptions": "decoding",
    "bad_ending_rate": "decoding",
    "build_tiny_model": "tiny",
    "make_tiny_extractors": "tiny",
    "init_qformer": "blip2_init",
    "LoadReport": "blip2_init",
}

__all__ = [  # the names of _LAZY (a literal list, so that linters see them)
    "ABLATIONS",
    "CaptionDataset",
    "ConfigError",
    "DecodingOptions",
    "FeatureStore",
    "LoadReport",
    "VideoBLIP2",
    "VideoBLIP2Config",
    "VideoDataset",
    "VideoFeatures",
    "ablate_features",
    "bad_ending_rate",
    "build_tiny_model",
    "caption_videos",
    "extract_video",
    "generate_from_features",
    "index_batches",
    "init_qformer",
    "load_annotations",
    "load_predictions",
    "make_tiny_extractors",
    "predict_captions",
    "save_predictions",
]

if TYPE_CHECKING:  # static analysers and IDEs see ordinary imports
    from .annotations import load_annotations, load_predictions, save_predictions
    from .blip2_init import LoadReport, init_qformer
    from .caption import VideoFeatures, caption_videos, extract_video, generate_from_features
    from .config import ConfigError, VideoBLIP2Config
    from .data import ABLATIONS, CaptionDataset, FeatureStore, VideoDataset, ablate_features, index_batches
    from .decoding import DecodingOptions, bad_ending_rate
    from .modeling import VideoBLIP2
    from .predict import predict_captions
    from .tiny import build_tiny_model, make_tiny_extractors


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
