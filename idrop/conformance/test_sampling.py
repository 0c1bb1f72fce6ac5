"""Each backend's own noise passes a goodness-of-fit test against its law.

RNG streams differ across frameworks by design (STYLE.md 3.1), so sampling is
checked per backend by statistics, at a fixed seed. Each test has a false-alarm
rate of ``ALPHA`` under the null hypothesis that the backend draws the right law;
at a fixed seed the outcome is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from idrop.core import reference

from . import _drive
from ._cases import NOISE_CASES
from ._report import record

ALPHA = 1e-3  # false-alarm rate of each goodness-of-fit test
N = 20_000
SEED = 1234


@pytest.mark.parametrize("mean_one", [False, True], ids=["median-one", "mean-one"])
@pytest.mark.parametrize("alpha_logits", [-1.0, 0.5, 3.0])
def test_information_noise_is_lognormal(harness, alpha_logits, mean_one):
    """log(z) / alpha is N(0, 1) (shifted by -alpha/2 in the mean-1 form): Kolmogorov-Smirnov."""
    record(harness.name, "sampling/information")
    z = _drive.sample(
        harness,
        "information",
        (N,),
        seed=SEED,
        alpha_logits=alpha_logits,
        max_alpha=0.7,
        alpha_min=1e-3,
        mean_one=mean_one,
    )
    alpha = float(reference.alpha(alpha_logits))
    shift = -0.5 * alpha**2 if mean_one else 0.0
    result = stats.kstest((np.log(z) - shift) / alpha, "norm")
    assert result.pvalue > ALPHA, (result, alpha)


def test_information_noise_differs_between_seeds_and_units(harness):
    """Different seeds give different draws; units within a draw are not all equal."""
    a = _drive.sample(
        harness, "information", (64,), seed=1, alpha_logits=0.0, max_alpha=0.7, alpha_min=1e-3, mean_one=False
    )
    b = _drive.sample(
        harness, "information", (64,), seed=2, alpha_logits=0.0, max_alpha=0.7, alpha_min=1e-3, mean_one=False
    )
    same = _drive.sample(
        harness, "information", (64,), seed=1, alpha_logits=0.0, max_alpha=0.7, alpha_min=1e-3, mean_one=False
    )
    record(harness.name, "sampling/seeds")
    assert not np.allclose(a, b) and np.unique(a).size > 32
    np.testing.assert_array_equal(a, same)


@pytest.mark.parametrize("case", NOISE_CASES, ids=lambda c: c.name)
def test_baseline_noise_law(harness, case):
    """Binary: keep rate is binomial and kept units equal 1/(1-rate); Gaussian and log-normal: KS."""
    record(harness.name, f"sampling/{case.name}")
    z = _drive.sample(harness, case.law, (N,), seed=SEED, **case.params)
    if case.law == "binary":
        rate = case.params["rate"]
        kept = z != 0
        np.testing.assert_allclose(z[kept], 1.0 / (1.0 - rate), rtol=1e-6)
        assert stats.binomtest(int(kept.sum()), N, 1.0 - rate).pvalue > ALPHA
    elif case.law == "gaussian":
        rate = case.params["rate"]
        assert stats.kstest((z - 1.0) / np.sqrt(rate / (1.0 - rate)), "norm").pvalue > ALPHA
    else:
        alpha = case.params["alpha"]
        shift = -0.5 * alpha**2 if case.params.get("mean_one") else 0.0
        assert stats.kstest((np.log(z) - shift) / alpha, "norm").pvalue > ALPHA
