"""Identical errors for identical bad input, in every backend, as the core raises them.

One table (:mod:`idrop.conformance._bad_inputs`) of every public argument with the values a
hostile user passes; what each must do is what the core's own check does with the same value
(never a copied message). Fixed values run once each; large spaces (bounds, sizes, ``beta``)
also run under Hypothesis, drawn on both sides of the bound.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ._bad_actions import Fragment, Row, Skip
from ._bad_inputs import ROWS
from ._report import record

FIXED = [pytest.param(row, value, id=f"{row.name}-{value!r}") for row in ROWS for value in row.fixed]
SPACES = [pytest.param(row, id=row.name) for row in ROWS if row.space is not None]


def _all_finite(h: Any, result: tuple) -> None:
    import numpy as np

    for r in result:
        if r is not None:
            assert np.isfinite(h.to_numpy(r)).all(), h.to_numpy(r)


def _repro(h: Any, row: Row, value: Any) -> str:
    return (
        "# reproduce:\nimport numpy as np\nfrom idrop.conformance._backends import Backend, load\n"
        "from idrop.conformance._bad_inputs import ROWS\nfrom idrop.conformance._bad_actions import Arr\n"
        "from idrop.conformance._harness import Map\n"
        f"h = load(Backend({h.name!r}))\nrow = next(r for r in ROWS if r.name == {row.name!r})\n"
        f"row.action(h, {value!r})"
    )


def check_row(h: Any, row: Row, value: Any) -> None:
    """Run ``row`` with ``value`` against the harness ``h`` and compare with what the core does."""
    want = row.oracle(h, value)
    if isinstance(want, Skip):
        pytest.skip(want.reason)
    record(h.name, f"bad-input/{row.name}")
    where = f"{row.name} with {value!r} on {h.name}"
    note = _repro(h, row, value)
    try:
        result = row.action(h, value)
    except Exception as err:  # compared below with what the core raises
        got = err
    else:
        got = None
    if want is None:
        if got is not None:
            raise AssertionError(f"{where}: refused, but the core accepts it\n{note}") from got
        try:
            (row.check or _all_finite)(h, result)
        except AssertionError as err:
            err.add_note(f"{where}\n{note}")
            raise
    elif isinstance(want, Fragment):
        assert isinstance(got, want.exc) and want.text in str(got), (
            f"{where}: expected {want.exc.__name__} naming {want.text!r}, got {got!r}\n{note}"
        )
    else:
        assert got is not None, f"{where}: accepted; the core raises {type(want).__name__}: {want}\n{note}"
        assert (type(got), str(got)) == (type(want), str(want)), (
            f"{where}:\n  got  {type(got).__name__}: {got}\n  want {type(want).__name__}: {want}\n{note}"
        )


@pytest.mark.parametrize(("row", "value"), FIXED)
def test_fixed_value(harness, row, value):
    check_row(harness, row, value)


@pytest.mark.parametrize("row", SPACES)
@given(data=st.data())
def test_drawn_value(harness, row, data):
    check_row(harness, row, data.draw(row.space, label=row.name))
