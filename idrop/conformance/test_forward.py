"""Forward values: z, alpha and the per-unit and per-sample KL, against the reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from idrop.core import reference

from . import _drive
from ._cases import (
    CASES,
    GAUSSIAN_KL_CASES,
    NOISE_CASES,
    activations,
    arrays,
    logits,
    normals,
    prior_mu,
    prior_sigma,
    shapes,
)
from ._harness import DTYPES
from ._report import assert_close, record, repro
from ._rounding import noise_dtype, round_to
from ._tolerances import KL_DTYPE, tol

by_dtype = pytest.mark.parametrize("dtype", DTYPES)


def _supported(harness, dtype: str) -> None:
    if dtype not in harness.dtypes:
        pytest.skip(f"{harness.name} does not support {dtype} (declared in its harness)")


@by_dtype
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@given(data=st.data())
def test_info_dropout(harness, case, dtype, data):
    """z and the per-unit KL of the functional op, training and evaluation mode."""
    _supported(harness, dtype)
    shape = data.draw(shapes, label="shape")
    f = round_to(data.draw(activations(shape), label="f"), dtype)
    a = round_to(data.draw(logits(shape), label="alpha_logits"), dtype)
    eps = round_to(data.draw(normals(shape), label="noise"), noise_dtype(dtype))
    mu, sigma = data.draw(prior_mu, label="mu"), data.draw(prior_sigma, label="sigma")
    training = data.draw(st.booleans(), label="training")
    record(harness.name, f"forward/{case.name}/{dtype}")
    opts = {k: v for k, v in case.options.items() if k != "activation"}
    opts["prior"] = case.prior
    kw = {"mu": mu, "sigma": sigma} if case.prior == "log-normal" else {}
    z_ref, kl_ref = reference.info_dropout(f, a, noise=eps, training=training, **opts, **kw)
    out = _drive.info_dropout(harness, f, a, dtype=dtype, noise=eps, training=training, mu=mu, sigma=sigma, **opts)
    note = repro(
        harness.name,
        f"_drive.info_dropout(h, f, a, dtype={dtype!r}, noise=eps, training={training}, "
        f"mu={mu!r}, sigma={sigma!r}, **{opts!r})",
        f=f,
        a=a,
        eps=eps,
    )
    assert out.z_dtype == dtype, note
    assert out.kl_dtype == KL_DTYPE[dtype], note
    if not training:
        # Evaluation is exactly f(x): same values, no rounding, in every dtype.
        np.testing.assert_array_equal(out.z, f, err_msg=note)
    assert_close(out.z, z_ref, tol("elementwise", dtype), what="z", note=note)
    assert_close(out.kl, kl_ref, tol("elementwise", KL_DTYPE[dtype]), what="kl per unit", note=note)
    assert_close(
        reference.per_sample_kl(out.kl),
        reference.per_sample_kl(kl_ref),
        tol("reduction", dtype),
        what="kl per sample",
        note=note,
    )


@by_dtype
@given(data=st.data())
def test_alpha(harness, dtype, data):
    """alpha = alpha_min + max_alpha * sigmoid(a) over the whole bounded range of a."""
    _supported(harness, dtype)
    a = round_to(data.draw(logits(data.draw(shapes))), dtype)
    max_alpha = data.draw(st.sampled_from([0.5, 0.7, 1.0]))
    alpha_min = data.draw(st.sampled_from([1e-6, 1e-3, 1.0]))  # (0, 1]: 0 is refused (design notes, Bounds)
    record(harness.name, f"alpha/{dtype}")
    got = _drive.alpha(harness, a, dtype=dtype, max_alpha=max_alpha, alpha_min=alpha_min)
    assert_close(
        got,
        reference.alpha(a, max_alpha=max_alpha, alpha_min=alpha_min),
        tol("elementwise", dtype),
        what="alpha",
        note=repro(
            harness.name, f"_drive.alpha(h, a, dtype={dtype!r}, max_alpha={max_alpha}, alpha_min={alpha_min})", a=a
        ),
    )


@by_dtype
@pytest.mark.parametrize("case", NOISE_CASES, ids=lambda c: c.name)
@given(data=st.data())
def test_baseline_noise(harness, case, dtype, data):
    """Binary, Gaussian and constant log-normal dropout on injected raw draws."""
    _supported(harness, dtype)
    shape = data.draw(shapes)
    f = round_to(data.draw(activations(shape)), dtype)
    law = reference.noise.NOISE_LAWS[case.law]
    raw = data.draw(arrays(shape, 0.0, 0.999) if law.raw == "uniform" else normals(shape))
    raw = round_to(raw, noise_dtype(dtype))
    record(harness.name, f"noise/{case.name}/{dtype}")
    got = _drive.apply_noise(harness, case.law, f, raw, dtype=dtype, **case.params)
    want = reference.apply_noise(case.law, f, raw, **case.params)
    assert_close(
        got,
        want,
        tol("elementwise", dtype),
        what=case.name,
        note=repro(
            harness.name,
            f"_drive.apply_noise(h, {case.law!r}, f, raw, dtype={dtype!r}, **{case.params!r})",
            f=f,
            raw=raw,
        ),
    )


@by_dtype
@pytest.mark.parametrize("case", GAUSSIAN_KL_CASES)
@given(data=st.data())
def test_gaussian_kl(harness, case, dtype, data):
    """The VAE's KL(N(mu, s^2) || N(0, 1)), including s near 1 where expm1 matters."""
    _supported(harness, dtype)
    shape = data.draw(shapes)
    mu = round_to(data.draw(arrays(shape, -3.0, 3.0)), dtype)
    scale = round_to(data.draw(arrays(shape, 0.05, 3.0)), dtype)
    record(harness.name, f"gaussian-kl/{dtype}")
    out = _drive.gaussian_kl(harness, mu, scale, dtype=dtype)
    assert out.kl_dtype == KL_DTYPE[dtype]
    assert_close(
        out.kl,
        reference.gaussian_kl(mu, scale),
        tol("elementwise", KL_DTYPE[dtype]),
        what="gaussian kl",
        note=repro(harness.name, f"_drive.gaussian_kl(h, mu, scale, dtype={dtype!r})", mu=mu, scale=scale),
    )


def test_mean_one_is_mean_one(harness):
    """The mean-1 form has mean 1: sample mean within 5 standard errors (fixed seed)."""
    record(harness.name, "mean-one")
    n, alpha_logits = 200_000, 2.0
    z = _drive.sample(
        harness, "information", (n,), seed=11, alpha_logits=alpha_logits, max_alpha=0.7, alpha_min=1e-3, mean_one=True
    )
    alpha = float(reference.alpha(alpha_logits))
    std = np.sqrt(np.expm1(alpha**2))  # std of a mean-1 log-normal
    assert abs(z.mean() - 1.0) < 5 * std / np.sqrt(n), (z.mean(), std)
    median_one = _drive.sample(
        harness, "information", (n,), seed=11, alpha_logits=alpha_logits, max_alpha=0.7, alpha_min=1e-3, mean_one=False
    )
    assert abs(np.median(median_one) - 1.0) < 0.01
