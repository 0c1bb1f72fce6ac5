"""Gradients in float64 against 5-point central finite differences of the reference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from idrop.core import reference

from . import _drive
from ._cases import CASES, activations, logits, normals, prior_mu, prior_sigma, shapes
from ._layers import layer_problems, pre_activations, reference_layer
from ._report import assert_close, record, repro
from ._tolerances import tol

H = 1e-3


def stencil(g, h: float = H):
    """Fourth-order central difference of ``g(t)`` at ``t = 0``: O(h^4) truncation."""
    return (-g(2 * h) + 8 * g(h) - 8 * g(-h) + g(-2 * h)) / (12 * h)


def _grad_tol(harness) -> None:
    if "float64" not in harness.dtypes:
        pytest.fail(f"{harness.name} must support float64 gradients (DESIGN.md section 3)")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@given(data=st.data())
def test_functional_gradients(harness, case, data):
    """d/d(f, alpha_logits, mu, sigma) of sum(z * cz) + sum(kl * ckl)."""
    _grad_tol(harness)
    shape = data.draw(shapes)
    # f >= 0.01 keeps the finite differences away from the floor at 1e-4 and the mask at 0.
    f, a, eps = data.draw(activations(shape, positive=True)), data.draw(logits(shape)), data.draw(normals(shape))
    cz, ckl = data.draw(normals(shape)), data.draw(normals(shape))
    mu, sigma = data.draw(prior_mu), data.draw(prior_sigma)
    record(harness.name, f"grad/{case.name}")
    opts = {k: v for k, v in case.options.items() if k != "activation"}
    opts["prior"] = case.prior
    lognormal = case.prior == "log-normal"

    def loss(f_, a_, mu_=mu, sigma_=sigma):
        kw = {"mu": mu_, "sigma": sigma_} if lognormal else {}
        z, kl = reference.info_dropout(f_, a_, noise=eps, **opts, **kw)
        return z * cz + kl * ckl  # elementwise: unit i depends on f_i and a_i only

    # A relative step for f: log(f) has derivatives growing like f^-n near 0.01.
    want = {"f": stencil(lambda t: loss(f + t, a), H * f), "alpha_logits": stencil(lambda t: loss(f, a + t))}
    if lognormal:
        want["mu"] = stencil(lambda t: loss(f, a, mu_=mu + t).sum())
        want["sigma"] = stencil(lambda t: loss(f, a, sigma_=sigma + t).sum())
    got = _drive.info_dropout_grads(
        harness, f, a, noise=eps, mu=mu, sigma=sigma, z_cotangent=cz, kl_cotangent=ckl, **opts
    )
    note = repro(
        harness.name,
        f"_drive.info_dropout_grads(h, f, a, noise=eps, mu={mu!r}, sigma={sigma!r}, z_cotangent=cz, "
        f"kl_cotangent=ckl, **{opts!r})",
        f=f,
        a=a,
        eps=eps,
        cz=cz,
        ckl=ckl,
    )
    assert set(got) == set(want), note
    for name, value in want.items():
        assert_close(got[name], value, tol("gradient", "float64"), what=f"d/d{name}", note=note)


#: The cheap alpha branch changes only the map of the alpha logits: one case per prior covers it.
LOW_RANK_CASES = tuple(c for c in CASES if c.name in ("relu-loguniform", "softplus-lognormal"))


@pytest.mark.parametrize("kind", ["linear", "conv2d"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@given(data=st.data())
def test_layer_gradients(harness, case, kind, data):
    """d/d(x, weights, mu, sigma) of sum(z * cz) + sum(layer.kl), along random directions.

    Each gradient is projected on two random directions and compared with the
    finite difference of the reference along the same direction (a randomised
    gradcheck): any wrong component shows with probability one.
    """
    _check_layer_gradients(harness, case, kind, data, low_rank=False)


@pytest.mark.parametrize("kind", ["linear", "conv2d"])
@pytest.mark.parametrize("case", LOW_RANK_CASES, ids=lambda c: c.name)
@given(data=st.data())
def test_low_rank_layer_gradients(harness, case, kind, data):
    """The same for ``InfoDropout(alpha_rank=r)``: ``down``'s weight (``alpha_down``) and ``up``'s."""
    _check_layer_gradients(harness, case, kind, data, low_rank=True)


@pytest.mark.parametrize("case", LOW_RANK_CASES, ids=lambda c: c.name)
@given(data=st.data())
def test_recomputed_low_rank_layer_gradients(harness, case, data):
    """The same with ``recompute_alpha=True`` (``up`` and the kernel recomputed in backward), conv only:
    the memory option of the cheap branch changes no gradient."""
    _check_layer_gradients(harness, case, "conv2d", data, low_rank=True, build={"recompute_alpha": True})


def _check_layer_gradients(harness, case, kind, data, *, low_rank: bool, build: dict | None = None) -> None:
    """``build``: options for the backend's layer only (the reference has no such option)."""
    _grad_tol(harness)
    w, x = data.draw(layer_problems(kind, low_rank=low_rank))
    h, _ = pre_activations(w, x)
    opts = dict(case.options)
    lognormal = case.prior == "log-normal"
    # Keep every pre-activation clear of ReLU's kink (and the mask) by more than
    # the finite-difference step moves it.
    assume(case.options["activation"] == "softplus" or np.abs(h).min() > 5e-2)
    if lognormal:
        # ... and every activation clear of the log-normal KL's floor at 1e-4 (test_kinks.py checks
        # the kink itself): the step moves log f by 2e-2 at most, so a 5e-2 margin is never crossed.
        f = reference.act(case.options["activation"], h)
        assume(np.all(np.abs(np.log(np.maximum(f, 1e-300) / 1e-4)) > 5e-2))
    noise, cz = data.draw(normals(h.shape)), data.draw(normals(h.shape))
    mu, sigma = data.draw(prior_mu), data.draw(prior_sigma)
    seed = data.draw(st.integers(0, 2**16))
    record(harness.name, f"layer-grad{'-low-rank' if low_rank else ''}/{kind}/{case.name}")

    def loss(w_=w, x_=x, mu_=mu, sigma_=sigma):
        z, kl = reference_layer(w_, x_, noise=noise, training=True, mu=mu_, sigma=sigma_, **opts)
        return float((z * cz).sum() + kl.sum())

    got = _drive.layer_grads(harness, w, x, noise=noise, mu=mu, sigma=sigma, z_cotangent=cz, **opts, **(build or {}))
    note = repro(
        harness.name,
        f"_drive.layer_grads(h, w, x, noise=noise, mu={mu!r}, sigma={sigma!r}, z_cotangent=cz, "
        f"**{ {**opts, **(build or {})}!r})",
        x=x,
        noise=noise,
        cz=cz,
        w=w,
    )
    rng = np.random.default_rng(seed)
    groups = {"x": x, "weight": w.weight, "bias": w.bias, "alpha_weight": w.alpha_weight, "alpha_bias": w.alpha_bias}
    if low_rank:
        groups["alpha_down"] = w.alpha_down
    if lognormal:
        groups |= {"mu": np.float64(mu), "sigma": np.float64(sigma)}
    assert set(got) == set(groups), note
    for name, value in groups.items():
        assert np.shape(got[name]) == np.shape(value), (name, note)
        for _ in range(2):
            v = rng.standard_normal(np.shape(value))

            def along(t, name=name, value=value, v=v):
                moved = value + t * v
                if name == "x":
                    return loss(x_=moved)
                if name in ("mu", "sigma"):
                    return loss(**{f"{name}_": float(moved)})
                return loss(w_=dataclasses.replace(w, **{name: moved}))

            # Scale h down where a ReLU pre-activation could cross its kink.
            assert_close(
                np.sum(got[name] * v),
                stencil(along, H / 4),
                tol("layer-gradient", "float64"),
                what=f"d/d{name} along a random direction",
                note=note,
            )
