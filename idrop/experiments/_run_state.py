"""The run state (`state.json`): which (method, width, seed) runs are done, and where to resume.

``state.json`` is rewritten atomically after every change, so a process killed at
any instant leaves either the previous state or the next one. Its content::

    {"version": 1,
     "finished": {"<run>": {"method": ..., "width": ..., "seed": ..., "result": {...}}},
     "in_progress": {"<run>": {"method": ..., "width": ..., "seed": ...,
                               "epoch": 3, "checkpoint": "checkpoints/<run>/epoch_0003"}}}

``epoch`` counts completed epochs; ``checkpoint`` (relative to the result folder)
holds the state after that epoch, written before the registry points at it.

One process writes a registry at a time: every change takes the result folder's lock
(:mod:`._lock`), re-reads ``state.json``, applies the change and writes it back, so no
change is computed from a stale copy. A second process on the same folder is refused.
A ``state.json`` that is not valid, or not a registry, is an error that names it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from . import _lock
from ._errors import ResultFolderError
from ._io import _jsonable, atomic_write_json, read_json

VERSION = 1


@dataclasses.dataclass(frozen=True, order=True)
class RunKey:
    """One training run of the grid: a method, a layer width, a seed.

    ``width`` is the paper's width multiplier (Fig. 3a: 0.25 to 3) or a unit count.
    """

    method: str
    width: float
    seed: int

    @property
    def name(self) -> str:
        """A file-system-safe id, also the registry key: ``<method>_w<width>_s<seed>``."""
        method = re.sub(r"[^A-Za-z0-9.-]+", "-", self.method)
        return f"{method}_w{self.width:g}_s{self.seed}"

    def as_dict(self) -> dict[str, Any]:
        """The key as ``{"method", "width", "seed"}``, for JSON rows."""
        return {"method": self.method, "width": self.width, "seed": self.seed}


class RunRegistry:
    """The persistent record of a grid of runs (``state.json``).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "state.json"
        >>> reg = RunRegistry(path)
        >>> key = RunKey("information", 1.0, 0)
        >>> reg.record_epoch(key, 1, "checkpoints/x/epoch_0001")
        >>> RunRegistry(path).resume_point(key)  # a new process sees the same state
        (1, 'checkpoints/x/epoch_0001')
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.finished, self.in_progress = self._read()

    def _read(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """``(finished, in_progress)`` from ``state.json`` (empty when there is none).

        Raises:
            ResultFolderError: The file cannot be read, is not JSON, or is not a registry.
        """
        if not self.path.exists():
            return {}, {}
        try:
            state = read_json(self.path)
        except (OSError, UnicodeDecodeError, ValueError) as err:  # JSONDecodeError is a ValueError
            raise self._damaged(f"cannot be read as JSON ({err})") from err
        if not isinstance(state, dict):
            raise self._damaged(f"holds a {type(state).__name__}, not a registry object")
        if state.get("version") != VERSION:
            raise ResultFolderError(
                f"{self.path} has registry version {state.get('version')!r}; this idrop reads version {VERSION}. "
                "Use the idrop that wrote it, or another --out."
            )
        finished, in_progress = state.get("finished", {}), state.get("in_progress", {})
        if not isinstance(finished, dict) or not isinstance(in_progress, dict):
            raise self._damaged("has a 'finished' or 'in_progress' entry that is not an object")
        for name, entry in finished.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("result"), dict) or not _valid_key(entry):
                raise self._damaged(f"has no method, width, seed and result object for finished run {name!r}")
        for name, entry in in_progress.items():
            if not isinstance(entry, dict) or not _valid_resume_point(entry):
                raise self._damaged(f"has no valid epoch and checkpoint for run {name!r}")
        return dict(finished), dict(in_progress)

    def _damaged(self, what: str) -> ResultFolderError:
        return ResultFolderError(
            f"{self.path} {what}: it is damaged or was not written by idrop. Move it away to train "
            "this folder's runs again, or use another --out."
        )

    def _update(self, change: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
        """Under the folder's lock: re-read ``state.json``, apply ``change(finished, in_progress)``, save."""
        _lock.hold(self.path.parent)
        self.finished, self.in_progress = self._read()
        change(self.finished, self.in_progress)
        self._save()

    def _save(self) -> None:
        atomic_write_json(
            self.path,
            {"version": VERSION, "finished": self.finished, "in_progress": self.in_progress},
        )

    def is_finished(self, key: RunKey) -> bool:
        """Whether ``key`` ran to the end and its result is recorded."""
        return key.name in self.finished

    def result(self, key: RunKey) -> dict[str, Any] | None:
        """The recorded final result of ``key``, or None."""
        entry = self.finished.get(key.name)
        return None if entry is None else dict(entry["result"])

    def pending(self, keys: Iterable[RunKey]) -> list[RunKey]:
        """The keys not finished yet, in the given order."""
        return [k for k in keys if not self.is_finished(k)]

    def resume_point(self, key: RunKey) -> tuple[int, str | None]:
        """``(completed epochs, checkpoint path relative to the result folder)``.

        ``(0, None)`` for a run never started.
        """
        entry = self.in_progress.get(key.name)
        if entry is None:
            return 0, None
        return int(entry["epoch"]), entry.get("checkpoint")

    def record_epoch(self, key: RunKey, epoch: int, checkpoint: str | None) -> None:
        """Record that ``key`` has completed ``epoch`` epochs, saved at ``checkpoint``."""
        if self.is_finished(key):
            raise ValueError(f"Run {key.name} is already finished; it cannot record epoch {epoch}.")

        def change(finished: dict[str, Any], in_progress: dict[str, Any]) -> None:
            in_progress[key.name] = {**key.as_dict(), "epoch": int(epoch), "checkpoint": checkpoint}

        self._update(change)

    def finish(self, key: RunKey, result: Mapping[str, Any]) -> None:
        """Record the final ``result`` of ``key`` and drop its in-progress entry."""

        def change(finished: dict[str, Any], in_progress: dict[str, Any]) -> None:
            in_progress.pop(key.name, None)
            finished[key.name] = {**key.as_dict(), "result": _jsonable(dict(result))}

        self._update(change)

    def results(self) -> list[dict[str, Any]]:
        """One flat row per finished run: method, width, seed, then the result fields."""
        rows = [{**{k: v for k, v in e.items() if k != "result"}, **e["result"]} for e in self.finished.values()]
        return sorted(rows, key=lambda r: (str(r["method"]), float(r["width"]), int(r["seed"])))


def _valid_key(entry: Mapping[str, Any]) -> bool:
    """A method name, a numeric width and an integer seed, as :meth:`RunKey.as_dict` writes them."""
    width, seed = entry.get("width"), entry.get("seed")
    numbers_ok = not isinstance(width, bool) and isinstance(width, (int, float)) and not isinstance(seed, bool)
    return isinstance(entry.get("method"), str) and numbers_ok and isinstance(seed, int)


def _valid_resume_point(entry: Mapping[str, Any]) -> bool:
    """An epoch count >= 0 and a checkpoint that is None or a path inside the result folder."""
    epoch, checkpoint = entry.get("epoch"), entry.get("checkpoint")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        return False
    if checkpoint is None:
        return True
    parts = PurePosixPath(checkpoint).parts if isinstance(checkpoint, str) else ("..",)
    return bool(parts) and not PurePosixPath(checkpoint).is_absolute() and ".." not in parts
