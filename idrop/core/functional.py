"""Information Dropout as one deterministic function of explicit inputs.

Every backend calls :func:`info_dropout` with its own namespace ``xp`` and the
noise it drew itself, so the formulas live here once (STYLE.md rule 1). The
NumPy float64 call of the same code is the reference (:mod:`idrop.core.reference`).
"""

from __future__ import annotations

from typing import Any

from ._xp import Array, Namespace, sigmoid
from .kl import kl_divergence
from .noise import lognormal_multiplier, lognormal_noise
from .priors import LogNormalPosterior, LogNormalPrior, LogUniformPrior
from .spec import InfoDropoutSpec


def alpha_from_logits(alpha_logits: Array, *, max_alpha: float = 0.7, alpha_min: float = 1e-3, xp: Namespace) -> Array:
    r"""The noise scale of each unit from the alpha branch's pre-activation.

    .. math:: \alpha(x) = \alpha_{\min} + \alpha_{\max}\,\sigma(a(x))

    (official code; the paper bounds alpha in Sec. 3 so the noise cannot grow
    without limit.) ``alpha`` lies in ``(alpha_min, alpha_min + max_alpha)``.
    """
    return alpha_min + max_alpha * sigmoid(alpha_logits, xp=xp)


def prior_for(spec: InfoDropoutSpec, *, mu: Array = 0.0, sigma: Array = 1.0) -> object:
    """The prior object that ``spec`` describes (``mu``, ``sigma`` for log-normal)."""
    if spec.prior == "log-uniform":
        return LogUniformPrior(spec.max_alpha, spec.alpha_min, spec.zero_units)
    return LogNormalPrior(mu=mu, sigma=sigma)


def info_dropout(
    f: Array,
    alpha_logits: Array,
    eps: Array | None,
    *,
    spec: InfoDropoutSpec,
    mu: Array = 0.0,
    sigma: Array = 1.0,
    training: bool = True,
    kl_dtype: Any = None,
    xp: Namespace,
) -> tuple[Array, Array]:
    r"""Noisy representation and per-unit KL of one Information Dropout layer.

    .. math::
        z = f \cdot e^{\alpha \epsilon}\ (\text{training}),\qquad z = f\ (\text{evaluation}),
        \qquad \mathrm{KL}_j = \mathrm{KL}(p(z_j|x)\,\|\,p(z_j))

    with ``alpha`` from :func:`alpha_from_logits` and the KL of eq. 3 (log-uniform
    prior) or eq. 4 (log-normal prior); the loss of eq. 5 sums it over units.

    Args:
        f: the activation ``f(x)``, any shape.
        alpha_logits: the alpha branch's output ``a(x)``, same shape as ``f``.
        eps: standard-normal draws, same shape as ``f``; ignored (may be ``None``)
            when ``training`` is false.
        spec: validated layer options.
        mu: mean of the log-normal prior (learnable scalar).
        sigma: standard deviation of the log-normal prior (learnable, > 0).
        training: apply the noise; evaluation returns ``f`` unchanged.
        kl_dtype: dtype to compute alpha and the KL in (adapters pass float32
            for half-precision inputs); ``None`` keeps ``f``'s dtype.
        xp: array namespace.

    Returns:
        ``(z, kl)``: ``z`` like ``f``; ``kl`` per unit, like ``f`` in ``kl_dtype``.

    Raises:
        ValueError: if ``training`` is true and ``eps`` is ``None``.
    """
    if kl_dtype is not None:
        f_kl, logits_kl = xp.astype(f, kl_dtype), xp.astype(alpha_logits, kl_dtype)
    else:
        f_kl, logits_kl = f, alpha_logits
    alpha = alpha_from_logits(logits_kl, max_alpha=spec.max_alpha, alpha_min=spec.alpha_min, xp=xp)
    posterior = LogNormalPosterior(f=f_kl, alpha=alpha, mean_one=spec.mean_one)
    kl = kl_divergence(posterior, prior_for(spec, mu=mu, sigma=sigma), xp=xp)
    if not training:
        return f, kl
    if eps is None:
        raise ValueError(
            "Invalid value received for argument `noise`. Expected standard-normal "
            "draws shaped like f(x) in training mode. Received: noise=None"
        )
    if kl_dtype is not None:
        # Half precision: form the multiplier in kl_dtype, then round once.
        noise = lognormal_multiplier(alpha, xp.astype(eps, kl_dtype), mean_one=spec.mean_one, xp=xp)
        z = f * xp.astype(noise, f.dtype)
    else:
        z = lognormal_noise(f, alpha, eps, mean_one=spec.mean_one, xp=xp)
    return z, kl
