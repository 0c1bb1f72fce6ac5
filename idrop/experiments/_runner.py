"""The backend-neutral training loop over a grid of runs, with kill-safe resume.

A backend supplies one object per run that follows :class:`Run`: it trains one
epoch, evaluates, and saves or loads its own model and optimizer state to a path
the loop gives it. The loop owns everything else: the order of runs, the metrics
log, the checkpoint files' names, the registry, resuming, and progress.

Crash safety: a checkpoint is written to a temporary name, ``fsync``-ed, renamed to
``checkpoints/<run>/epoch_NNNN``, its folder ``fsync``-ed, and only then recorded in
``state.json`` (written the same way); older checkpoints of the run are deleted after
that. So at every instant, power loss included, the registry points at a complete
checkpoint. Epochs trained after the last checkpoint are trained again on resume;
their duplicate rows in ``metrics.jsonl`` are resolved by :func:`read_metrics` (the
last row of an epoch wins).

Divergence: an epoch whose metrics hold a NaN or an infinity stops the grid with
:class:`RunDiverged`, naming the run and the epoch; nothing of that epoch is checkpointed.
"""

from __future__ import annotations

import math
import numbers
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from . import _lock
from ._errors import ResultFolderError, RunDiverged
from ._io import append_jsonl, fsync_dir, fsync_tree, read_jsonl
from ._layout import ResultDir
from ._progress import EpochProgress, format_metrics
from ._run_state import RunKey, RunRegistry


@runtime_checkable
class Run(Protocol):
    """What a backend's trainer provides for one (method, width, seed) run.

    ``make_run(key)`` builds it fresh (model, optimizer, seeded from ``key.seed``);
    on resume, :meth:`load_state` is called right after.
    """

    def train_epoch(self, epoch: int) -> Mapping[str, float]:
        """Train epoch ``epoch`` (1-based); return its metrics (loss, kl, error, ...)."""
        ...

    def evaluate(self) -> Mapping[str, float]:
        """Final evaluation; return at least ``test_error`` (a fraction in [0, 1])."""
        ...

    def save_state(self, path: Path) -> None:
        """Write model, optimizer (and RNG) state to ``path``, a file or a folder it creates."""
        ...

    def load_state(self, path: Path) -> None:
        """Restore what :meth:`save_state` wrote to ``path``."""
        ...


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def save_checkpoint(results: ResultDir, key: RunKey, epoch: int, save_state: Callable[[Path], None]) -> str:
    """Save a run's state after ``epoch`` atomically; return its path relative to the folder.

    ``save_state(path)`` must create ``path`` (a file, or a folder for formats such
    as Orbax); it is called on a temporary name that is renamed once it returns.
    """
    folder = results.checkpoints / key.name
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"epoch_{epoch:04d}"
    tmp = folder / f".epoch_{epoch:04d}.tmp"
    _remove(tmp)  # left by a kill during an earlier save
    save_state(tmp)
    if not tmp.exists():
        raise RuntimeError(f"save_state({tmp}) returned without creating {tmp}.")
    fsync_tree(tmp)  # the bytes reach the disk before the name that state.json will point at
    _remove(final)
    os.replace(tmp, final)
    fsync_dir(folder)
    return final.relative_to(results.root).as_posix()


def _prune(results: ResultDir, key: RunKey, keep: str | None) -> None:
    folder = results.checkpoints / key.name
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if keep is None or entry.relative_to(results.root).as_posix() != keep:
            _remove(entry)
    if keep is None:
        folder.rmdir()


def _check_finite(results: ResultDir, key: RunKey, when: str, metrics: Mapping[str, Any], last: int) -> None:
    """Raise :class:`RunDiverged` when a metric (the training loss first of all) is NaN or infinite."""
    bad = [k for k, v in metrics.items() if isinstance(v, numbers.Real) and not math.isfinite(v)]
    if not bad:
        return
    values = ", ".join(f"{k}={metrics[k]}" for k in bad)
    kept = f"its last checkpoint (epoch {last}) is kept" if last else "it has no checkpoint yet"
    raise RunDiverged(
        f"{results.experiment} on {results.backend}: run {key.name} (method {key.method}, width {key.width:g}, "
        f"seed {key.seed}) diverged {when}: {values}. The grid stopped; finished runs are kept and {kept}. "
        "Lower --lr (or --beta), then rerun with --resume (or use another --out)."
    )


