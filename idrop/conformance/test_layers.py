"""Whole layers: InfoDropout(Linear) and InfoDropout(Conv2d) against the reference maps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from . import _drive
from ._cases import CASES, normals, prior_mu, prior_sigma
from ._layers import layer_problems, pre_activations, reference_layer
from ._report import assert_close, record, repro
from ._rounding import noise_dtype, round_to
from ._tolerances import KL_DTYPE, Tol, tol

# Layers are checked in the two production dtypes; half precision is covered
# elementwise in test_forward.py and by each backend's autocast/policy tests.
LAYER_DTYPES = ("float64", "float32")

# float32 layers: the wrapped matmul/conv (oneDNN, Eigen, XLA) accumulates up to
# 27 float32 products in its own order before log/exp see them, so the
# elementwise 1e-5 of a single op chain is too tight; see _tolerances.py for
# how this override was calibrated.
LAYER_F32 = Tol(1e-4, 1e-5, reason="accumulation order of the wrapped matmul/conv")


def _tol(kind: str, dtype: str) -> Tol:
    return LAYER_F32 if dtype == "float32" else tol(kind, dtype)


@pytest.mark.parametrize("dtype", LAYER_DTYPES)
@pytest.mark.parametrize("kind", ["linear", "conv2d"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@given(data=st.data())
def test_layer(harness, case, kind, dtype, data):
    """The layer's z and per-sample KL, in training (injected noise) and evaluation mode."""
    w, x = data.draw(layer_problems(kind), label="problem")
    training = data.draw(st.booleans(), label="training")
    mu, sigma = data.draw(prior_mu, label="mu"), data.draw(prior_sigma, label="sigma")
    x = round_to(x, dtype)
    w = type(w)(
        w.kind, *(round_to(a, dtype) for a in (w.weight, w.bias, w.alpha_weight, w.alpha_bias)), w.stride, w.padding
    )
    h, _ = pre_activations(w, x)
    noise = round_to(data.draw(normals(h.shape), label="noise"), noise_dtype(dtype))
    record(harness.name, f"layer/{kind}/{case.name}/{dtype}")
    opts = dict(case.options)
    z_ref, kl_ref = reference_layer(w, x, noise=noise, training=training, mu=mu, sigma=sigma, **opts)
    out = _drive.layer_forward(harness, w, x, dtype=dtype, noise=noise, training=training, mu=mu, sigma=sigma, **opts)
    note = repro(
        harness.name,
        f"_drive.layer_forward(h, w, x, dtype={dtype!r}, noise=noise, training={training}, mu={mu!r}, "
        f"sigma={sigma!r}, **{opts!r})",
        x=x,
        noise=noise,
        w=w,
    )
    assert out.z_dtype == dtype and out.kl_dtype == KL_DTYPE[dtype], note
    assert_close(out.z, z_ref, _tol("elementwise", dtype), what="layer z", note=note)
    assert_close(out.kl, kl_ref, _tol("reduction", dtype), what="layer kl per sample", note=note)
    assert np.isfinite(out.z).all() and np.isfinite(out.kl).all(), note


#: The cheap alpha branch changes only the map of the alpha logits: one case per prior covers it.
LOW_RANK_CASES = tuple(c for c in CASES if c.name in ("relu-loguniform", "softplus-lognormal"))


@pytest.mark.parametrize("dtype", LAYER_DTYPES)
@pytest.mark.parametrize("kind", ["linear", "conv2d"])
@pytest.mark.parametrize("case", LOW_RANK_CASES, ids=lambda c: c.name)
@given(data=st.data())
def test_low_rank_layer(harness, case, kind, dtype, data):
    """``InfoDropout(alpha_rank=r)``: z and per-sample KL with the reference ``up(down(x))`` alpha map."""
    w, x = data.draw(layer_problems(kind, low_rank=True), label="problem")
    training = data.draw(st.booleans(), label="training")
    mu, sigma = data.draw(prior_mu, label="mu"), data.draw(prior_sigma, label="sigma")
    x = round_to(x, dtype)
    arrays = {k: round_to(getattr(w, k), dtype) for k in ("weight", "bias", "alpha_weight", "alpha_bias", "alpha_down")}
    w = dataclasses.replace(w, **arrays)
    h, _ = pre_activations(w, x)
    noise = round_to(data.draw(normals(h.shape), label="noise"), noise_dtype(dtype))
    record(harness.name, f"layer-low-rank/{kind}/{case.name}/{dtype}")
    opts = dict(case.options)
    z_ref, kl_ref = reference_layer(w, x, noise=noise, training=training, mu=mu, sigma=sigma, **opts)
    out = _drive.layer_forward(harness, w, x, dtype=dtype, noise=noise, training=training, mu=mu, sigma=sigma, **opts)
    note = repro(
        harness.name,
        f"_drive.layer_forward(h, w, x, dtype={dtype!r}, noise=noise, training={training}, mu={mu!r}, "
        f"sigma={sigma!r}, **{opts!r})",
        x=x,
        noise=noise,
        w=w,
    )
    assert out.z_dtype == dtype and out.kl_dtype == KL_DTYPE[dtype], note
    assert_close(out.z, z_ref, _tol("elementwise", dtype), what="low-rank layer z", note=note)
    assert_close(out.kl, kl_ref, _tol("reduction", dtype), what="low-rank layer kl per sample", note=note)
