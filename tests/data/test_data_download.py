"""Data directory resolution, download, checksums, caching and offline errors."""

from __future__ import annotations

import gzip
import hashlib
import urllib.request
from pathlib import Path

import pytest

from idrop.data import _download
from idrop.data._download import (
    ChecksumError,
    Resource,
    download_url,
    fetch,
    resolve_data_dir,
    verify,
)

SHARED_MNIST = Path("/work/shared/data/mnist")


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, bytes]:
    data = b"idrop test payload\n" * 100
    path = tmp_path / "remote" / "payload.bin"
    path.parent.mkdir()
    path.write_bytes(data)
    return path, data


@pytest.fixture
def count_urlopen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = urllib.request.urlopen

    def counting(url: str, *args: object, **kwargs: object) -> object:
        calls.append(url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", counting)
    return calls


def test_data_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("IDROP_DATA_DIR", raising=False)
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "idrop"
    monkeypatch.setenv("IDROP_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"


def test_download_file_url_and_cache(source, count_urlopen, tmp_path: Path) -> None:
    path, data = source
    dest = tmp_path / "cache" / "payload.bin"
    out = download_url(path.as_uri(), dest, md5=_md5(data))
    assert out == dest and dest.read_bytes() == data
    assert len(count_urlopen) == 1
    path.unlink()  # the "server" is gone: a second call must be served from the cache
    assert download_url(path.as_uri(), dest, md5=_md5(data)) == dest
    assert len(count_urlopen) == 1
    assert sorted(p.name for p in dest.parent.iterdir()) == ["payload.bin"]  # no temp files


def test_download_checksum_mismatch_leaves_nothing(source, tmp_path: Path) -> None:
    path, _ = source
    dest = tmp_path / "cache" / "payload.bin"
    with pytest.raises(ChecksumError, match="md5"):
        download_url(path.as_uri(), dest, md5="0" * 32)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_download_replaces_corrupt_cached_copy(source, count_urlopen, tmp_path: Path) -> None:
    path, data = source
    dest = tmp_path / "payload.bin"
    dest.write_bytes(b"truncated")
    download_url(path.as_uri(), dest, sha256=hashlib.sha256(data).hexdigest())
    assert dest.read_bytes() == data and len(count_urlopen) == 1


def test_fetch_offline_error_names_file_place_and_url(tmp_path: Path) -> None:
    missing = (tmp_path / "nowhere" / "f.gz").as_uri()
    res = Resource("f.gz", (missing,), md5="0" * 32)
    with pytest.raises(FileNotFoundError) as info:
        fetch(res, "toy", tmp_path / "data")
    message = str(info.value)
    assert "`f.gz`" in message and missing in message
    assert str(tmp_path / "data" / "toy") in message and "IDROP_DATA_DIR" in message
    with pytest.raises(FileNotFoundError, match="download=False"):
        fetch(res, "toy", tmp_path / "data", download=False)


def test_fetch_every_mirror_bad_bytes_is_checksum_error(source, tmp_path: Path) -> None:
    path, _ = source
    res = Resource("payload.bin", (path.as_uri(), path.as_uri()), md5="0" * 32)
    with pytest.raises(ChecksumError):
        fetch(res, "toy", tmp_path)


def test_fetch_falls_back_to_second_mirror(source, tmp_path: Path) -> None:
    path, data = source
    bad = (tmp_path / "missing.bin").as_uri()
    res = Resource("payload.bin", (bad, path.as_uri()), md5=_md5(data))
    assert fetch(res, "toy", tmp_path / "d") == tmp_path / "d" / "toy" / "payload.bin"


@pytest.mark.parametrize("sub", ["", "toy"])
def test_fetch_finds_file_in_root_or_subfolder(tmp_path: Path, sub: str) -> None:
    data = b"abc"
    (tmp_path / sub).mkdir(exist_ok=True)
    (tmp_path / sub / "f.bin").write_bytes(data)
    res = Resource("f.bin", ("file:///nonexistent/f.bin",), md5=_md5(data))
    assert fetch(res, "toy", tmp_path, download=False) == tmp_path / sub / "f.bin"


def test_fetch_corrupt_cached_copy_without_download(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"bad")
    res = Resource("f.bin", ("file:///nonexistent/f.bin",), md5=_md5(b"good"))
    with pytest.raises(ChecksumError, match="corrupt"):
        fetch(res, "toy", tmp_path, download=False)


def test_verify_accepts_recompressed_content(tmp_path: Path) -> None:
    content = b"\x00\x00\x08\x01" + bytes(range(200))
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(content, compresslevel=1, mtime=0))
    res = Resource("x.gz", (), md5="f" * 32, content_md5=_md5(content))
    verify(path, res)  # archive md5 differs, content md5 matches
    with pytest.raises(ChecksumError):
        verify(path, Resource("x.gz", (), md5="f" * 32, content_md5="e" * 32))


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared offline MNIST copy not present")
def test_shared_test_files_verify_against_official_md5() -> None:
    from idrop.data.mnist import RESOURCES

    for key in ("test_images", "test_labels"):
        verify(SHARED_MNIST / RESOURCES[key].filename, RESOURCES[key])


def test_chunked_digest_matches_hashlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_download, "_CHUNK", 7)  # force several chunks
    data = bytes(range(256)) * 3
    (tmp_path / "f").write_bytes(data)
    assert _download.file_digest(tmp_path / "f") == _md5(data)
