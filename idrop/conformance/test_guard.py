"""Guard tests (torch's ``test_has_examples``): nothing in the core escapes the suite."""

from __future__ import annotations

from idrop.core import KL_REGISTRY, NOISE_LAWS
from idrop.core.priors import (
    GaussianPosterior,
    LogNormalPosterior,
    LogNormalPrior,
    LogUniformPrior,
    StandardNormalPrior,
)
from idrop.core.spec import PRIORS

from ._cases import CASES, GAUSSIAN_KL_CASES, NOISE_CASES

_PRIOR_NAME = {LogUniformPrior: "log-uniform", LogNormalPrior: "log-normal"}


def test_every_noise_law_has_cases():
    covered = {c.law for c in CASES} | {c.law for c in NOISE_CASES}
    missing = set(NOISE_LAWS) - covered
    assert not missing, f"noise laws without conformance cases: {sorted(missing)}; add them to _cases.py"


def test_every_prior_has_cases():
    covered = {c.prior for c in CASES}
    assert set(PRIORS) <= covered, f"priors without cases: {sorted(set(PRIORS) - covered)}"


def test_every_kl_pair_has_cases():
    for posterior, prior in KL_REGISTRY:
        if posterior is LogNormalPosterior:
            assert _PRIOR_NAME[prior] in {c.prior for c in CASES}, (posterior, prior)
            assert any(c.options.get("mean_one") and c.prior == _PRIOR_NAME[prior] for c in CASES), (
                f"mean-one form of {prior.__name__} has no case"
            )
        elif (posterior, prior) == (GaussianPosterior, StandardNormalPrior):
            assert "gaussian-standardnormal" in GAUSSIAN_KL_CASES
        else:
            raise AssertionError(f"KL pair {(posterior.__name__, prior.__name__)} has no conformance cases")


def test_zero_unit_rules_have_cases():
    assert {c.options.get("zero_units", "count") for c in CASES} == {"count", "mask"}
