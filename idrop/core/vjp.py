r"""The backward pass of Information Dropout in closed form, for custom-gradient kernels.

Automatic differentiation of :func:`idrop.core.functional.info_dropout` keeps
every intermediate of the element-wise chain (sigmoid, alpha, the exponent, the
noise, log f, ...) for the backward pass. These formulas need only the
activation ``f``, the alpha logits ``a`` and the noise ``eps`` (which a backend
may even regenerate from its RNG state), so an adapter that wraps them in its
framework's custom-gradient mechanism (``torch.autograd.Function``,
``jax.custom_vjp``, ``tf.custom_gradient``) keeps about half the memory. The
conformance suite checks every adapter's gradients against finite differences
of the reference, so these formulas are checked through them; ``tests/core``
also checks them directly.

With :math:`s = \sigma(a)`, :math:`\alpha = \alpha_{\min} + \alpha_{\max} s`,
:math:`n = e^{\alpha\epsilon - [\text{mean one}]\,\alpha^2/2}` and :math:`z = f n`:

.. math::
    \partial z/\partial f = n, \qquad
    \partial z/\partial \alpha = z\,(\epsilon - [\text{mean one}]\,\alpha), \qquad
    \partial \alpha/\partial a = \alpha_{\max}\, s (1 - s)

log-uniform prior: :math:`\partial\mathrm{KL}/\partial\alpha = -1/\alpha` (0 for masked units);
log-normal prior, with :math:`m = \log\max(f, 10^{-4}) - [\text{mean one}]\,\alpha^2/2`:

.. math::
    \frac{\partial\mathrm{KL}}{\partial\alpha} = \frac{\alpha}{\sigma^2} - \frac1\alpha
        - [\text{mean one}]\,\alpha\,\frac{m-\mu}{\sigma^2},\quad
    \frac{\partial\mathrm{KL}}{\partial f} = \frac{m-\mu}{\sigma^2 f}\,[f > 10^{-4}],\quad
    \frac{\partial\mathrm{KL}}{\partial\mu} = -\frac{m-\mu}{\sigma^2},\quad
    \frac{\partial\mathrm{KL}}{\partial\sigma} = \frac{1}{\sigma} - \frac{\alpha^2 + (m-\mu)^2}{\sigma^3}
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._xp import Array, Namespace, sigmoid
from .kl import LOG_FLOOR
from .noise import lognormal_multiplier
from .spec import InfoDropoutSpec


class InfoDropoutGrads(NamedTuple):
    """Cotangents of the inputs of :func:`idrop.core.functional.info_dropout`.

    ``mu`` and ``sigma`` are per-unit contributions (sum them over every axis
    for a scalar prior), ``None`` for the log-uniform prior.
    """

    f: Array
    alpha_logits: Array
    mu: Array | None
    sigma: Array | None


def info_dropout_vjp(
    f: Array,
    alpha_logits: Array,
    eps: Array | None,
    z_cotangent: Array | None,
    kl_cotangent: Array | None,
    *,
    spec: InfoDropoutSpec,
    mu: Any = 0.0,
    sigma: Any = 1.0,
    training: bool = True,
    xp: Namespace,
) -> InfoDropoutGrads:
    """Gradients of ``sum(z * z_cot) + sum(kl * kl_cot)`` with respect to ``f``, ``a``, ``mu``, ``sigma``.

    Args:
        f: the activation ``f(x)`` of the forward pass.
        alpha_logits: the alpha branch's output ``a(x)``.
        eps: the standard-normal draws of the forward pass (unused in evaluation).
        z_cotangent: cotangent of ``z`` (``None`` means zero).
        kl_cotangent: cotangent of the per-unit KL (``None`` means zero); broadcastable.
        spec, mu, sigma, training: as in the forward call.
        xp: array namespace.

    Returns:
        :class:`InfoDropoutGrads`, each like ``f`` (``mu``/``sigma`` per unit).
    """
    s = sigmoid(alpha_logits, xp=xp)
    alpha = spec.alpha_min + spec.max_alpha * s
    dalpha_da = spec.max_alpha * s * (1.0 - s)
    g_f = xp.zeros_like(f)
    g_alpha = xp.zeros_like(f)
    if z_cotangent is not None:
        if training:
            noise = lognormal_multiplier(alpha, eps, mean_one=spec.mean_one, xp=xp)
            g_f = z_cotangent * noise
            slope = eps - alpha if spec.mean_one else eps
            g_alpha = z_cotangent * f * noise * slope
        else:
            g_f = z_cotangent
    g_mu = g_sigma = None
    if kl_cotangent is not None:
        if spec.prior == "log-uniform":
            dkl_dalpha = -1.0 / alpha
            if spec.zero_units == "mask":
                dkl_dalpha = xp.where(f > 0, dkl_dalpha, xp.zeros_like(dkl_dalpha))
            g_alpha = g_alpha + kl_cotangent * dkl_dalpha
        else:
            floor = LOG_FLOOR * xp.ones_like(f)
            above = f > floor
            m = xp.log(xp.where(above, f, floor))
            if spec.mean_one:
                m = m - 0.5 * alpha * alpha
            var = sigma * sigma
            r = (m - mu) / var
            dkl_dalpha = alpha / var - 1.0 / alpha
            if spec.mean_one:
                dkl_dalpha = dkl_dalpha - alpha * r
            g_alpha = g_alpha + kl_cotangent * dkl_dalpha
            safe_f = xp.where(above, f, xp.ones_like(f))
            g_f = g_f + kl_cotangent * xp.where(above, r / safe_f, xp.zeros_like(f))
            g_mu = -kl_cotangent * r
            g_sigma = kl_cotangent * (1.0 / sigma - (alpha * alpha + (m - mu) * (m - mu)) / (var * sigma))
    return InfoDropoutGrads(g_f, g_alpha * dalpha_da, g_mu, g_sigma)


def activation_vjp(name: str, h: Array, g: Array, *, xp: Namespace) -> Array:
    r"""Cotangent of the pre-activation ``h`` given the cotangent ``g`` of ``act(h)``.

    .. math::
        \mathrm{relu}'(h) = [h > 0], \qquad \mathrm{softplus}'(h) = \sigma(h)

    ReLU's derivative at exactly ``h == 0`` is 0, the frameworks' own convention, in training and
    evaluation, in every backend (DESIGN.md section 1, "Derivatives at kinks"). Every kernel that
    differentiates the activation by hand calls this; the core's forward :func:`idrop.core._xp.relu`
    gives autodiff the same derivative.
    """
    if name == "relu":
        return xp.where(h > 0, g, xp.zeros_like(g))
    if name == "softplus":
        return g * sigmoid(h, xp=xp)
    raise ValueError(f"unknown activation {name!r}")
