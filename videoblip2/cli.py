"""The `python -m` entry points' shared ending: a user error (a bad file, flag, folder or a full disk) prints one
line ``error: Type: message`` to stderr and exits 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from typing import Any

from .fileio import DiskFullError


def user_errors() -> tuple[type[BaseException], ...]:
    """The library's error types that speak to the user (imported lazily: the model stack is heavy)."""
    from .annotations import AnnotationError
    from .blip2_init import CheckpointError as Blip2CheckpointError
    from .config import ConfigError
    from .data import DataError, FeatureError
    from .extract import ExtractorModelError
    from .ids import UnsafeIdError
    from .modeling import CheckpointError

    return (AnnotationError, FeatureError, DataError, ConfigError, CheckpointError, Blip2CheckpointError,
            ExtractorModelError, UnsafeIdError, DiskFullError, FileNotFoundError, IsADirectoryError,
            NotADirectoryError, PermissionError)


def cli(main: Callable[[], Any], extra: tuple[type[BaseException], ...] = ()) -> Any:
    """Run ``main()``; user errors (`user_errors` + ``extra``) become ``error: ...`` and exit status 2."""
    try:
        return main()
    except user_errors() + tuple(extra) as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as error:  # a full disk met by a library's own writer (tokenizer files, torch.save)
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"error: disk full: {error}", file=sys.stderr)
        raise SystemExit(2) from None
