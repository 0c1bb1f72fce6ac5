"""Bookkeeping for the summary table and for reproducible failures."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

from ._harness import LayerWeights
from ._tolerances import Tol

#: (backend, case) -> number of Hypothesis examples (or fixed checks) run.
EXAMPLES: collections.Counter[tuple[str, str]] = collections.Counter()


def record(backend: str, case: str) -> None:
    """Count one example of ``case`` run against ``backend``."""
    EXAMPLES[(backend, case)] += 1


def _literal(value: Any) -> str:
    """Python source that rebuilds ``value`` exactly (floats by ``repr``, not numpy's 8 digits)."""
    if isinstance(value, np.ndarray):
        return f"np.array({value.tolist()!r})"
    if isinstance(value, LayerWeights):
        arrays = ", ".join(_literal(a) for a in (value.weight, value.bias, value.alpha_weight, value.alpha_bias))
        return f"LayerWeights({value.kind!r}, {arrays}, {value.stride}, {value.padding})"
    return repr(value)


def repro(backend: str, call: str, **arrays: Any) -> str:
    """A snippet that reruns a failing example by hand (array-api-tests' ``add_note``).

    ``call`` is a call of a driver of :mod:`idrop.conformance._drive` on the harness ``h``.
    """
    lines = [
        "# reproduce:",
        "import numpy as np",
        "from idrop.conformance import _drive",
        "from idrop.conformance._backends import Backend, load",
        "from idrop.conformance._harness import LayerWeights",
        f"h = load(Backend({backend!r}))",
    ]
    lines += [f"{name} = {_literal(value)}" for name, value in arrays.items()]
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
