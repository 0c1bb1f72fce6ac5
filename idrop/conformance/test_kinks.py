"""Derivatives exactly at the kinks, in every dtype, against the closed-form backward of the core.

The contract (DESIGN.md section 1, "Derivatives at kinks"): ReLU's derivative at exactly
``h == 0`` is 0, in training and in evaluation; the log-normal KL's ``1e-4`` floor on ``f``
passes no gradient to the clamped side. Finite differences cannot check a kink (the
one-sided slopes differ), so the expected gradients come from :func:`idrop.core.vjp.
info_dropout_vjp` and :func:`idrop.core.vjp.activation_vjp` in float64 NumPy, and the
gradients the kink zeroes are compared exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from idrop.core import InfoDropoutSpec
from idrop.core.vjp import activation_vjp, info_dropout_vjp

from . import _drive
from ._cases import CASES, LOG_FLOOR
from ._harness import DTYPES, LayerWeights
from ._layers import map_vjp, pre_activations
from ._report import assert_close, record, repro
from ._rounding import noise_dtype, round_to
from ._tolerances import KL_DTYPE, tol

#: Dtypes whose every gradient is compared with the closed form, at the reduction tolerance (each
#: is a sum over the batch and the map's window). In half precision the map's backward sums
#: products of opposite signs in half (d/dx, d/dalpha_weight lose ~20% to cancellation), which
#: says nothing about the kink; there the kink's exact zeros and finiteness are checked.
COMPARED = ("float64", "float32")

#: Prior parameters every dtype holds exactly (log_sigma = 0), so the reference sees the layer's.
MU, SIGMA = 0.25, 1.0

#: Evaluation with and without the KL (``eval_kl``), and training.
MODES = {"train": (True, False), "eval": (False, False), "eval-kl": (False, True)}

RELU_CASES = [c for c in CASES if c.options["activation"] == "relu"]


def _supported(harness, dtype: str) -> None:
    if dtype not in harness.dtypes:
        pytest.skip(f"{harness.name} does not support {dtype} (declared in its harness)")


def _zero_map(kind: str, dtype: str, rng: np.random.Generator) -> tuple[LayerWeights, np.ndarray]:
    """A map with zero weights and bias (``h == 0`` exactly for any input), a random alpha branch."""
    if kind == "linear":
        wshape, bshape, x_shape, geometry = (3, 4), (3,), (2, 4), {}
    else:
        wshape, bshape, x_shape, geometry = (3, 2, 3, 3), (3,), (2, 2, 5, 5), {"stride": 2, "padding": 1}
    weights = LayerWeights(
        kind,
        np.zeros(wshape),
        np.zeros(bshape),
        round_to(rng.uniform(-0.5, 0.5, wshape), dtype),
        round_to(rng.uniform(-1.0, 1.0, bshape), dtype),
        **geometry,
    )
    return weights, round_to(rng.uniform(-2.0, 2.0, x_shape), dtype)


def _closed_form(case, w: LayerWeights, x: np.ndarray, *, training: bool, kl: bool) -> dict[str, np.ndarray]:
    """Gradients of ``sum(z) + sum(kl)`` with zero noise, by the core's backward in float64."""
    h, a = pre_activations(w, x)
    spec = InfoDropoutSpec(**case.options)
    f = np.where(h > 0, h, 0.0)
    g = info_dropout_vjp(
        f,
        a,
        np.zeros_like(h),
        np.ones_like(h),
        np.ones_like(h) if kl else None,
        spec=spec,
        mu=MU,
        sigma=SIGMA,
        training=training,
        xp=np,
    )
    d_weight, d_bias, dx = map_vjp(w, x, activation_vjp("relu", h, g.f, xp=np), w.weight)
    d_alpha_weight, d_alpha_bias, dx_alpha = map_vjp(w, x, g.alpha_logits, w.alpha_weight)
    grads = {
        "x": dx + dx_alpha,
        "weight": d_weight,
        "bias": d_bias,
        "alpha_weight": d_alpha_weight,
        "alpha_bias": d_alpha_bias,
    }
    if spec.prior == "log-normal":
        zero = np.zeros(())
        grads |= {"mu": zero if g.mu is None else g.mu.sum(), "sigma": zero if g.sigma is None else g.sigma.sum()}
    return grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["linear", "conv2d"])
