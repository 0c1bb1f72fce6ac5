"""Helpers the experiment modules share: reading the CLI's common options, KL-share maths.

Framework-free: the CLI imports experiment modules lazily, and ``--help`` must not
pay for a deep-learning import.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
from collections.abc import Sequence
from typing import Any

import numpy as np

from idrop.backends import BACKENDS as SUPPORTED_BACKENDS

from . import _lock
from ._errors import ExperimentError, ResultFolderError
from ._run_state import RunRegistry


def seeds_of(args: argparse.Namespace, default: Sequence[int] = (0,)) -> list[int]:
    """The seeds to run: ``0..N-1`` for the CLI's ``--seeds N``, else the default."""
    seeds = getattr(args, "seeds", None)
    return list(default) if seeds is None else list(range(seeds))


def epochs_of(args: argparse.Namespace, quick: int, full: int) -> int:
    """``--epochs`` if given, else the quick or full default."""
    epochs = getattr(args, "epochs", None)
    if epochs is not None:
        return int(epochs)
    return quick if getattr(args, "quick", False) else full


def backend_of(args: argparse.Namespace, experiment: str) -> str:
    """The backend, checked against those this experiment has (TF/JAX ports are pending)."""
    backend = getattr(args, "backend", None) or "torch"
    if backend not in SUPPORTED_BACKENDS:
        raise NotImplementedError(
            f"The {experiment} experiment exists for {', '.join(SUPPORTED_BACKENDS)} only; "
            f"received --backend {backend}."
        )
    if backend == "keras" and importlib.util.find_spec(f"idrop.experiments.{experiment}.keras") is None:
        raise NotImplementedError(
            f"The {experiment} experiment has no trainer for Keras on any Keras backend yet (mnist and vae have); "
            "use --backend tensorflow for its Keras 3 trainer on TensorFlow."
        )
    return backend


def progress_of(args: argparse.Namespace) -> bool:
    """Whether to show progress (``--no-progress`` turns it off)."""
    return not getattr(args, "no_progress", False)


def box_on_grid(boxes: np.ndarray, canvas: int, size: int) -> np.ndarray:
    """Scale canvas boxes ``(y0, x0, y1, x1)`` (end-exclusive) to a ``size`` x ``size`` map.

    The box grows to every cell it touches (floor of the start, ceiling of the end), so a
    feature map cell that sees part of the digit counts as inside.
    """
    b = np.asarray(boxes, dtype=np.float64) * (size / canvas)
    out = np.concatenate([np.floor(b[:, :2]), np.ceil(b[:, 2:])], axis=1).astype(np.int64)
    return np.clip(out, 0, size)


def prepare(results: Any, config: dict[str, Any], resume: bool) -> None:
    """Take the folder's lock and write ``config.json``.

    Without ``--resume`` a folder whose ``state.json`` records runs is an error, as the
    option's help says (deleting finished results silently is worse than asking); what a
    start that recorded nothing left behind (metrics rows, checkpoints) is cleared. With
    ``--resume`` a different configuration is an error (see ``ResultDir.write_config``),
    so finished runs are never mixed with runs made under other settings.

    Raises:
        ResultFolderError: The folder holds runs and ``resume`` is False, its config
            differs, or another process holds its lock.
    """
    _lock.hold(results.root)  # before reading the registry: no other process changes it now
    if not resume:
        registry = RunRegistry(results.state)
        if registry.finished or registry.in_progress:
            raise ResultFolderError(
                f"{results.root} already holds runs; pass --resume to continue them, or choose another --out."
            )
        for path in (results.state, results.metrics):
            path.unlink(missing_ok=True)
        shutil.rmtree(results.checkpoints, ignore_errors=True)
    results.write_config(config, overwrite=not resume)


def check_device(backend: str, device: str) -> None:
    """Refuse ``--device cuda`` when the backend sees no GPU, before any data is loaded.

    Imports the backend's framework, but only for ``cuda`` (``auto`` and ``cpu`` always work).

    Raises:
        ExperimentError: ``device`` is ``cuda`` and the framework finds no GPU.
    """
    if device != "cuda":
        return
    if backend == "torch":
        import torch

        found = torch.cuda.is_available()
    elif backend == "tensorflow":
        import tensorflow as tf

        found = bool(tf.config.list_physical_devices("GPU"))
    else:
        import jax

        try:
            found = bool(jax.devices("gpu"))
        except RuntimeError:  # no GPU backend
            found = False
    if not found:
        raise ExperimentError(
            f"--device cuda: {backend} sees no CUDA device. Use --device cpu, or --device auto "
            "(the GPU when there is one)."
        )
