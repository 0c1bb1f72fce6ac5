"""CIFAR-10 from the official python tarball, and its input normalisation.

The tarball (``cifar-10-python.tar.gz``, 163 MiB) is downloaded once, checked
against its published MD5, and extracted to ``cifar-10-batches-py/`` next to it.
The batches are pickles of ``{b"data": uint8 [10000, 3072], b"labels": [...]}``,
each row channel-major (1024 red, 1024 green, 1024 blue); they are read with an
unpickler that only accepts the NumPy types these files contain, so a tampered
download cannot run code.

Normalisation: :func:`normalize_channels` (per-channel mean and standard deviation
of the training set), or ZCA whitening with :func:`fit_zca` / :func:`apply_zca`,
which the CIFAR-10 experiment uses after a per-image normalisation, as the official
Information Dropout code does.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ._download import Resource, check_data_dir, fetch, search_dirs
from ._errors import CorruptFileError
from ._splits import Splits

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
RESOURCE = Resource("cifar-10-python.tar.gz", (URL,), md5="c58f30108f718f92721af3b95e74349a")
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a CIFAR batch refers to."""

    _ALLOWED = frozenset({"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"})

    def find_class(self, module: str, name: str) -> Any:
        if module == "_codecs" and name == "encode":
            # Protocol-2 pickles written by Python 3 store bytes via codecs.encode: harmless.
            return super().find_class(module, name)
        if module.split(".")[0] == "numpy" and name in self._ALLOWED:
            # Pickles from NumPy 1 name ``numpy.core``; NumPy 2 moved it to ``numpy._core``.
            module = module.replace("numpy.core", "numpy._core") if hasattr(np, "_core") else module
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"CIFAR batch refers to a forbidden global {module}.{name}")


def _corrupt(path: str | os.PathLike[str], what: str) -> CorruptFileError:
    return CorruptFileError(
        f"Corrupt CIFAR-10 batch {path}: {what}. Delete its folder {FOLDER}/ to extract it again from "
        f"{RESOURCE.filename} (fetched again with `idrop reproduce cifar10 --download` if that is gone too)."
    )


def read_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read one pickled batch: returns uint8 images [n, 32, 32, 3] (NHWC), int64 labels."""
    with open(path, "rb") as f:
        try:
            entry = _NumpyOnlyUnpickler(f, encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise _corrupt(path, str(err)) from err
    if not isinstance(entry, dict) or b"data" not in entry or b"labels" not in entry:
        raise _corrupt(path, "expected keys b'data' and b'labels'")
    data = np.asarray(entry[b"data"], dtype=np.uint8)
    labels = np.asarray(entry[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise _corrupt(path, f"data {data.shape}, labels {labels.shape}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def extract(tarball: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract ``cifar-10-batches-py/`` from ``tarball`` into ``dest``, atomically.

    Members outside that folder, links and absolute paths are refused. The folder
    is extracted to a temporary sibling first and renamed, so a killed extraction
    leaves no half-filled folder that would later pass for a complete one.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".cifar10-", dir=dest))
    try:
        with tarfile.open(tarball, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(FOLDER + "/") and m.isfile()]
            for m in members:
                if ".." in Path(m.name).parts or Path(m.name).is_absolute():
                    raise ValueError(f"Unsafe path in {tarball}: {m.name}")
                # ``filter`` exists from Python 3.12 (backported to 3.8.17+ / 3.11.4+).
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extract(m, tmp, **kwargs)
        if not (tmp / FOLDER).is_dir():
            raise ValueError(f"{tarball} holds no `{FOLDER}/` folder; is it the python version?")
        target = dest / FOLDER
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp / FOLDER, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _find_folder(data_dir: object) -> Path | None:
    for folder in search_dirs("cifar10", data_dir):
        names = (*TRAIN_BATCHES, TEST_BATCH)
        if all((folder / FOLDER / n).is_file() for n in names):
            return folder / FOLDER
    return None


def download_cifar10(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Download and extract CIFAR-10 into the data directory, unless an extracted copy is there.

    Returns:
        The ``cifar-10-batches-py`` folder.

    Raises:
        DataNotFoundError: The tarball cannot be downloaded (offline); the message has its URL.
        ChecksumError: The download does not match the published MD5.
    """
    return _locate(data_dir, download=True)


