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
| ``.lock`` | the pid of the process writing the folder; its ``flock`` keeps a second one out |
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import _lock
from ._errors import ResultFolderError
from ._io import _jsonable, atomic_write_json, read_json
from ._run_state import RunRegistry

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
        """Make (if needed) and return ``<out>/<experiment>/<backend>/``.

        Raises:
            ResultFolderError: The folder cannot be made: a file is in the way, permission
                is denied, the disk is read-only or full.
        """
        _check_name("experiment", experiment)
        _check_name("backend", backend)
        root = Path(out) / experiment / backend
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            # A file where a folder of the path should be, permission denied, read-only disk, ...
            blocker = next((p for p in (root, *root.parents) if p.exists() and not p.is_dir()), None)
            why = f"{blocker} is a file" if blocker is not None else f"{err.strerror} ({err.filename})"
            raise ResultFolderError(f"cannot make the result folder {root}: {why}; choose another --out") from err
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
        """Write ``config.json``; refuse a config that differs from the one saved runs used.

        Mixing epochs trained under two configurations in one result folder would
        make a silently wrong table, hence the error. A config whose start failed before
        any epoch was recorded in ``state.json`` (a crash, a diverged first epoch) binds
        nothing: a corrected config replaces it, and the failed start's metrics rows and
        checkpoints are cleared. ``overwrite=True`` replaces the file only; clear
        ``state.json`` and ``metrics.jsonl`` too to start over.

        Takes the folder's lock (:mod:`._lock`) first.

        Raises:
            ResultFolderError: A ``ValueError``: a different ``config.json`` is there and
                runs were recorded under it, or it is damaged; or another process holds
                the lock.
        """
        _lock.hold(self.root)
        new = _jsonable(dict(config))
        if self.config.is_dir():
            raise ResultFolderError(
                f"{self.config} is a folder, not idrop's config file; move it away or use another --out."
            )
        if self.config.exists() and not overwrite:
            try:
                old = read_json(self.config)
            except (OSError, UnicodeDecodeError, ValueError) as err:
                old = {"<unreadable>": str(err)}
            # The command line is provenance, not a setting: a resumed run may be typed differently
            # (option order, --no-progress) and keeps the first run's record.
            if _settings(old) == _settings(new):
                return self.config
            if self._runs_recorded():
                if "<unreadable>" in old:
                    raise ResultFolderError(
                        f"{self.config} cannot be read as JSON ({old['<unreadable>']}) but {self.state} "
                        "records runs; restore it, or use another --out."
                    )
                was, now = _settings(old), _settings(new)
                changed = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
                raise ResultFolderError(
                    f"{self.config} holds a different configuration (keys {changed} differ). "
                    "Resume with the same settings, or pick another output folder."
                )
            # The old config's start failed before recording an epoch: nothing depends on it.
            self.metrics.unlink(missing_ok=True)
            shutil.rmtree(self.checkpoints, ignore_errors=True)
        return atomic_write_json(self.config, new)

    def _runs_recorded(self) -> bool:
        """Whether ``state.json`` records a finished run or a completed epoch."""
        registry = RunRegistry(self.state)
        return bool(registry.finished or registry.in_progress)


#: Keys of ``config.json`` that record how a run was started rather than what it computes.
PROVENANCE_KEYS = ("command",)


def _settings(config: dict) -> dict:
    """``config`` without its provenance keys: what must match for a run to be resumed."""
    return {k: v for k, v in config.items() if k not in PROVENANCE_KEYS}
