"""The reference against closed forms, SciPy, quadrature and Monte Carlo (STYLE.md 3.2, tier 1)."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from idrop.core import NOISE_LAWS, reference
from idrop.core.kl import LOG_FLOOR

RNG = np.random.default_rng(20161103)


def test_alpha_range_and_value():
    a = np.array([-50.0, 0.0, 50.0])
    alpha = reference.alpha(a)
    np.testing.assert_allclose(alpha, [1e-3, 1e-3 + 0.35, 0.701], rtol=1e-12)
    assert np.isfinite(reference.alpha(np.array([-1e4, 1e4]))).all()


def test_noise_forms():
    f, a, eps = np.array([[2.0]]), np.array([[0.0]]), np.array([[0.3]])
    alpha = 1e-3 + 0.35
    z, _ = reference.info_dropout(f, a, noise=eps)
    np.testing.assert_allclose(z, 2.0 * math.exp(alpha * 0.3), rtol=1e-15)
    z1, _ = reference.info_dropout(f, a, noise=eps, mean_one=True)
    np.testing.assert_allclose(z1, 2.0 * math.exp(alpha * 0.3 - alpha**2 / 2), rtol=1e-15)
    z_eval, _ = reference.info_dropout(f, a, training=False)
    assert z_eval is not None and np.array_equal(z_eval, f)


@pytest.mark.parametrize("alpha", [0.05, 0.35, 0.7])
def test_mean_one_form_has_mean_one_by_quadrature(alpha):
    law = NOISE_LAWS["information"]
    mean, _ = integrate.quad(
        lambda e: law.apply(1.0, alpha, np.float64(e), mean_one=True, xp=np) * stats.norm.pdf(e), -40, 40
    )
    assert mean == pytest.approx(1.0, abs=1e-10)
    median = law.apply(1.0, alpha, np.float64(0.0), mean_one=False, xp=np)
    assert median == 1.0


def test_loguniform_kl_is_zero_at_the_cap_and_masks_zero_units():
    f = np.array([[0.0, 1.0]])
    _, kl = reference.info_dropout(f, np.array([[60.0, 60.0]]), training=False)
    np.testing.assert_allclose(kl, 0.0, atol=1e-12)  # alpha reaches max_alpha + alpha_min
    _, kl = reference.info_dropout(f, np.array([[0.0, 0.0]]), training=False, zero_units="mask")
    assert kl[0, 0] == 0.0 and kl[0, 1] == pytest.approx(math.log(0.701 / 0.351))


def test_loguniform_kl_is_entropy_difference():
    """KL(logN(log f, a^2) || log-uniform) = -H(N(0, a^2)) + const: differences match."""
    a1, a2 = 0.2, 0.5
    lo = 1e-3  # alpha = lo + 0.7 * sigmoid(logit); alpha_min = 0 is refused (infinite KL)
    s1, s2 = (a1 - lo) / 0.7, (a2 - lo) / 0.7
    kl = reference.info_dropout(
        np.ones((1, 2)), np.log(np.array([[s1, s2]]) / (1 - np.array([[s1, s2]]))), training=False, alpha_min=lo
    )[1]
    h = stats.norm(scale=a2).entropy() - stats.norm(scale=a1).entropy()
    assert kl[0, 0] - kl[0, 1] == pytest.approx(h, rel=1e-12)


@pytest.mark.parametrize("mean_one", [False, True])
def test_lognormal_prior_kl_matches_scipy_monte_carlo(mean_one):
    f, logit, mu, sigma = 1.7, 0.4, 0.3, 1.4
    _, kl = reference.info_dropout(
        [[f]], [[logit]], activation="softplus", mu=mu, sigma=sigma, training=False, mean_one=mean_one
    )
    alpha = float(reference.alpha(logit))
    loc = math.log(f) - (alpha**2 / 2 if mean_one else 0.0)
    # Closed form via SciPy's entropy and cross-entropy of normals, on log z.
    s = stats.norm(loc, alpha).rvs(size=400_000, random_state=RNG)
    mc = np.mean(stats.norm(loc, alpha).logpdf(s) - stats.norm(mu, sigma).logpdf(s))
    assert kl[0, 0] == pytest.approx(mc, abs=5e-3)
    assert kl[0, 0] >= 0


def test_lognormal_prior_floors_f():
    _, kl0 = reference.info_dropout([[0.0]], [[0.0]], activation="softplus", training=False)
    _, kl1 = reference.info_dropout([[LOG_FLOOR]], [[0.0]], activation="softplus", training=False)
    assert np.isfinite(kl0).all() and kl0 == pytest.approx(kl1)


def test_gaussian_kl_closed_form_and_monte_carlo():
    mu, s = np.array([0.0, 1.0, -0.5]), np.array([1.0, 2.0, 1 + 1e-9])
    np.testing.assert_allclose(reference.gaussian_kl(mu, s), 0.5 * (mu**2 + s**2 - 1) - np.log(s), atol=1e-15)
    x = stats.norm(1.0, 2.0).rvs(size=400_000, random_state=RNG)
    mc = np.mean(stats.norm(1.0, 2.0).logpdf(x) - stats.norm.logpdf(x))
    assert reference.gaussian_kl(1.0, 2.0) == pytest.approx(mc, abs=1e-2)
    # expm1 keeps precision at s ~ 1 where 0.5*(s^2-1) - log(s) cancels.
    assert reference.gaussian_kl(0.0, 1 + 1e-9) == pytest.approx(1e-18, rel=1e-3)


def test_baseline_laws_have_mean_one():
    f = np.ones(400_000)
    u, e = RNG.random(f.shape), RNG.standard_normal(f.shape)
    assert reference.apply_noise("binary", f, u, rate=0.5).mean() == pytest.approx(1.0, abs=1e-2)
    assert reference.apply_noise("gaussian", f, e, rate=0.5).mean() == pytest.approx(1.0, abs=1e-2)
    z = reference.apply_noise("lognormal", f, e, alpha=0.5, mean_one=True)
    assert z.mean() == pytest.approx(1.0, abs=1e-2)
    assert reference.apply_noise("gaussian", f, e, rate=0.5).std() == pytest.approx(1.0, abs=1e-2)


def test_reference_conv_matches_a_direct_loop():
    x, w, b = RNG.standard_normal((1, 2, 5, 5)), RNG.standard_normal((3, 2, 3, 3)), RNG.standard_normal(3)
    y = reference.conv2d(x, w, b, stride=2, padding=1)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for o in range(3):
        for i in range(3):
            for j in range(3):
                want = (xp[0, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * w[o]).sum() + b[o]
                assert y[0, o, i, j] == pytest.approx(want, rel=1e-12)
