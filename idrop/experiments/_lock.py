"""One writer per result folder: an exclusive ``flock`` on ``<folder>/.lock``.

Two processes writing one ``state.json`` would each rewrite it from their own view and
drop the other's finished runs. So every write to a result folder first calls :func:`hold`,
which takes the folder's lock for the rest of the process (the command line releases it,
and deletes the file, when the run ends: :func:`released_after`). The lock is the
kernel's: a process killed with ``kill -9`` frees it at once, so the ``.lock`` file it
leaves never blocks the next run. The file holds the holder's pid, for the message of
the process that is turned away.

Processes that only read (the non-zero ranks of a ``torchrun`` job) never take it.
On a platform without ``fcntl`` (Windows) there is no lock.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ._errors import ResultFolderError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # folder (resolved) -> descriptor of its open, locked .lock file


def hold(folder: str | os.PathLike[str]) -> None:
    """Take the lock of ``folder`` for this process; a no-op when it already has it.

    Raises:
        ResultFolderError: Another process holds it; the message names the lock file and
            the holder's pid.
    """
    folder = Path(folder).resolve()
    if fcntl is None or folder in _held:
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ResultFolderError(
                f"another run holds {path} (pid {holder}); wait for it or use another --out"
            ) from None
        if _same_file(fd, path):
            break
        os.close(fd)  # its holder deleted it between our open and flock: lock the new file
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[folder] = fd


def holds(folder: str | os.PathLike[str]) -> bool:
    """Whether this process holds the lock of ``folder``."""
    return Path(folder).resolve() in _held


@contextlib.contextmanager
def released_after() -> Iterator[None]:
    """Hold the locks taken inside the block until it ends, then release them (one CLI run)."""
    before = set(_held)
    try:
        yield
    finally:
        for folder in [f for f in _held if f not in before]:
            _release(folder)


def release_all() -> None:
    """Release every lock this process holds, deleting the files."""
    for folder in list(_held):
        _release(folder)


def _release(folder: Path) -> None:
    fd = _held.pop(folder)
    # Deleted while still locked: a process that opened it meanwhile sees it is gone (_same_file).
    (folder / LOCK_NAME).unlink(missing_ok=True)
    os.close(fd)  # closing the last descriptor of the open file releases its flock


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False
