"""Errors of a reproduction that the user can fix: the command line prints them, no traceback.

Each message says what is wrong, with the path or run it concerns, and how to fix it.
``exit_code`` is the command's exit status: 2 for a usage or result-folder problem, 1 for
a run that failed on its own (its loss diverged).
"""

from __future__ import annotations


class ExperimentError(Exception):
    """A user-fixable problem with the options, the result folder or a run."""

    exit_code = 2


class ResultFolderError(ExperimentError, ValueError):
    """The result folder cannot be used: unwritable, locked, or its files are damaged or disagree."""


class RunDiverged(ExperimentError):
    """A run's training metrics became NaN or infinite; the run stops at that epoch."""

    exit_code = 1
