"""The MNIST splits of the experiment: training, validation (carved from the training images) and test."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class MnistData:
    """Float32 images ``[n, 784]`` and int64 labels of the three splits."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def load_data(data_dir: str | None, config: Any = None) -> tuple[Any, str]:
    """MNIST as float32 arrays; with ``config``, ``n_train + n_valid`` training images (equally many of
    each digit: the offline file is sorted by label) split into training and validation parts by a fixed
    permutation (seed 0), which :class:`MnistData` holds."""
    from idrop.data import holdout_split, mnist_splits, stratified_subset

    splits = mnist_splits(data_dir)
    if config is None:
        return splits, splits.source
    n_used = config.n_train + config.n_valid
    x, y = stratified_subset(splits.x_train, splits.y_train, n_used)
    x, y = np.asarray(x, np.float32), np.asarray(y, np.int64)
    x_tr, y_tr, x_va, y_va = holdout_split(x, y, config.n_valid, seed=0)
    data = MnistData(
        np.ascontiguousarray(x_tr),
        y_tr,
        np.ascontiguousarray(x_va),
        y_va,
        np.ascontiguousarray(splits.x_test, np.float32),
        splits.y_test.astype(np.int64),
        splits.source,
    )
    return data, splits.source
