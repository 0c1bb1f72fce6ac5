"""The data layer's errors: each says which file or folder failed which check, and what to do.

They subclass the built-in errors the loaders raised before (``FileNotFoundError``,
``ValueError``, ``RuntimeError``), so existing ``except`` clauses still catch them, and
share :class:`DataError`, so the command line can print them as user errors rather than
tracebacks.
"""

from __future__ import annotations


class DataError(Exception):
    """A dataset is missing, unreadable or corrupt; the message names it and the fix."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A dataset file, or the chosen data directory, is not there."""


class CorruptFileError(DataError, ValueError):
    """A dataset file is there but fails a check: gzip stream, IDX header, size or columns."""


class ChecksumError(DataError, RuntimeError):
    """A file's content does not match its published checksum."""
