"""Bookkeeping for the summary table and for reproducible failures."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

from ._tolerances import Tol

#: (backend, case) -> number of Hypothesis examples (or fixed checks) run.
EXAMPLES: collections.Counter[tuple[str, str]] = collections.Counter()


def record(backend: str, case: str) -> None:
    """Count one example of ``case`` run against ``backend``."""
    EXAMPLES[(backend, case)] += 1


def repro(call: str, **arrays: Any) -> str:
    """A snippet that reruns a failing example by hand (array-api-tests' ``add_note``)."""
    lines = ["# reproduce:", "import numpy as np", "from idrop.conformance._backends import Backend, load"]
    for name, value in arrays.items():
        value = np.asarray(value).tolist() if isinstance(value, np.ndarray) else value
        lines.append(f"{name} = np.array({value!r})" if isinstance(value, list) else f"{name} = {value!r}")
    lines.append(call)
    return "\n".join(lines)


def assert_close(actual: np.ndarray, desired: np.ndarray, t: Tol, *, what: str, note: str = "") -> None:
    """Exact shape check, then ``assert_allclose`` in float64 with both tolerances."""
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    try:
        assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != {desired.shape}"
        np.testing.assert_allclose(actual, desired, rtol=t.rtol, atol=t.atol, err_msg=what)
    except AssertionError as err:
        if note:
            err.add_note(note)
        raise
