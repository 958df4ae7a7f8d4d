"""Your own captions (``csv`` / ``tsv``): ``video_id,caption`` rows, an optional header naming the two
columns."""

from __future__ import annotations

from .common import AnnotationError, _caption, _read_table, _safe_id


def _load_table(path: str, delimiter: str) -> dict[str, list[str]]:
    """A lab's own ``video_id<delimiter>caption`` rows; an optional header names the two columns."""
    rows = _read_table(path, delimiter)
    name = "TSV" if delimiter == "\t" else "CSV"
    columns, first = (0, 1), 0
    if rows and {"video_id", "caption"} <= {cell.strip().lower() for cell in rows[0]}:
        header = [cell.strip().lower() for cell in rows[0]]
        columns, first = (header.index("video_id"), header.index("caption")), 1
    annotations: dict[str, list[str]] = {}
    for lineno, row in enumerate(rows[first:], first + 1):
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {lineno}"
        if first == 0 and len(row) != 2:
            raise AnnotationError(f"{path}: {where}: expected 2 {name} fields (video_id, caption), got {len(row)}"
                                  + ("; quote captions that contain the delimiter" if len(row) > 2 else ""))
        if first == 1 and len(row) <= max(columns):
            raise AnnotationError(f"{path}: {where}: {len(row)} fields, the header names more")
        video_id = row[columns[0]].strip()
        if not video_id:
            raise AnnotationError(f"{path}: {where}: empty video_id")
        _safe_id(path, where, video_id)
        annotations.setdefault(video_id, []).append(_caption(path, f"{where} ({video_id})", row[columns[1]]))
    return annotations
