"""Framework adapters. Importing this package imports no framework.

Import a leaf module on purpose (``from idrop.backends.torch import InfoDropout``);
attribute access (``idrop.backends.torch``) imports it lazily (PEP 562).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: The one list of backends: the CLI, the experiments, the distributed helpers, the benchmarks
#: and the conformance suite all derive theirs from it. ``keras`` is Keras 3 on whichever
#: backend Keras runs (:data:`KERAS_BACKENDS`, fixed when Keras is imported: ``KERAS_BACKEND``);
#: ``tensorflow`` is the same Keras layer with TensorFlow's kernels, plus TensorFlow's own tools.
BACKENDS = ("torch", "tensorflow", "jax", "keras")

#: The backends Keras 3 runs ``idrop.backends.keras`` on; reports name them ``keras[<backend>]``.
KERAS_BACKENDS = ("tensorflow", "jax", "torch")

#: The pip extra that installs each backend's framework.
EXTRAS = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax", "keras": "keras"}


def keras_label(keras_backend: str) -> str:
    """``keras[jax]``: how reports and ``IDROP_REQUIRE_BACKENDS`` name the Keras adapter on one Keras backend."""
    return f"keras[{keras_backend}]"


def missing_framework(backend: str, framework: str) -> ImportError:
    """The ImportError an adapter raises when its framework is not installed."""
    return ImportError(
        f"idrop.backends.{backend} requires {framework}; install it with: pip install 'idrop[{EXTRAS[backend]}]'"
    )


def __getattr__(name: str) -> ModuleType:
    if name in BACKENDS:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BACKENDS", "EXTRAS", "KERAS_BACKENDS", "keras_label", "missing_framework"]
