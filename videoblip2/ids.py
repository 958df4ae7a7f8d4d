"""What a video id may be: the one rule every reader of ids applies (annotation formats, extractors, data sets,
``predict``, ``caption``, the demo page).

A video id becomes file names: ``{video-dir}/{id}.mp4`` is read, ``FEATURES/video/{id}.npy``,
``FEATURES/audio/{id}.npy`` and ``FEATURES/audio/{id}.noaudio.json`` are written. Annotation files come from
the internet, so an id is untrusted text and must never name a path outside those folders. An id is a plain
file name (not a path):

- a non-empty string without a NUL character;
- without a path separator of any platform (``/`` or ``\\``), so never absolute, never in another folder;
- not ``.`` or ``..``, and not a Windows drive (``C:``, ``C:name``);
- at most :data:`MAX_ID_BYTES` bytes in UTF-8, so that the longest name made of it (``{id}.noaudio.json``)
  fits the 255-byte file name limit of common file systems (ext4, XFS, APFS, NTFS).

Everything else is allowed, a leading ``-`` included (MSVD's ``-4wsuPCjDBc_5_15``): ids are never passed
to a command line. Nested ids (``class/name``) are not supported; name such videos ``class_name``.
"""

from __future__ import annotations

import re

from .fileio import NAME_MAX

__all__ = ["ID_SUFFIXES", "MAX_ID_BYTES", "NAME_MAX", "UnsafeIdError", "check_video_id", "id_problem"]

# the suffixes the project appends to an id for the files it writes (a video file's extension,
# videoblip2.extract.VIDEO_EXTENSIONS, is shorter than the longest of them)
ID_SUFFIXES = (".npy", ".noaudio.json")
MAX_ID_BYTES = NAME_MAX - max(len(suffix.encode()) for suffix in ID_SUFFIXES)  # 242
_DRIVE = re.compile(r"[A-Za-z]:")
_SHOWN = 80  # characters of a long id shown in a message


class UnsafeIdError(ValueError):
    """A video id that could name a file outside its folder (or no file at all); the message names where it
    came from, the id and the rule it breaks."""


def id_problem(video_id: object) -> str | None:
    """Why ``video_id`` is not a safe video id (the rule it breaks, one phrase), or None if it is one."""
    if not isinstance(video_id, str):
        return f"a video id must be a string, got {type(video_id).__name__}"
    if not video_id:
        return "a video id must not be empty"
    if "\x00" in video_id:
        return "a video id must not contain a NUL character"
    if video_id.startswith(("/", "\\")) or _DRIVE.match(video_id):
        return "a video id must not be an absolute path or a drive (it is a file name, not a path)"
    if "/" in video_id or "\\" in video_id:
        return "a video id must not contain a path separator ('/' or '\\'): it is a file name, not a path"
    if video_id in (".", ".."):
        return "a video id must not be '.' or '..'"
    try:
        size = len(video_id.encode("utf-8"))
    except UnicodeEncodeError:
        return "a video id must be valid Unicode text (it holds a lone surrogate)"
    if size > MAX_ID_BYTES:
        return (f"a video id may have at most {MAX_ID_BYTES} bytes in UTF-8 (this one has {size}), so that "
                f"{{id}}.noaudio.json fits the {NAME_MAX}-byte file name limit")
    return None


def _shown(video_id: object) -> str:
    """The id as a one-line Python literal, cut short when long."""
    text = repr(video_id)
    if len(text) <= _SHOWN:
        return text
    size = f" ({len(video_id)} characters)" if isinstance(video_id, str) else ""
    return f"{text[:_SHOWN]}...{size}"


def check_video_id(video_id: object, where: str) -> str:
    """Return ``video_id`` if it is a safe video id (see the module docstring), else raise.

    Args:
        video_id: the id as read (an annotation record, a file stem, a form field).
        where: where it came from, for the message: the file and the line or entry, e.g. ``"ann.csv: line 3"``.

    Raises:
        UnsafeIdError: one line ``"{where}: unsafe video id {id!r}: {rule}"``.
    """
    problem = id_problem(video_id)
    if problem is not None:
        raise UnsafeIdError(f"{where}: unsafe video id {_shown(video_id)}: {problem}")
    return video_id  # type: ignore[return-value]