def _load(run: Run, results: ResultDir, key: RunKey, checkpoint: str) -> None:
    path = results.root / checkpoint
    try:
        run.load_state(path)
    except Exception as err:  # any format's error: a truncated or foreign file is the user's to remove
        raise ResultFolderError(
            f"cannot load the checkpoint {path} of run {key.name} ({type(err).__name__}: {err}). "
            f"Delete it to train that run again from its first epoch, then rerun with --resume."
        ) from err


def run_grid(
    results: ResultDir,
    keys: Iterable[RunKey],
    make_run: Callable[[RunKey], Run],
    *,
    epochs: int,
    checkpoint_every: int = 1,
    keep_checkpoints: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train every run of ``keys`` for ``epochs`` epochs, resuming where a kill left off.

    Finished runs (per ``state.json``) are skipped; an unfinished one restarts from
    its last checkpoint. Each epoch appends a row to ``metrics.jsonl``.

    Args:
        results: The result folder.
        keys: The runs, trained in this order.
        make_run: Builds a fresh :class:`Run` for a key.
        epochs: Epochs per run, >= 1.
        checkpoint_every: Save a checkpoint every this many epochs (and after the last).
        keep_checkpoints: Keep the final checkpoint of finished runs (default: delete).
        progress: Show a progress bar or log lines.

    Returns:
        The registry's rows of all finished runs (method, width, seed, result fields).
    """
    for name, value in (("epochs", epochs), ("checkpoint_every", checkpoint_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"Invalid value received for argument `{name}`. Expected an int >= 1. Received: {name}={value!r}"
            )
    _lock.hold(results.root)  # one writer per folder, for the rest of the process
    registry = RunRegistry(results.state)
    for key in keys:
        if registry.is_finished(key):
            continue
        done, checkpoint = registry.resume_point(key)
        run = make_run(key)
        if checkpoint is not None and (results.root / checkpoint).exists():
            _load(run, results, key, checkpoint)
        else:
            done, checkpoint = 0, None  # nothing to restore: start the run over
        with EpochProgress(epochs, initial=done, desc=key.name, enable=progress) as bar:
            saved = done
            for epoch in range(done + 1, epochs + 1):
                metrics = dict(run.train_epoch(epoch))
                append_jsonl(results.metrics, [{**key.as_dict(), "epoch": epoch, **metrics}])
                _check_finite(results, key, f"in epoch {epoch}", metrics, saved)
                bar.update(metrics)
                if epoch % checkpoint_every == 0 or epoch == epochs:
                    checkpoint = save_checkpoint(results, key, epoch, run.save_state)
                    registry.record_epoch(key, epoch, checkpoint)
                    _prune(results, key, keep=checkpoint)
                    saved = epoch
            result = {**dict(run.evaluate()), "epochs": epochs}
            _check_finite(results, key, f"in its evaluation after epoch {epochs}", result, saved)
            registry.finish(key, result)
            bar.write(f"{key.name} done: " + " ".join(f"{k}={v}" for k, v in format_metrics(result).items()))
        if not keep_checkpoints:
            _prune(results, key, keep=None)
    return registry.results()


def read_metrics(results: ResultDir) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl``, one per (method, width, seed, epoch), the last kept.

    Rows repeat when a run resumed from a checkpoint older than its last logged
    epoch; the retrained epoch's row is the one that counts.
    """
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in read_jsonl(results.metrics):
        rows[(row.get("method"), row.get("width"), row.get("seed"), row.get("epoch"))] = row
    return list(rows.values())
