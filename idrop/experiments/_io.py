"""Crash-safe file writes: whole files atomically, logs append-only.

A result folder must survive ``kill -9`` at any instant, and a power loss too. Whole
files (``state.json``, ``results.json``, tables) are written to a temporary file in the
same folder, flushed and ``fsync``-ed, then renamed over the target with
:func:`os.replace`, which is atomic on POSIX and Windows: a reader sees the old file or
the new one, never half of one. The folder is ``fsync``-ed after the rename, so the new
name is on disk before anything that points at it (``state.json`` after a checkpoint)
is written. The metrics log is append-only JSON Lines; a kill can leave at most one
partial last line, which :func:`read_jsonl` skips.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any


def _jsonable(value: Any) -> Any:
    """NumPy scalars and arrays to Python; non-finite floats to None (strict JSON)."""
    if hasattr(value, "tolist"):  # NumPy scalar or array, without importing NumPy
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(obj: Any, *, indent: int | None = None) -> str:
    """Strict JSON (no NaN) of ``obj``, with NumPy values converted."""
    return json.dumps(_jsonable(obj), indent=indent, allow_nan=False, sort_keys=False)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk; a no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # Windows cannot open a folder; its renames are durable on return
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike[str]) -> None:
    """``fsync`` a file, or every file and folder under a folder (a checkpoint in any format)."""
    path = Path(path)
    if path.is_dir():
        for child in sorted(path.iterdir()):
            fsync_tree(child)
        fsync_dir(path)
        return
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` so that a crash leaves the old file or the new one.

    Order: write a temporary file, ``fsync`` it, rename it over ``path``, ``fsync`` the folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """:func:`atomic_write_text` of ``obj`` as indented strict JSON."""
    return atomic_write_text(path, dumps(obj, indent=2) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def append_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Append rows to a JSON Lines file and flush them to disk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(dumps(row) + "\n" for row in rows)
    with open(path, "a", encoding="utf-8") as f:
        # A partial line left by an earlier kill would glue onto this row: start a new line.
        if f.tell() > 0 and not _ends_with_newline(path):
            f.write("\n")
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield the rows of a JSON Lines file, skipping blank and partial (killed) lines."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue  # the tail of a write cut short by a kill
