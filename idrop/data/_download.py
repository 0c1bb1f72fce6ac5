"""Where data lives, and how it gets there: resolve, download, verify, cache.

The data directory is, in order of precedence, the ``data_dir`` argument (the
``--data-dir`` flag of the experiment scripts), the ``IDROP_DATA_DIR`` environment
variable, then ``~/.cache/idrop``. A file is looked up both in that directory and in
its ``<dataset>/`` sub-folder, so a folder holding the files directly (such as a
shared read-only copy) works as well as the cache layout; downloads go to the
sub-folder.

Downloads stream to a temporary file in the destination folder and are renamed into
place only once the checksum matches, so an interrupted download never leaves a
file that looks complete.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ._errors import ChecksumError, DataNotFoundError

ENV_VAR = "IDROP_DATA_DIR"
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Resource:
    """A published data file: its name, mirrors and checksums.

    Attributes:
        filename: File name in the data directory.
        urls: Full URLs of the mirrors, tried in order.
        md5: MD5 of the file as published (the compressed archive), or None.
        sha256: SHA-256 of the file as published, or None.
        content_md5: MD5 of the gunzipped content, or None. A re-compressed copy
            (different gzip bytes, same data) is accepted when this matches.
    """

    filename: str
    urls: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None
    content_md5: str | None = None


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the data directory: argument, then ``$IDROP_DATA_DIR``, then the cache.

    Example:
        >>> str(resolve_data_dir("/tmp/somewhere"))
        '/tmp/somewhere'
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "idrop"


def check_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory, which must be an existing folder when it was chosen.

    A folder given as ``data_dir`` (the ``--data-dir`` flag) or ``$IDROP_DATA_DIR`` that
    does not exist is a typo; treating it as empty would silently train on other data.
    The default cache folder may be missing: nothing has been cached yet.

    Raises:
        DataNotFoundError: The chosen folder does not exist or is a file.
    """
    root = resolve_data_dir(data_dir)
    if data_dir is None and not os.environ.get(ENV_VAR):
        return root
    if not root.is_dir():
        origin = "--data-dir / data_dir" if data_dir is not None else f"${ENV_VAR}"
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataNotFoundError(
            f"data directory {root} (from {origin}) {what}. Point it at the folder that holds "
            "the dataset files, or download into it (`idrop reproduce ... --download`)."
        )
    return root


def search_dirs(dataset: str, data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Folders searched for a dataset's files: the data dir and its sub-folder."""
    root = resolve_data_dir(data_dir)
    return [root, root / dataset]


def file_digest(path: str | os.PathLike[str], algorithm: str = "md5", *, gunzip: bool = False) -> str:
    """Hex digest of a file, or of its gunzipped content when ``gunzip`` is True."""
    digest = hashlib.new(algorithm)
    opener = gzip.open if gunzip else open
    with opener(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: str | os.PathLike[str], resource: Resource) -> None:
    """Raise :class:`ChecksumError` unless ``path`` matches one of ``resource``'s checksums.

    A resource with no checksum at all is accepted as is.
    """
    checks = []
    if resource.md5:
        checks.append(("md5", resource.md5, False))
    if resource.sha256:
        checks.append(("sha256", resource.sha256, False))
    if resource.content_md5:
        checks.append(("md5", resource.content_md5, True))
    if not checks:
        return
    seen = []
    for algorithm, expected, gunzip in checks:
        try:
            actual = file_digest(path, algorithm, gunzip=gunzip)
        except (OSError, EOFError):  # not gzip, or truncated: that check fails
            actual = "unreadable"
        if actual == expected.lower():
            return
        what = f"{algorithm} of gunzipped content" if gunzip else algorithm
        seen.append(f"{what} {actual} (expected {expected})")
    raise ChecksumError(
        f"Checksum mismatch for {path}: " + "; ".join(seen) + ". The file is corrupt or "
        "incomplete; delete it and download it again."
    )


def download_url(
    url: str,
    dest: str | os.PathLike[str],
    *,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying the checksums if given.

    If ``dest`` already exists and matches the checksums, nothing is downloaded:
    this is the cache. Any URL scheme urllib knows works, ``file://`` included.

    Raises:
        ChecksumError: The downloaded bytes do not match; ``dest`` is left untouched.
        urllib.error.URLError: The URL cannot be reached.
    """
    dest = Path(dest)
    resource = Resource(dest.name, (url,), md5=md5, sha256=sha256)
    if dest.is_file():
        try:
            verify(dest, resource)
            return dest
        except ChecksumError:
            pass  # a stale or partial copy: fetch a fresh one over it
    dest.parent.mkdir(parents=True, exist_ok=True)
    hashes = {name: hashlib.new(name) for name, v in (("md5", md5), ("sha256", sha256)) if v}
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as src:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
                for h in hashes.values():
                    h.update(chunk)
            out.flush()
            os.fsync(out.fileno())
        for name, expected in (("md5", md5), ("sha256", sha256)):
            if expected and hashes[name].hexdigest() != expected.lower():
                raise ChecksumError(
                    f"Checksum mismatch for {url}: {name} {hashes[name].hexdigest()} "
                    f"(expected {expected}). The download is corrupt; nothing was saved."
                )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def find_file(resource: Resource, dirs: Sequence[Path]) -> Path | None:
    """First ``dirs / resource.filename`` that exists, or None."""
    for folder in dirs:
        candidate = folder / resource.filename
        if candidate.is_file():
            return candidate
    return None


def fetch(
    resource: Resource,
    dataset: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
) -> Path:
    """Return a verified local copy of ``resource``, downloading it if allowed.

    Raises:
        DataNotFoundError: A ``FileNotFoundError``: the file is not cached and cannot be
            downloaded (offline, or ``download=False``). The message names the file,
            where to put it and the URLs to get it from.
        ChecksumError: A cached copy is corrupt and ``download=False``, or every
            mirror served bytes that fail the checksum.
    """
    dirs = search_dirs(dataset, data_dir)
    found = find_file(resource, dirs)
    if found is not None:
        try:
            verify(found, resource)
            return found
        except ChecksumError:
            if not download:
                raise
    target = dirs[-1] / resource.filename
    errors: list[Exception] = []
    if download:
        for url in resource.urls:
            try:
                return download_url(url, target, md5=resource.md5, sha256=resource.sha256)
            except (OSError, ValueError, ChecksumError) as err:  # URLError is an OSError
                errors.append(err)
    where = " or ".join(str(d) for d in dirs)
    why = "download=False" if not download else "download failed: " + "; ".join(map(str, errors))
    message = (
        f"{dataset} file `{resource.filename}` is not in {where} ({why}). Download it from "
        f"{' or '.join(resource.urls)} on a machine with network access and put it in "
        f"{dirs[-1]}, or point `data_dir` / ${ENV_VAR} at a folder that holds it."
    )
    if errors and all(isinstance(e, ChecksumError) for e in errors):
        raise ChecksumError(message)  # reachable, but every mirror served bad bytes
    raise DataNotFoundError(message)
