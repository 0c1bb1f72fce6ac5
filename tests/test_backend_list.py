"""One list of backends: every entry point derives its own from ``idrop.backends.BACKENDS``."""

from __future__ import annotations

import sys
from pathlib import Path

import idrop.backends
from idrop import cli
from idrop.conformance._backends import Backend
from idrop.distributed import FRAMEWORKS
from idrop.experiments._common import SUPPORTED_BACKENDS

ROOT = Path(__file__).resolve().parent.parent


def test_every_list_is_the_backends_list():
    assert cli.BACKENDS is idrop.backends.BACKENDS
    assert SUPPORTED_BACKENDS is idrop.backends.BACKENDS
    assert FRAMEWORKS is idrop.backends.BACKENDS
    assert tuple(b.value for b in Backend) == idrop.backends.BACKENDS


def test_benchmarks_use_the_backends_list():
    if str(ROOT) not in sys.path:  # benchmarks/ is a folder of the repository, not of the package
        sys.path.insert(0, str(ROOT))
    import benchmarks.__main__ as bench

    assert bench.BACKENDS is idrop.backends.BACKENDS
