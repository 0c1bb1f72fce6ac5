"""Pieces the Keras 3 trainers (any ``KERAS_BACKEND``) share: batching and checkpoints of every variable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Index batches over ``n`` items, shuffled when ``rng`` is given; the last may be short."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def state_variables(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> list[Any]:
    """Every variable a checkpoint holds: the model's (weights, statistics, noise seeds) and the optimizer's."""
    return list(model.variables) + list(optimizer.variables)


class KerasCheckpoint:
    """``save_state``/``load_state`` of a run holding ``model`` and ``optimizer`` (and optionally ``rng``)."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer

    def save_state(self, path: Path) -> None:
        arrays = [keras.ops.convert_to_numpy(v) for v in state_variables(self.model, self.optimizer)]
        rng = getattr(self, "rng", None)
        extra = {"numpy_rng": np.array(repr(rng.bit_generator.state))} if rng is not None else {}
        with open(path, "wb") as fh:
            np.savez(fh, *arrays, **extra)

    def load_state(self, path: Path) -> None:
        variables = state_variables(self.model, self.optimizer)
        with np.load(path) as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files) - ("numpy_rng" in saved.files))]
            if len(values) != len(variables):
                raise ValueError(f"{path} holds {len(values)} arrays; this run has {len(variables)} variables.")
            for var, value in zip(variables, values):
                var.assign(value)
            if "numpy_rng" in saved.files:
                import ast

                self.rng.bit_generator.state = ast.literal_eval(str(saved["numpy_rng"]))
