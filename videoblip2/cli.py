"""What the `python -m` entry points share.

* :class:`ArgumentParser`: an argument error is one line ``error: ...; see --help`` on stderr, exit 2 (no
  usage block); a misspelled flag is named with the closest valid one.
* :func:`add_renamed_flag`: an old flag name kept working for one release with a one-line deprecation note.
* :func:`cli`: the ending: a user error (a bad file, flag, folder or a full disk) prints one line
  ``error: Type: message`` to stderr and exits 2; anything else is a bug and keeps its traceback.

This module imports nothing heavy (no torch, transformers): commands parse their arguments first and import
the model stack after, so ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .fileio import DiskFullError


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line: ``error: MESSAGE; see PROG --help``, exit 2.

    An unknown flag is named with the closest valid flag (``difflib``): ``error: unknown flag --featuers
    (did you mean --features?); see python -m train.train_ce --help``.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._checks: list[Callable[[argparse.Namespace], str | None]] = []

    def add_check(self, check: Callable[[argparse.Namespace], str | None]) -> None:
        """A test of several flags together, run after parsing: it returns an error message, or None."""
        self._checks.append(check)

    def error(self, message: str) -> NoReturn:
        # an unknown flag first: a misspelled --featuers also makes --features "required"
        unknown = self._unknown_flags()
        if unknown or message.startswith("unrecognized arguments: "):
            message = self._unknown(unknown or message[len("unrecognized arguments: "):].split())
        self.exit(2, f"error: {message}; see {self.prog} --help\n")

    def _unknown_flags(self) -> list[str]:
        """The flags of the command line being parsed that this parser does not know (abbreviations are known)."""
        known = list(self._option_string_actions)
        unknown = []
        for token in getattr(self, "_argv", None) or []:
            if token == "--":
                break
            if not token.startswith("-") or len(token) < 2 or self._negative_number_matcher.match(token):
                continue
            name = token.split("=", 1)[0]
            if name not in known and not (name.startswith("--") and any(k.startswith(name) for k in known)):
                unknown.append(name)
        return unknown

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        self._argv = list(sys.argv[1:] if args is None else args)
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            self.error(self._unknown(extra))
        for check in self._checks:
            message = check(parsed)
            if message:
                self.error(message)
        return parsed

    def _unknown(self, extra: Sequence[str]) -> str:
        flags = [a for a in extra if a.startswith("-") and len(a) > 1]
        if not flags:
            return f"unexpected arguments: {' '.join(extra)}"
        name = flags[0].split("=", 1)[0]
        known = [o for action in self._actions for o in action.option_strings
                 if o.startswith("--") and action.help is not argparse.SUPPRESS]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        more = f" (and {len(flags) - 1} more)" if len(flags) > 1 else ""
        return f"unknown flag {name}{hint}{more}"


class _Renamed(argparse.Action):
    """An old flag name: stores into the new flag's dest and prints a one-line deprecation note."""

    def __init__(self, option_strings, dest, new_flag: str = "", **kwargs):
        self.new_flag = new_flag
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"note: {option_string} is deprecated, use {self.new_flag} (the old name goes in the next release)",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_renamed_flag(parser: argparse.ArgumentParser | Any, old: str, new: str, dest: str, **kwargs: Any) -> None:
    """Keep ``old`` working as a hidden alias of the flag ``new`` (stored in ``dest``) for one release."""
    parser.add_argument(old, dest=dest, action=_Renamed, new_flag=new, help=argparse.SUPPRESS,
                        default=argparse.SUPPRESS, **kwargs)


# ----------------------------------------------------------------------------------------------
# argument types: checked while parsing, so a bad value never reaches the model


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


for _type, _name in ((positive_int, "integer >= 1"), (non_negative_int, "integer >= 0"),
                     (finite_float, "finite number"), (positive_float, "number > 0"), (non_empty, "non-empty text")):
    _type.__name__ = _name  # argparse's message: "invalid integer >= 1 value: '0'"


# ----------------------------------------------------------------------------------------------
# output folders


def check_out_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Up-front check of an output folder, creating nothing: it is not a file, and it (or the nearest existing
    folder above it) can be written in. Raises ``NotADirectoryError`` / ``PermissionError`` with one line."""
    from .fileio import check_writable_dir

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{flag} {path}: is a file, expected a folder")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{flag} {path}: {existing} is a file, not a folder")
    check_writable_dir(existing, what=f"{flag} {path}")
    return path


# (module, class) of the library's error types that speak to the user
_USER_ERRORS = (("videoblip2.sources", "SourceError"), ("videoblip2.annotations", "AnnotationError"),
                ("videoblip2.data", "FeatureError"), ("videoblip2.data", "DataError"),
                ("videoblip2.config", "ConfigError"), ("videoblip2.modeling", "CheckpointError"),
                ("videoblip2.blip2_init", "CheckpointError"), ("videoblip2.extract", "ExtractorModelError"),
                ("videoblip2.ids", "UnsafeIdError"))


def user_errors() -> tuple[type[BaseException], ...]:
    """The library's error types that speak to the user. Only those of modules already imported: an error
    of a module never imported cannot have been raised, and importing the model stack to print one line of an
    early error would take seconds."""
    found = tuple(getattr(sys.modules[module], name) for module, name in _USER_ERRORS if module in sys.modules)
    return found + (DiskFullError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


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
