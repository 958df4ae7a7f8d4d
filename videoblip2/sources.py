"""Pretrained sources checked before any heavy work: every model, tokenizer, checkpoint and extractor a command
is given (``--t5``, ``--bert``, ``--blip2``, ``--qformer-tokenizer``, ``--model``, ``--clip-*``, ``--clap-*``).

A local path must exist; a Hugging Face Hub id must be resolvable now: in the local cache, or (not offline) on
the Hub. Anything else is a :class:`SourceError` whose one line names the flag, the value and the fix, raised
in a fraction of a second instead of a 100-line ``OSError`` after minutes of loading. Weights that do not fit
their architecture are caught where they load (``videoblip2.extract``, ``videoblip2.blip2_init``).

Imports nothing heavy: ``huggingface_hub`` (already a dependency of transformers) only when an id is checked.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

# files whose presence in the cache (or on the Hub) shows that a repo id can be loaded as each kind
MODEL_FILES = ("config.json",)
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "spiece.model", "vocab.txt")
OFFLINE_FIX = ("download it once where there is a network (huggingface-cli download {value}) or pass a "
               "local folder")


class SourceError(ValueError):
    """A model, tokenizer, checkpoint or extractor source cannot be used; the message names the flag."""


def looks_like_path(value: str) -> bool:
    """A value meant as a file or folder, not a Hub id (``org/name``): absolute, ``./``, ``~``, a file suffix,
    or more than one ``/``."""
    return (os.path.isabs(value) or value.startswith((".", "~")) or value.count("/") > 1 or "\\" in value
            or os.path.splitext(value)[1].lower() in (".json", ".pt", ".pth", ".bin", ".safetensors", ".ckpt")
            or ("/" in value and os.path.isdir(value.split("/")[0])))  # runs/x: a folder runs/ is here


def _offline() -> bool:
    try:
        import huggingface_hub.constants as constants
    except ImportError:  # pragma: no cover - transformers depends on it
        return True
    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def _cached(repo_id: str, filenames: Sequence[str]) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in filenames)


def check_hub_source(value: str, flag: str, *, what: str, filenames: Sequence[str] = MODEL_FILES,
                     local_fix: str = "check the path") -> str:
    """``value`` is an existing local file/folder, or a Hub id in the local cache or (online) on the Hub.

    Args:
        value: the flag's value.
        flag: the flag's name, for the message (``--t5``).
        what: what the source should be ("Flan-T5 model"), for the message.
        filenames: files of which one shows the id can be loaded as ``what`` (``config.json`` for a model).
        local_fix: the fix named for a missing local path.

    Raises:
        SourceError: one line naming the flag, the value and the fix.
    """
    if os.path.exists(value):
        return value
    if looks_like_path(value):
        raise SourceError(f"{flag} {value}: no such file or folder (expected a {what}); {local_fix}")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError:
        raise SourceError(f"{flag} {value!r}: neither an existing path nor a Hugging Face Hub id (expected a "
                          f"{what}); {local_fix}") from None
    if _cached(value, filenames):
        return value
    if _offline():
        raise SourceError(f"{flag} {value}: no {what} there: not a local path, not in the Hugging Face cache, and "
                          f"the Hub is offline (HF_HUB_OFFLINE); {OFFLINE_FIX.format(value=value)}")
    import huggingface_hub

    try:
        found = any(huggingface_hub.file_exists(value, name) for name in filenames)
    except Exception as error:  # no network, proxy, timeout: the id cannot be resolved now
        raise SourceError(f"{flag} {value}: no {what} there: not a local path, not in the Hugging Face cache, and "
                          f"the Hub cannot be reached ({type(error).__name__}); "
                          f"{OFFLINE_FIX.format(value=value)}") from None
    if not found:
        raise SourceError(f"{flag} {value}: no such {what} on the Hugging Face Hub (none of "
                          f"{', '.join(filenames)}); check the id, or pass a local folder")
    return value


def check_file(value: str, flag: str, *, what: str) -> str:
    """``value`` is an existing, readable file (a checkpoint)."""
    if os.path.isdir(value):
        raise SourceError(f"{flag} {value}: is a folder, expected a {what} file")
    if not os.path.isfile(value):
        raise SourceError(f"{flag} {value}: no such {what} file; check the path")
    if not os.access(value, os.R_OK):
        raise SourceError(f"{flag} {value}: cannot read the {what} file (permissions)")
    return value


def check_clip_source(model: str, pretrained: str | None, *, model_flag: str = "--clip-model",
                      pretrained_flag: str = "--clip-pretrained") -> None:
    """The CLIP architecture (name or .json) and weights (tag or file) exist; a tag is checked by `load_clip`."""
    if model.endswith(".json"):
        check_file(model, model_flag, what="CLIP model-config .json")
    if not pretrained or pretrained.lower() == "none":
        return
    if looks_like_path(pretrained) or os.path.exists(pretrained):
        check_file(pretrained, pretrained_flag, what="CLIP checkpoint")
    elif not model.endswith(".json") and _offline():
        _check_clip_tag_cached(model, pretrained, pretrained_flag)


def _check_clip_tag_cached(model: str, tag: str, flag: str) -> None:
    """Offline, an open_clip tag (``openai``) works only if its weights are in the Hugging Face cache."""
    import open_clip  # (imports torch: only reached for a download tag while offline)

    cfg = open_clip.get_pretrained_cfg(model.replace("/", "-"), tag)
    repo = (cfg or {}).get("hf_hub", "").strip("/")
    if not repo:
        return  # an unknown tag or a URL-only one: load_clip names the known tags
    if not _cached(repo, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")):
        raise SourceError(f"{flag} {tag}: open_clip would download these weights (Hugging Face {repo}) but the Hub "
                          f"is offline (HF_HUB_OFFLINE) and they are not in the cache; pass a local copy: "
                          f"{flag} FILE (open_clip_model.safetensors of {repo}; add --quick-gelu for OpenAI weights)")


def check_clap_source(model: str, pretrained: str | None, *, model_flag: str = "--clap-model",
                      pretrained_flag: str = "--clap-pretrained") -> None:
    """The CLAP audio config (name or .json) and checkpoint file exist."""
    if model.endswith(".json"):
        check_file(model, model_flag, what="CLAP model-config .json")
    if pretrained:
        check_file(pretrained, pretrained_flag, what="CLAP checkpoint")


def check_config_file(value: str, flag: str = "--config") -> str:
    return check_file(value, flag, what="config .json")


def check_videoblip2_source(value: str, flag: str = "--model") -> str:
    """A VideoBLIP2 ``save_pretrained`` folder (or a training output folder) or a Hub id."""
    return check_hub_source(value, flag, what="VideoBLIP2 model",
                            local_fix="give a save_pretrained folder (a training run's best/ or last/)")


def check_features_folder(value: str, flag: str = "--features") -> str:
    """A features folder: ``video/`` holding ``.npy`` files (``features.video`` / ``videoblip2.synth`` write it)."""
    fix = "make one with python -m features.video (and features.audio), or python -m videoblip2.synth"
    if not os.path.exists(value):
        raise SourceError(f"{flag} {value}: no such folder; {fix}")
    if not os.path.isdir(value):
        raise SourceError(f"{flag} {value}: is a file, expected a features folder; {fix}")
    video = os.path.join(value, "video")
    if not os.path.isdir(video):
        raise SourceError(f"{flag} {value}: not a features folder (no video/ folder or meta.json in {value}); {fix}")
    with os.scandir(video) as entries:
        if not any(entry.name.endswith(".npy") for entry in entries):
            raise SourceError(f"{flag} {value}: {video} holds no .npy feature files; {fix}")
    return value
