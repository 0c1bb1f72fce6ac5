"""Which backends the suite knows, how to load their harness, and which are required.

The backends are :data:`idrop.backends.BACKENDS`, the one list every entry point
derives its own from. A backend whose framework is not installed is reported as
skipped by name, unless ``IDROP_REQUIRE_BACKENDS`` (comma-separated names, or
``all``) lists it: then its absence is a failure (CI sets it). ``IDROP_BACKENDS``
restricts the run to some backends. A name in either variable that is not a
backend (``tensorfow``) is an error at once, before any test runs: a typo must
not turn "required" into "silently not checked".

``keras`` is the Keras adapter on the Keras backend this process runs; Keras fixes it at
import, so each Keras backend runs the suite in its own process (:mod:`._keras_runs`) and
is named ``keras[tensorflow]``, ``keras[jax]``, ``keras[torch]``. In both variables ``keras``
means all three and ``keras[jax]`` one of them.
"""

from __future__ import annotations

import enum
import importlib
import os
import sys
from functools import cache

from idrop.backends import BACKENDS, KERAS_BACKENDS, keras_label

#: A backend under test; its value is the name used in ``idrop.backends``.
Backend = enum.Enum("Backend", [(name.upper(), name) for name in BACKENDS], type=str, module=__name__)

#: The import that proves the framework is present, per backend.
FRAMEWORK_MODULE = {Backend(name): name for name in BACKENDS}

#: The Keras adapter's names, one per Keras backend (``keras[jax]``).
KERAS_LABELS = tuple(keras_label(b) for b in KERAS_BACKENDS)

#: The environment variables the suite reads, each a list of backend names.
ENV_VARS = ("IDROP_BACKENDS", "IDROP_REQUIRE_BACKENDS")


def _names(var: str) -> set[str]:
    """The names in ``var``, with ``keras`` expanded to its three ``keras[<backend>]`` names."""
    raw = os.environ.get(var, "").strip()
    names = set(BACKENDS) if raw == "all" else {n.strip() for n in raw.split(",") if n.strip()}
    unknown = names - set(BACKENDS) - set(KERAS_LABELS)
    if unknown:
        raise ValueError(
            f"Invalid value received for environment variable `{var}`. Expected "
            f"comma-separated names among {[*BACKENDS, *KERAS_LABELS]} or 'all'. "
            f"Received: {var}={raw!r} (unknown: {sorted(unknown)})"
        )
    if "keras" in names:
        names |= set(KERAS_LABELS)
    return names


def check_environment() -> None:
    """Raise ``ValueError`` if ``IDROP_BACKENDS`` or ``IDROP_REQUIRE_BACKENDS`` names an unknown backend.

    Every entry point (the pytest plugin in ``conftest.py``, ``python -m idrop.conformance``)
    calls this first: ``required()`` alone is only read when a framework is missing, so a
    typo in it would otherwise pass unnoticed wherever every framework is installed.
    """
    for var in ENV_VARS:
        _names(var)


def keras_backend() -> str:
    """The Keras backend of this process: Keras's answer once imported, else ``KERAS_BACKEND`` (or tensorflow)."""
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def label(backend: Backend | str) -> str:
    """The report's name of a backend: ``keras[<keras backend>]`` for the Keras adapter, else its name."""
    name = getattr(backend, "value", backend)
    return keras_label(keras_backend()) if name == "keras" else name


def required() -> set[str]:
    """Names that must be present (``IDROP_REQUIRE_BACKENDS``), ``keras`` as ``keras[<backend>]`` names."""
    return _names("IDROP_REQUIRE_BACKENDS")


def is_required(backend: Backend) -> bool:
    return label(backend) in required()


def selected() -> list[Backend]:
    """Backends to run (``IDROP_BACKENDS``, default all); ``keras[<b>]`` selects ``keras`` where Keras runs ``b``."""
    names = _names("IDROP_BACKENDS")
    return [b for b in Backend if not names or b.value in names or label(b) in names]


def keras_selected() -> list[str]:
    """The Keras backends (``"jax"``) the run covers, in the order of :data:`idrop.backends.KERAS_BACKENDS`."""
    names = _names("IDROP_BACKENDS")
    return [b for b in KERAS_BACKENDS if not names or keras_label(b) in names]


@cache
def load(backend: Backend) -> object:
    """The backend's harness, or raise ``ImportError`` if its framework is missing."""
    if backend is Backend.KERAS:
        importlib.import_module(keras_backend())  # the Keras backend's framework must be present too
    uses_jax = backend is Backend.JAX or (backend is Backend.KERAS and keras_backend() == "jax")
    if uses_jax:
        # float64 comparisons need x64 on before any array exists (array-api-extra, SciPy).
        import jax

        jax.config.update("jax_enable_x64", True)
    importlib.import_module(FRAMEWORK_MODULE[backend])
    if backend is Backend.TENSORFLOW or (backend is Backend.KERAS and keras_backend() == "tensorflow"):
        # Import torch first where both share a process (Keras' rule).
        try:
            importlib.import_module("torch")
        except ImportError:
            pass
    return importlib.import_module(f"idrop.conformance._harness_{backend.value}").HARNESS
