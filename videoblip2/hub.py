"""The Hugging Face Hub: model names resolved to local folders, folders uploaded as model repositories.

Everything goes through `huggingface_hub` (its cache, ``HF_HOME``/``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``,
``HF_ENDPOINT``, ``HF_TOKEN`` and the saved login): a name is a local folder when one exists at that path,
otherwise a Hub repository id (``org/name``), as in transformers' ``from_pretrained``. Every way a name can
fail to resolve (offline with a cold cache, a wrong id, a missing revision, no network) is one `HubError`
line that names the id and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .modeling import CheckpointError


class HubError(CheckpointError):
    """A Hub model name that cannot be resolved (or a folder that cannot be uploaded); the message says why."""


# What VideoBLIP2.from_pretrained reads from a model repository (and all `snapshot_download` fetches).
MODEL_PATTERNS = ["config.json", "model.safetensors", "t5_tokenizer/*", "qformer_tokenizer/*"]
# What transformers' T5ForConditionalGeneration.from_pretrained reads (the tokenizers travel in the model folder).
T5_PATTERNS = ["config.json", "generation_config.json", "*.safetensors", "*.safetensors.index.json"]
T5_FALLBACK_PATTERNS = ["config.json", "generation_config.json", "pytorch_model.bin", "pytorch_model*.bin.index.json",
                        "pytorch_model-*.bin"]


def is_local(name_or_path: str | os.PathLike) -> bool:
    """True for an existing path or a name that can only be a path; False for a Hub repository id."""
    text = os.fspath(name_or_path)
    if os.path.exists(text) or isinstance(name_or_path, Path):
        return True
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep != "/" and os.sep in text:
        return True
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        return True
    return False


def resolve(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    allow_patterns: Sequence[str] = MODEL_PATTERNS,
    what: str = "model",
) -> Path:
    """A local folder as given, or the cached snapshot folder of a Hub repository (downloaded if needed).

    Raises:
        HubError: one line naming the id: not cached while offline, no such repository (or private/gated
            without a token), no such revision, the Hub unreachable.
    """
    if is_local(name_or_path):
        if revision is not None:
            raise HubError(f"{name_or_path}: a local folder has no revisions; drop revision={revision!r}")
        return Path(name_or_path)
    return _download(os.fspath(name_or_path), revision, cache_dir, local_files_only, token, list(allow_patterns), what)


def _download(repo_id: str, revision, cache_dir, local_files_only, token, patterns, what) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f"{repo_id}@{revision}" if revision else repo_id
    local = "a local folder path works too"
    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir,
                                      local_files_only=local_files_only, token=token, allow_patterns=patterns))
    except RevisionNotFoundError:
        raise HubError(f"{repo_id}: the {what} repository has no revision {revision!r} on {constants.ENDPOINT}; "
                       "give an existing branch, tag or commit") from None
    except GatedRepoError:
        raise HubError(f"{repo_id}: a gated {what} repository on {constants.ENDPOINT}; accept its terms on the Hub and "
                       f"log in (hf auth login, or HF_TOKEN); {local}") from None
    except RepositoryNotFoundError:
        raise HubError(f"{repo_id}: no such {what} repository on {constants.ENDPOINT} (or a private one: log in with "
                       f"hf auth login or set HF_TOKEN); check the id, or give a local folder (none exists at that "
                       "path)") from None
    except LocalEntryNotFoundError as error:
        cache = cache_dir or constants.HF_HUB_CACHE
        if local_files_only or constants.is_offline_mode():
            why = "local_files_only=True" if local_files_only else "HF_HUB_OFFLINE=1"
            raise HubError(f"{at}: not (completely) in the Hugging Face cache {cache} and downloads are off ({why}); "
                           f"download it once online (unset HF_HUB_OFFLINE), or {local}") from None
        cause = error.__cause__ or error
        raise HubError(f"{at}: cannot reach {constants.ENDPOINT} ({type(cause).__name__}) and not in the cache "
                       f"{cache}; check the network (HF_ENDPOINT), or {local}") from None
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", "?")
        raise HubError(f"{at}: the Hub at {constants.ENDPOINT} answered HTTP {status}; try again later, or "
                       f"{local}") from None


def resolve_t5(name_or_path: str, **kwargs) -> Path:
    """The base Flan-T5 a saved config names (`t5.name_or_path`), resolved like the model itself."""
    folder = resolve(name_or_path, allow_patterns=T5_PATTERNS, what="base T5", **kwargs)
    if is_local(name_or_path) or any(folder.glob("*.safetensors")):
        return folder
    return resolve(name_or_path, allow_patterns=T5_FALLBACK_PATTERNS, what="base T5", **kwargs)


def upload_folder(folder: str | os.PathLike, repo_id: str, *, private: bool = False, commit_message: str | None = None,
                  token: str | bool | None = None) -> str:
    """Make `repo_id` hold exactly the files of `folder` (created if needed; others deleted, .gitattributes kept).

    One commit of the folder's files (unchanged files are skipped by the client, so publishing the same folder
    twice changes nothing). Returns the repository URL. The token comes from `token`, ``HF_TOKEN`` or the
    saved login and is only ever sent to the Hub.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    folder = Path(folder)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        remote = set(api.list_repo_files(repo_id))
        operations = [CommitOperationDelete(path) for path in sorted(remote - set(files) - {".gitattributes"})]
        operations += [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(folder / path)) for path in files]
        api.create_commit(repo_id, operations=operations,
                          commit_message=commit_message or "Upload VideoBLIP2 model (videoblip2.publish)")
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", "?")
        hint = " (log in with hf auth login or set HF_TOKEN, with write access)" if status in (401, 403) else ""
        raise HubError(f"{repo_id}: upload to {constants.ENDPOINT} failed with HTTP {status}{hint}: "
                       f"{str(error).splitlines()[0]}") from None
    return str(url)
