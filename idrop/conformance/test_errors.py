"""Identical errors for identical bad input, in every backend, as the core raises them."""

from __future__ import annotations

import pytest

from idrop.core import InfoDropoutSpec, check_beta, check_n_train, check_same_shape
from idrop.core.spec import check_float_dtype

from ._report import record

BAD_OPTIONS = [
    {"max_alpha": 0},
    {"max_alpha": -0.5},
    {"max_alpha": "big"},
    {"alpha_min": -1},
    {"activation": "tanh"},
    {"prior": "gaussian"},
    {"zero_units": "drop"},
    {"mean_one": "yes"},
]


def _expected(fn, *args, **kwargs) -> BaseException:
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    return info.value


@pytest.mark.parametrize("kwargs", BAD_OPTIONS, ids=lambda k: ",".join(f"{a}={b!r}" for a, b in k.items()))
def test_bad_options(harness, kwargs):
    """Construction fails at once, with the core's exception class and message."""
    record(harness.name, "errors/options")
    want = _expected(InfoDropoutSpec, **kwargs)
    got = harness.construct_error(**kwargs)
    assert got is not None, f"{harness.name} accepted {kwargs}"
    assert (type(got), str(got)) == (type(want), str(want))


CALL_ERRORS = {
    "integer_input": lambda: check_float_dtype("x", "int32", False),
    "alpha_layer_shape": lambda: check_same_shape((2, 3), (2, 5)),
    "n_train": lambda: check_n_train(0),
    "beta": lambda: check_beta(-1.0),
}


@pytest.mark.parametrize("case", sorted(CALL_ERRORS))
def test_bad_calls(harness, case):
    """Bad input at call time: non-float x, a mismatched alpha_layer, n_train < 1, beta < 0."""
    record(harness.name, "errors/calls")
    want = _expected(CALL_ERRORS[case])
    got = harness.call_error(case)
    assert got is not None, f"{harness.name} accepted the bad call {case!r}"
    assert (type(got), str(got)) == (type(want), str(want))
