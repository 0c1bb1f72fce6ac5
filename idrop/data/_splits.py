"""The one return type of every loader: train and test arrays plus their provenance."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Splits(NamedTuple):
    """Train and test arrays of one dataset, and a note of what was loaded.

    A named tuple, so ``x_train, y_train, x_test, y_test, source = splits`` works.

    Attributes:
        x_train: Training inputs.
        y_train: Training labels, int64.
        x_test: Test inputs.
        y_test: Test labels, int64.
        source: Human-readable description of the data actually used, for the
            experiment's ``config.json`` and report (for example whether the full
            MNIST training set or the 5,000-image subset was used).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def holdout_split(
    x: np.ndarray, y: np.ndarray, n_test: int, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split ``(x, y)`` into train and a held-out test part of ``n_test`` rows.

    The permutation comes from ``numpy.random.default_rng(seed)``, so the split is
    the same on every machine and NumPy version with the same generator.
    """
    if isinstance(n_test, bool) or not isinstance(n_test, int) or not 0 < n_test < len(x):
        raise ValueError(
            "Invalid value received for argument `n_test`. Expected an int in "
            f"(0, {len(x)}). Received: n_test={n_test!r}"
        )
    order = np.random.default_rng(seed).permutation(len(x))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]
