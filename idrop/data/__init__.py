"""Datasets of the paper's experiments, as NumPy arrays (no framework import).

Data directory: the ``data_dir`` argument, else ``$IDROP_DATA_DIR``, else
``~/.cache/idrop``. Files are downloaded once, checked against their published
checksums, and cached; offline, a missing file raises a ``DataNotFoundError`` (a
``FileNotFoundError``) that names it, where to put it and where to get it. Every error
about the data itself is a :class:`DataError` whose message names the file and the fix.

Example:
    >>> from idrop.data import mnist_splits
    >>> x_train, y_train, x_test, y_test, source = mnist_splits()  # doctest: +SKIP
"""

from ._download import ENV_VAR as ENV_VAR
from ._download import Resource as Resource
from ._download import check_data_dir as check_data_dir
from ._download import download_url as download_url
from ._download import fetch as fetch
from ._download import resolve_data_dir as resolve_data_dir
from ._errors import ChecksumError as ChecksumError
from ._errors import CorruptFileError as CorruptFileError
from ._errors import DataError as DataError
from ._errors import DataNotFoundError as DataNotFoundError
from ._splits import Splits as Splits
from ._splits import holdout_split as holdout_split
from ._splits import stratified_subset as stratified_subset
from .cifar10 import apply_zca as apply_zca
from .cifar10 import channel_stats as channel_stats
from .cifar10 import download_cifar10 as download_cifar10
from .cifar10 import fit_zca as fit_zca
from .cifar10 import load_cifar10 as load_cifar10
from .cifar10 import normalize_channels as normalize_channels
from .cluttered import Cluttered as Cluttered
from .cluttered import cluttered_mnist as cluttered_mnist
from .mnist import binarize as binarize
from .mnist import download_mnist as download_mnist
from .mnist import load_mnist as load_mnist
from .mnist import mnist_splits as mnist_splits
from .mnist import read_idx as read_idx
from .mnist import write_idx as write_idx

__all__ = [
    "ENV_VAR",
    "ChecksumError",
    "Cluttered",
    "CorruptFileError",
    "DataError",
    "DataNotFoundError",
    "Resource",
    "Splits",
    "apply_zca",
    "binarize",
    "channel_stats",
    "check_data_dir",
    "cluttered_mnist",
    "download_cifar10",
    "download_mnist",
    "download_url",
    "fetch",
    "fit_zca",
    "holdout_split",
    "load_cifar10",
    "load_mnist",
    "mnist_splits",
    "normalize_channels",
    "read_idx",
    "resolve_data_dir",
    "stratified_subset",
    "write_idx",
]
