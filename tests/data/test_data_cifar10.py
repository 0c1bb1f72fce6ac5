"""CIFAR-10 on a tiny tarball with the real layout and pickle structure."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from idrop.data import ChecksumError, cifar10
from idrop.data.cifar10 import (
    apply_zca,
    channel_stats,
    fit_zca,
    load_cifar10,
    normalize_channels,
    read_batch,
)

PER_BATCH = 4


def _batch(seed: int) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    # Real batches: a py2 pickle of {'data': uint8 [n, 3072], 'labels': list}; read with
    # encoding="bytes" the keys are bytes, as here.
    return {
        b"batch_label": b"testing batch",
        b"data": rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8),
        b"labels": [int(v) for v in rng.integers(0, 10, PER_BATCH)],
        b"filenames": [b"x.png"] * PER_BATCH,
    }


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def _tarball(path: Path, extra: dict[str, bytes] | None = None) -> dict[str, dict]:
    batches = {name: _batch(i) for i, name in enumerate([*cifar10.TRAIN_BATCHES, "test_batch"])}
    with tarfile.open(path, "w:gz") as tar:
        for name, batch in batches.items():
            _add(tar, f"cifar-10-batches-py/{name}", pickle.dumps(batch, protocol=2))
        meta = {b"label_names": [c.encode() for c in cifar10.CLASSES]}
        _add(tar, "cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2))
        for name, payload in (extra or {}).items():
            _add(tar, name, payload)
    return batches


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    """A tiny tarball 'served' at a file:// URL, with the resource pointing at it."""
    tarball = tmp_path / "server" / "cifar-10-python.tar.gz"
    tarball.parent.mkdir()
    batches = _tarball(tarball)
    md5 = hashlib.md5(tarball.read_bytes()).hexdigest()
    res = dataclasses.replace(cifar10.RESOURCE, urls=(tarball.as_uri(),), md5=md5)
    monkeypatch.setattr(cifar10, "RESOURCE", res)
    return tarball, batches


def test_download_extract_and_read(tmp_path: Path, served) -> None:
    tarball, batches = served
    s = load_cifar10(tmp_path / "data")
    assert s.x_train.shape == (5 * PER_BATCH, 32, 32, 3) and s.x_train.dtype == np.uint8
    assert s.x_test.shape == (PER_BATCH, 32, 32, 3) and s.y_test.dtype == np.int64
    # NHWC: pixel (r, c) of channel k is data[k * 1024 + r * 32 + c].
    row = batches["data_batch_1"][b"data"][0]
    assert s.x_train[0, 2, 5, 1] == row[1024 + 2 * 32 + 5]
    assert s.y_train.tolist()[:PER_BATCH] == batches["data_batch_1"][b"labels"]
    tarball.unlink()  # offline now: the extracted copy must be enough
    again = load_cifar10(tmp_path / "data", download=False, dtype="float32")
    assert again.x_train.dtype == np.float32 and again.x_train.max() <= 1.0
    np.testing.assert_allclose(again.x_train * 255, s.x_train, atol=1e-4)
    leftovers = [p.name for p in (tmp_path / "data" / "cifar10").iterdir()]
    assert sorted(leftovers) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]


def test_checksum_failure(tmp_path: Path, served, monkeypatch: pytest.MonkeyPatch) -> None:
    res = dataclasses.replace(cifar10.RESOURCE, md5="0" * 32)
    monkeypatch.setattr(cifar10, "RESOURCE", res)
    with pytest.raises(ChecksumError, match="Checksum mismatch"):
        load_cifar10(tmp_path / "data")
    assert not (tmp_path / "data" / "cifar10" / "cifar-10-batches-py").exists()


def test_offline_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_cifar10(tmp_path, download=False)
    assert "cifar-10-python.tar.gz" in str(info.value) and cifar10.URL in str(info.value)


def test_bad_dtype(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"argument `dtype`.*Received: dtype='int8'"):
        load_cifar10(tmp_path, dtype="int8")


def test_unsafe_member_refused(tmp_path: Path) -> None:
    tarball = tmp_path / "evil.tar.gz"
    _tarball(tarball, extra={"cifar-10-batches-py/../../evil.txt": b"x"})
    with pytest.raises(ValueError, match="Unsafe path"):
        cifar10.extract(tarball, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out" / "cifar-10-batches-py").exists()


def test_pickle_with_foreign_global_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    (tmp_path / "b").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(ValueError, match=r"forbidden global builtins\.print"):
        read_batch(tmp_path / "b")


def test_channel_normalisation() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 8, 8, 3)).astype(np.uint8)
    mean, std = channel_stats(x)
    assert mean.shape == std.shape == (3,)
    z = normalize_channels(x, mean, std)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 1, 2)), 1.0, atol=1e-5)


def test_zca_whitens() -> None:
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(4, 4))
    x = (rng.normal(size=(5000, 4)) @ mix).reshape(5000, 2, 2, 1)
    mean, matrix = fit_zca(x, epsilon=1e-9)
    w = apply_zca(x, mean, matrix)
    assert w.shape == x.shape
    np.testing.assert_allclose(np.cov(w.reshape(5000, 4), rowvar=False), np.eye(4), atol=1e-3)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-10)  # ZCA: the symmetric whitening


def test_reads_numpy1_pickles(tmp_path: Path) -> None:
    # The official batches were pickled by NumPy 1, which names ``numpy.core.multiarray``.
    batch = _batch(0)
    payload = pickle.dumps(batch, protocol=2).replace(b"numpy._core", b"numpy.core")
    assert b"numpy.core.multiarray" in payload
    (tmp_path / "b").write_bytes(payload)
    x, y = read_batch(tmp_path / "b")
    assert x.shape == (PER_BATCH, 32, 32, 3) and y.tolist() == batch[b"labels"]