@pytest.mark.parametrize("case", RELU_CASES, ids=lambda c: c.name)
def test_relu_kink(harness, case, kind, mode, dtype):
    """A map with zero weights puts every unit at ``h == 0``: ReLU'(0) = 0, so the loss
    ``sum(z) + sum(kl)`` passes exactly nothing to the map's weight and bias."""
    _supported(harness, dtype)
    training, eval_kl = MODES[mode]
    w, x = _zero_map(kind, dtype, np.random.default_rng(7))
    h, _ = pre_activations(w, x)
    record(harness.name, f"kink/relu/{kind}/{case.name}/{dtype}")
    options = dict(case.options, eval_kl=eval_kl)
    got = _drive.layer_grads(
        harness,
        w,
        x,
        noise=np.zeros(h.shape),
        mu=MU,
        sigma=SIGMA,
        z_cotangent=np.ones(h.shape),
        dtype=dtype,
        training=training,
        **options,
    )
    want = _closed_form(case, w, x, training=training, kl=training or eval_kl)
    note = repro(
        harness.name,
        f"_drive.layer_grads(h, w, x, noise=np.zeros({h.shape}), mu={MU}, sigma={SIGMA}, "
        f"z_cotangent=np.ones({h.shape}), dtype={dtype!r}, training={training}, **{options!r})",
        x=x,
        w=w,
    )
    assert set(got) == set(want), note
    for name in ("weight", "bias"):
        np.testing.assert_array_equal(got[name], 0.0, err_msg=f"d/d{name} at h == 0 (ReLU'(0) = 0)\n{note}")
    for name, value in want.items():
        assert np.isfinite(got[name]).all(), (name, note)
        if dtype in COMPARED:
            assert_close(got[name], value, tol("reduction", dtype), what=f"d/d{name}", note=note)


#: Activations on the clamped side of the log-normal KL's floor that every dtype holds as
#: normal numbers (a subnormal is flushed to zero by XLA and oneDNN, see _rounding.py).
BELOW_FLOOR = np.array([[0.0, 6.5e-5, 9e-5], [9.9e-5, 7.5e-5, 0.0]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mean_one", [False, True], ids=["median-one", "mean-one"])
def test_lognormal_floor_kink(harness, mean_one, dtype):
    """Below ``f = 1e-4`` the log-normal KL is flat in ``f``: its gradient by ``f`` is exactly 0,
    and the whole gradient is the core's closed form."""
    _supported(harness, dtype)
    f = round_to(BELOW_FLOOR, dtype)
    assert (f < LOG_FLOOR).all()
    rng = np.random.default_rng(3)
    a = round_to(rng.uniform(-3.0, 3.0, f.shape), dtype)
    eps = round_to(rng.standard_normal(f.shape), noise_dtype(dtype))
    cz = round_to(rng.standard_normal(f.shape), dtype)
    ckl = round_to(rng.standard_normal(f.shape), KL_DTYPE[dtype])
    options = {"prior": "log-normal", "mean_one": mean_one}
    record(harness.name, f"kink/floor/{dtype}")
    note = repro(
        harness.name,
        f"_drive.info_dropout_grads(h, f, a, noise=eps, mu={MU}, sigma={SIGMA}, z_cotangent=cz, "
        f"kl_cotangent=ckl, dtype={dtype!r}, **{options!r})",
        f=f,
        a=a,
        eps=eps,
        cz=cz,
        ckl=ckl,
    )
    kl_only = _drive.info_dropout_grads(
        harness, f, a, noise=eps, mu=MU, sigma=SIGMA, z_cotangent=None, kl_cotangent=ckl, dtype=dtype, **options
    )
    np.testing.assert_array_equal(kl_only["f"], 0.0, err_msg=f"dKL/df below the floor\n{note}")
    got = _drive.info_dropout_grads(
        harness, f, a, noise=eps, mu=MU, sigma=SIGMA, z_cotangent=cz, kl_cotangent=ckl, dtype=dtype, **options
    )
    spec = InfoDropoutSpec(**options)
    g = info_dropout_vjp(f, a, eps, cz, ckl, spec=spec, mu=MU, sigma=SIGMA, xp=np)
    want = {"f": g.f, "alpha_logits": g.alpha_logits}
    if "mu" in got:  # float64 differentiates by the prior too (0-d tensors)
        want |= {"mu": g.mu.sum(), "sigma": g.sigma.sum()}
    assert set(got) == set(want), note
    for name, value in want.items():
        assert_close(got[name], value, tol("elementwise", dtype), what=f"d/d{name}", note=note)
