"""Framework adapters. Importing this package imports no framework.

Import a leaf module on purpose (``from idrop.backends.torch import InfoDropout``);
attribute access (``idrop.backends.torch``) imports it lazily (PEP 562).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: The one list of backends: the CLI, the experiments, the distributed helpers, the benchmarks
#: and the conformance suite all derive theirs from it.
BACKENDS = ("torch", "tensorflow", "jax")

#: The pip extra that installs each backend's framework.
EXTRAS = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}


def missing_framework(backend: str, framework: str) -> ImportError:
    """The ImportError an adapter raises when its framework is not installed."""
    return ImportError(
        f"idrop.backends.{backend} requires {framework}; install it with: pip install 'idrop[{EXTRAS[backend]}]'"
    )


def __getattr__(name: str) -> ModuleType:
    if name in BACKENDS:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BACKENDS", "EXTRAS", "missing_framework"]
