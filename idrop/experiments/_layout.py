"""The result folder of one experiment on one backend: ``<out>/<experiment>/<backend>/``.

| file | what |
|---|---|
| ``config.json`` | the experiment's settings (hyper-parameters, data ``source``, versions) |
| ``metrics.jsonl`` | one row per epoch per run: method, width, seed, epoch, loss, kl, error, ... |
| ``state.json`` | the run registry: finished runs, and the epoch each unfinished one reached |
| ``checkpoints/<run>/epoch_NNNN`` | model and optimizer state written by the backend's trainer |
| ``results.json`` / ``results.csv`` | per-run final results and the mean/std summary |
| ``table.md`` | the summary as a Markdown table |
| ``*.png`` | plots, such as ``error_vs_width.png`` (the paper's Fig. 3a) |
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._io import _jsonable, atomic_write_json, read_json

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _check_name(arg: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"Invalid value received for argument `{arg}`. Expected a folder name of "
            f"letters, digits, '.', '_' or '-'. Received: {arg}={value!r}"
        )
    return value


@dataclasses.dataclass(frozen=True)
class ResultDir:
    """Paths of one experiment's results on one backend.

    Example:
        >>> import tempfile
        >>> d = ResultDir.create(tempfile.mkdtemp(), "mnist_fc", "torch")
        >>> d.root.parts[-2:], d.metrics.name
        (('mnist_fc', 'torch'), 'metrics.jsonl')
    """

    root: Path
    experiment: str
    backend: str

    @classmethod
    def create(cls, out: str | os.PathLike[str], experiment: str, backend: str) -> ResultDir:
        """Make (if needed) and return ``<out>/<experiment>/<backend>/``."""
        _check_name("experiment", experiment)
        _check_name("backend", backend)
        root = Path(out) / experiment / backend
        root.mkdir(parents=True, exist_ok=True)
        return cls(root, experiment, backend)

    config = property(lambda self: self.root / "config.json")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    state = property(lambda self: self.root / "state.json")
    checkpoints = property(lambda self: self.root / "checkpoints")
    results_json = property(lambda self: self.root / "results.json")
    results_csv = property(lambda self: self.root / "results.csv")
    table = property(lambda self: self.root / "table.md")

    def plot(self, name: str) -> Path:
        """Path of a plot, ``<root>/<name>.png``."""
        return self.root / f"{_check_name('name', name)}.png"

    def write_config(self, config: Mapping[str, Any], *, overwrite: bool = False) -> Path:
        """Write ``config.json``; on resume, refuse a config that differs from the saved one.

        Mixing epochs trained under two configurations in one result folder would
        make a silently wrong table, hence the error. ``overwrite=True`` replaces the
        file only; clear ``state.json`` and ``metrics.jsonl`` too to start over.

        Raises:
            ValueError: A different ``config.json`` is already there.
        """
        new = _jsonable(dict(config))
        if self.config.exists() and not overwrite:
            old = read_json(self.config)
            if old != new:
                changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                raise ValueError(
                    f"{self.config} holds a different configuration (keys {changed} differ). "
                    "Resume with the same settings, or pick another output folder."
                )
            return self.config
        return atomic_write_json(self.config, new)
