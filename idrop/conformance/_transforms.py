"""Drivers of the function-transform checks (``test_transforms.py``): written once for every backend.

Each takes a harness and NumPy arrays in the reference layout and returns float64 NumPy in the
reference layout, through the harness's :meth:`~idrop.conformance._harness.Harness.jvp`,
:meth:`~idrop.conformance._harness.Harness.vmap` and
:meth:`~idrop.conformance._harness.Harness.transform_grad` (forward mode, vectorisation and
the gradient by function transforms), so the fused kernels are checked under each.
"""

from __future__ import annotations

import numpy as np

from ._drive import _prior, build
from ._harness import Harness, LayerWeights
from ._layout import activation_from, activation_to


def _functional(h: Harness, noise, options: dict, mu, sigma):
    prior = _prior(options, mu, sigma)

    def fn(_, f, alpha_logits, **rest):
        eps = rest.pop("noise", noise)
        return h.functional("info_dropout", f, alpha_logits, noise=eps, **options, **prior)

    return fn


def info_dropout_jvp(h: Harness, f, alpha_logits, *, noise, f_dot, a_dot, mu, sigma, **options) -> tuple:
    """Forward mode of ``info_dropout`` in float64: the tangents ``(z_dot, kl_dot)`` per unit."""
    inputs = {"f": h.asarray(f, "float64"), "alpha_logits": h.asarray(alpha_logits, "float64")}
    fn = _functional(h, h.asarray(noise, "float64"), options, mu, sigma)
    return h.jvp(fn, inputs, {"f": f_dot, "alpha_logits": a_dot})


def info_dropout_vmap(h: Harness, f, alpha_logits, *, noise, mu, sigma, **options) -> tuple:
    """``info_dropout`` in float64 vectorised over the leading axis of ``f``, the logits and ``noise``."""
    inputs = {name: h.asarray(v, "float64") for name, v in (("f", f), ("alpha_logits", alpha_logits), ("noise", noise))}
    return h.vmap(_functional(h, None, options, mu, sigma), inputs)


def info_dropout_transform_grad(h: Harness, f, alpha_logits, *, noise, z_cotangent, kl_cotangent, mu, sigma, **options):
    """Gradients of ``sum(z * z_cot) + sum(kl * kl_cot)`` by ``f`` and the logits, by function transforms."""
    inputs = {"f": h.asarray(f, "float64"), "alpha_logits": h.asarray(alpha_logits, "float64")}
    fn = _functional(h, h.asarray(noise, "float64"), options, mu, sigma)
    return h.transform_grad(fn, inputs, (z_cotangent, kl_cotangent))


def _layer_fn(h: Harness, noise):
    def fn(layer, x, **rest):
        z = h.call(layer, x, training=True, noise=rest.get("noise", noise))
        return z, h.kl(layer)

    return fn


def layer_jvp(h: Harness, w: LayerWeights, x, *, noise, x_dot, mu, sigma, **options) -> tuple:
    """Forward mode of a training call of ``InfoDropout(<map of w>)`` along ``x_dot``: ``(z_dot, kl_dot)``."""
    cl = h.channels_last
    xf = h.asarray(activation_to(cl, x), "float64")
    layer = build(h, w, dtype="float64", mu=mu, sigma=sigma, input_shape=tuple(xf.shape), **options)
    eps = h.asarray(activation_to(cl, noise), "float64")
    z_dot, kl_dot = h.jvp(_layer_fn(h, eps), {"x": xf}, {"x": activation_to(cl, x_dot)}, layer)
    return activation_from(cl, z_dot), kl_dot


def layer_vmap(h: Harness, w: LayerWeights, xs, *, noises, mu, sigma, **options) -> tuple:
    """Training calls of ``InfoDropout(<map of w>)`` vectorised over a leading axis of batches."""
    cl = h.channels_last
    xs_ = np.stack([activation_to(cl, x) for x in xs])
    eps = np.stack([activation_to(cl, n) for n in noises])
    layer = build(h, w, dtype="float64", mu=mu, sigma=sigma, input_shape=tuple(xs_.shape[1:]), **options)
    inputs = {"x": h.asarray(xs_, "float64"), "noise": h.asarray(eps, "float64")}
    z, kl = h.vmap(_layer_fn(h, None), inputs, layer)
    return np.stack([activation_from(cl, zi) for zi in z]), kl
