"""Which backends the suite knows, how to load their harness, and which are required.

The backends are :data:`idrop.backends.BACKENDS`, the one list every entry point
derives its own from. A backend whose framework is not installed is reported as
skipped by name, unless ``IDROP_REQUIRE_BACKENDS`` (comma-separated names, or
``all``) lists it: then its absence is a failure (CI sets it). ``IDROP_BACKENDS``
restricts the run to some backends. A name in either variable that is not a
backend (``tensorfow``) is an error at once, before any test runs: a typo must
not turn "required" into "silently not checked".
"""

from __future__ import annotations

import enum
import importlib
import os
from functools import cache

from idrop.backends import BACKENDS

#: A backend under test; its value is the name used in ``idrop.backends``.
Backend = enum.Enum("Backend", [(name.upper(), name) for name in BACKENDS], type=str, module=__name__)

#: The import that proves the framework is present, per backend.
FRAMEWORK_MODULE = {Backend(name): name for name in BACKENDS}

#: The environment variables the suite reads, each a list of backend names.
ENV_VARS = ("IDROP_BACKENDS", "IDROP_REQUIRE_BACKENDS")


def _names(var: str) -> set[str]:
    raw = os.environ.get(var, "").strip()
    if raw == "all":
        return set(BACKENDS)
    names = {n.strip() for n in raw.split(",") if n.strip()}
    unknown = names - set(BACKENDS)
    if unknown:
        raise ValueError(
            f"Invalid value received for environment variable `{var}`. Expected "
            f"comma-separated names among {list(BACKENDS)} or 'all'. "
            f"Received: {var}={raw!r} (unknown: {sorted(unknown)})"
        )
    return names


def check_environment() -> None:
    """Raise ``ValueError`` if ``IDROP_BACKENDS`` or ``IDROP_REQUIRE_BACKENDS`` names an unknown backend.

    Every entry point (the pytest plugin in ``conftest.py``, ``python -m idrop.conformance``)
    calls this first: ``required()`` alone is only read when a framework is missing, so a
    typo in it would otherwise pass unnoticed wherever every framework is installed.
    """
    for var in ENV_VARS:
        _names(var)


def required() -> set[str]:
    """Backends that must be present (``IDROP_REQUIRE_BACKENDS``)."""
    return _names("IDROP_REQUIRE_BACKENDS")


def selected() -> list[Backend]:
    """Backends to run (``IDROP_BACKENDS``, default all)."""
    names = _names("IDROP_BACKENDS")
    return [b for b in Backend if not names or b.value in names]


@cache
def load(backend: Backend) -> object:
    """The backend's harness, or raise ``ImportError`` if its framework is missing."""
    importlib.import_module(FRAMEWORK_MODULE[backend])
    if backend is Backend.JAX:
        # float64 comparisons need x64 on before any array exists (array-api-extra, SciPy).
        import jax

        jax.config.update("jax_enable_x64", True)
    if backend is Backend.TENSORFLOW:
        # Import torch first where both share a process (Keras' rule).
        try:
            importlib.import_module("torch")
        except ImportError:
            pass
    return importlib.import_module(f"idrop.conformance._harness_{backend.value}").HARNESS
