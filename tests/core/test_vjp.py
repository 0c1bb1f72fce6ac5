"""The closed-form backward pass against finite differences of the forward reference."""

import numpy as np
import pytest

from idrop.core import InfoDropoutSpec, functional
from idrop.core.vjp import info_dropout_vjp

RNG = np.random.default_rng(7)
H = 1e-6


def _loss(spec, f, a, eps, cz, ckl, mu, sigma, training):
    z, kl = functional.info_dropout(f, a, eps, spec=spec, mu=mu, sigma=sigma, training=training, xp=np)
    return z * cz + kl * ckl


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"zero_units": "mask"},
        {"mean_one": True},
        {"activation": "softplus"},
        {"activation": "softplus", "mean_one": True},
        {"max_alpha": 1.0, "alpha_min": 1e-6},
    ],
)
def test_vjp_matches_central_differences(options, training):
    spec = InfoDropoutSpec(**options)
    shape = (5, 7)
    f = RNG.uniform(0.05, 4.0, shape)
    f[0, :3] = 0.0  # zero units: mask and log floor
    a, eps = RNG.uniform(-6, 6, shape), RNG.standard_normal(shape)
    cz, ckl = RNG.standard_normal(shape), RNG.standard_normal(shape)
    mu, sigma = 0.3, 1.4
    g = info_dropout_vjp(f, a, eps, cz, ckl, spec=spec, mu=mu, sigma=sigma, training=training, xp=np)

    def loss(**kw):
        args = {"f": f, "a": a, "mu": mu, "sigma": sigma} | kw
        return _loss(spec, args["f"], args["a"], eps, cz, ckl, args["mu"], args["sigma"], training)

    hf = H * np.maximum(f, 1e-3)
    fd_f = (loss(f=f + hf) - loss(f=f - hf)) / (2 * hf)
    active = f > 0  # f = 0 sits on ReLU-side kinks (mask, floor); checked separately below
    np.testing.assert_allclose(g.f[active], fd_f[active], rtol=1e-6, atol=1e-8)
    fd_a = (loss(a=a + H) - loss(a=a - H)) / (2 * H)
    np.testing.assert_allclose(g.alpha_logits, fd_a, rtol=1e-6, atol=1e-8)
    if spec.prior == "log-normal":
        fd_mu = (loss(mu=mu + H).sum() - loss(mu=mu - H).sum()) / (2 * H)
        fd_sigma = (loss(sigma=sigma + H).sum() - loss(sigma=sigma - H).sum()) / (2 * H)
        assert g.mu.sum() == pytest.approx(fd_mu, rel=1e-6)
        assert g.sigma.sum() == pytest.approx(fd_sigma, rel=1e-6)
    else:
        assert g.mu is None and g.sigma is None


def test_zero_units_get_only_the_noise_gradient():
    spec = InfoDropoutSpec(activation="softplus")
    f, a, eps = np.zeros((1, 2)), np.zeros((1, 2)), np.ones((1, 2))
    g = info_dropout_vjp(f, a, eps, np.ones((1, 2)), np.ones((1, 2)), spec=spec, xp=np)
    alpha = 1e-3 + 0.35
    np.testing.assert_allclose(g.f, np.exp(alpha))  # the floor blocks the KL's 1/f term