def _locate(data_dir: object, download: bool) -> Path:
    if not download:
        check_data_dir(data_dir)  # a mistyped folder is an error, not "not cached"
    folder = _find_folder(data_dir)
    if folder is None:  # a cached tarball is extracted; else fetched when allowed
        tarball = fetch(RESOURCE, "cifar10", data_dir, download=download)
        folder = extract(tarball, search_dirs("cifar10", data_dir)[-1])
    return folder


def load_cifar10(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    dtype: str = "uint8",
) -> Splits:
    """Load CIFAR-10 (50,000 train, 10,000 test), downloading it if allowed.

    Args:
        data_dir: Data directory (see :func:`idrop.data.resolve_data_dir`).
        download: Download the tarball when no extracted copy is found.
        dtype: ``"uint8"`` (0..255) or ``"float32"`` (scaled to [0, 1]).

    Returns:
        Images NHWC ``[n, 32, 32, 3]``, int64 labels, and ``source``.

    Raises:
        DataNotFoundError: A ``FileNotFoundError``: not cached and cannot be downloaded
            (or ``data_dir`` does not exist and ``download=False``); the message says
            where to put the tarball and its URL.
        CorruptFileError: A batch file is there but cannot be read as one.
    """
    if dtype not in ("uint8", "float32"):
        raise ValueError(
            "Invalid value received for argument `dtype`. Expected one of 'uint8', "
            f"'float32'. Received: dtype={dtype!r}"
        )
    folder = _locate(data_dir, download)
    parts = [read_batch(folder / name) for name in TRAIN_BATCHES]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = read_batch(folder / TEST_BATCH)
    if dtype == "float32":
        x_train, x_test = x_train.astype(np.float32) / 255.0, x_test.astype(np.float32) / 255.0
    source = f"CIFAR-10: {len(x_train):,} train / {len(x_test):,} test, from {folder}"
    return Splits(x_train, y_train, x_test, y_test, source)


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of NHWC images (float64, shape [C])."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))


def normalize_channels(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` per channel, as float32; use the training set's stats."""
    return ((np.asarray(x, dtype=np.float64) - mean) / std).astype(np.float32)


def fit_zca(x: np.ndarray, *, epsilon: float = 1e-2, add_to: str = "variance") -> tuple[np.ndarray, np.ndarray]:
    """Fit ZCA whitening on images ``x`` [n, ...]: returns (mean [d], matrix [d, d]).

    ``matrix = V diag(1 / s) V^T`` over the eigenpairs ``(lambda, V)`` of the (ddof=1) covariance, with
    ``s = sqrt(lambda + epsilon)`` (``add_to="variance"``, the usual CIFAR-10 pipelines) or
    ``s = sqrt(lambda) + epsilon`` (``add_to="std"``, the official Information Dropout
    ``process_cifar.py``, which adds ``1e-5`` to the singular values).
    """
    if add_to not in ("variance", "std"):
        raise ValueError(
            f"Invalid value received for argument `add_to`. Expected 'variance' or 'std'. Received: add_to={add_to!r}"
        )
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    mean = flat.mean(axis=0)
    cov = np.cov(flat - mean, rowvar=False)
    eigval, eigvec = np.linalg.eigh(cov)
    eigval = np.maximum(eigval, 0.0)
    scale = np.sqrt(eigval + epsilon) if add_to == "variance" else np.sqrt(eigval) + epsilon
    matrix = (eigvec * (1.0 / scale)) @ eigvec.T
    return mean, matrix


def apply_zca(x: np.ndarray, mean: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Whiten ``x`` with a fit from :func:`fit_zca`; returns float32 of ``x``'s shape."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return ((flat - mean) @ matrix).reshape(np.shape(x)).astype(np.float32)
