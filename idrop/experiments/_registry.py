"""The run registry: which (method, width, seed) runs are done, and where to resume.

``state.json`` is rewritten atomically after every change, so a process killed at
any instant leaves either the previous state or the next one. Its content::

    {"version": 1,
     "finished": {"<run>": {"method": ..., "width": ..., "seed": ..., "result": {...}}},
     "in_progress": {"<run>": {"method": ..., "width": ..., "seed": ...,
                               "epoch": 3, "checkpoint": "checkpoints/<run>/epoch_0003"}}}

``epoch`` counts completed epochs; ``checkpoint`` (relative to the result folder)
holds the state after that epoch, written before the registry points at it.
One process writes a registry at a time; runs in parallel need separate folders.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

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
        self.finished: dict[str, dict[str, Any]] = {}
        self.in_progress: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            state = read_json(self.path)
            if state.get("version") != VERSION:
                raise ValueError(
                    f"{self.path} has registry version {state.get('version')!r}; this idrop reads version {VERSION}."
                )
            self.finished = dict(state.get("finished", {}))
            self.in_progress = dict(state.get("in_progress", {}))

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
        self.in_progress[key.name] = {
            **key.as_dict(),
            "epoch": int(epoch),
            "checkpoint": checkpoint,
        }
        self._save()

    def finish(self, key: RunKey, result: Mapping[str, Any]) -> None:
        """Record the final ``result`` of ``key`` and drop its in-progress entry."""
        self.in_progress.pop(key.name, None)
        self.finished[key.name] = {**key.as_dict(), "result": _jsonable(dict(result))}
        self._save()

    def results(self) -> list[dict[str, Any]]:
        """One flat row per finished run: method, width, seed, then the result fields."""
        rows = [{**{k: v for k, v in e.items() if k != "result"}, **e["result"]} for e in self.finished.values()]
        return sorted(rows, key=lambda r: (str(r["method"]), float(r["width"]), int(r["seed"])))
