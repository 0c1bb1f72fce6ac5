"""Fixtures of the conformance suite: one parameter per backend, Hypothesis profiles, header.

Profiles (``IDROP_HYPOTHESIS_PROFILE``, default ``ci``): ``ci`` is derandomised
with no example database and no deadline, so a CI failure reproduces exactly
(TFP's ``tfp_hp_settings``); ``thorough`` runs 1000 examples per test, for
calibrating tolerance overrides (STYLE.md 4.7); ``ci-light`` (6 examples, derandomised) is
what this repository's CI gives the Keras adapter on its second and third Keras backends
(``tests/backends/test_keras_conformance.py``), whose numerics are the ``keras`` parameter's, already
run with ``ci`` in the main process.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from idrop.conformance import _backends
from idrop.conformance._backends import Backend

_COMMON = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
}
settings.register_profile("ci", max_examples=15, **_COMMON)
settings.register_profile("ci-light", max_examples=6, **_COMMON)
settings.register_profile("thorough", max_examples=1000, **_COMMON)
settings.register_profile("dev", max_examples=50, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("IDROP_HYPOTHESIS_PROFILE", "ci"))

# Before anything is collected: a typo in IDROP_REQUIRE_BACKENDS ("tensorfow") would otherwise
# pass unnoticed wherever every framework is installed, since the list is only read for a missing one.
try:
    _backends.check_environment()
except ValueError as err:
    raise pytest.UsageError(str(err)) from None


def _param(backend: Backend) -> object:
    return pytest.param(backend, id=backend.value)


@pytest.fixture(params=[_param(b) for b in _backends.selected()], scope="session")
def harness(request: pytest.FixtureRequest) -> object:
    """The harness of one backend; a missing backend skips by name, or fails if required."""
    backend: Backend = request.param
    name = _backends.label(backend)
    try:
        return _backends.load(backend)
    except ImportError as err:
        if _backends.is_required(backend):
            pytest.fail(f"backend {name!r} is required (IDROP_REQUIRE_BACKENDS) but missing: {err}")
        pytest.skip(f"backend {name!r} is not installed ({err})")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a Keras child run (:mod:`._keras_runs`) only the backend's tests: the others ran in the parent."""
    from idrop.conformance._keras_runs import CHILD_VAR

    if os.environ.get(CHILD_VAR) != "1":
        return
    keep = [item for item in items if "harness" in getattr(item, "fixturenames", ())]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


def pytest_report_header(config: pytest.Config) -> list[str]:
    import importlib.metadata as md

    lines = []
    for backend in _backends.selected():
        dist = _backends.keras_backend() if backend is Backend.KERAS else _backends.FRAMEWORK_MODULE[backend]
        try:
            version = md.version(dist)
        except md.PackageNotFoundError:
            try:
                version = md.version(dist + "-cpu")
            except md.PackageNotFoundError:
                version = "not installed"
        lines.append(f"idrop conformance: {_backends.label(backend)} {version}")
    lines.append(f"idrop conformance: hypothesis profile {settings.get_current_profile_name()}")
    return lines
