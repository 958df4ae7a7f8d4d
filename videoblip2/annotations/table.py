"""Your own captions (``csv`` / ``tsv``): ``video_id,caption`` rows, an optional header naming the two
columns."""

from __future__ import annotations

from .common import AnnotationError, _caption, _read_table, _safe_id


# column names a header row of a caption table may use: a first row made of them is a header, not a caption
_HEADER_WORDS = {"id", "vid", "video", "videoid", "video_id", "video_name", "name", "clip", "clip_id", "file",
                 "filename", "path", "caption", "captions", "text", "sentence", "description", "desc", "label",
                 "annotation"}


def _looks_like_header(row: list[str]) -> bool:
    cells = [cell.strip().lower() for cell in row]
    return all(cells) and all(" " not in cell for cell in cells) and any(cell in _HEADER_WORDS for cell in cells[1:])


def _load_table(path: str, delimiter: str) -> dict[str, list[str]]:
    """A lab's own ``video_id<delimiter>caption`` rows; an optional header names the two columns."""
    rows = _read_table(path, delimiter)
    name = "TSV" if delimiter == "\t" else "CSV"
    columns, first, width = (0, 1), 0, 2
    if rows and {"video_id", "caption"} <= {cell.strip().lower() for cell in rows[0]}:
        header = [cell.strip().lower() for cell in rows[0]]
        columns, first, width = (header.index("video_id"), header.index("caption")), 1, len(header)
    elif rows and _looks_like_header(rows[0]):
        raise AnnotationError(f"{path}: line 1 ({delimiter.join(rows[0])}) looks like a header but does not name "
                              "the video_id and caption columns: rename them video_id and caption, or remove it")
    annotations: dict[str, list[str]] = {}
    for lineno, row in enumerate(rows[first:], first + 1):
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {lineno}"
        if len(row) != width:  # with or without a header: a caption's unquoted delimiter would lose words
            names = "the header's columns" if first else "video_id, caption"
            raise AnnotationError(f"{path}: {where}: expected {width} {name} fields ({names}), got {len(row)}"
                                  + ("; quote captions that contain the delimiter" if len(row) > width else ""))
        video_id = row[columns[0]].strip()
        if not video_id:
            raise AnnotationError(f"{path}: {where}: empty video_id")
        _safe_id(path, where, video_id)
        annotations.setdefault(video_id, []).append(_caption(path, f"{where} ({video_id})", row[columns[1]]))
    return annotations
