"""Shared fixtures of the experiment tests."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def _write_tiny_cifar(root: Path, per_batch: int = 8) -> None:
    """A CIFAR-10 folder in the real format, ``per_batch`` random images per batch file."""
    from idrop.data import cifar10

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [*cifar10.TRAIN_BATCHES, cifar10.TEST_BATCH]:
        # The real files: py2 pickles of {b'data': uint8 [n, 3072], b'labels': list, ...}.
        batch = {
            b"batch_label": b"tiny",
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
            b"filenames": [b"x.png"] * per_batch,
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [c.encode() for c in cifar10.CLASSES]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


@pytest.fixture
def write_tiny_cifar() -> Callable[..., None]:
    """``write_tiny_cifar(root, per_batch=8)`` writes a tiny CIFAR-10 folder under ``root``."""
    return _write_tiny_cifar
