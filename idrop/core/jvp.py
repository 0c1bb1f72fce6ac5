r"""The forward-mode derivative (JVP) of Information Dropout, from the closed-form backward pass.

:func:`idrop.core.functional.info_dropout` is element-wise: unit ``i`` of ``z`` and of the
per-unit KL depends on ``f_i``, ``a_i`` and ``eps_i`` only (and on the scalars ``mu``,
``sigma``). Its Jacobian is therefore diagonal, and each diagonal is what
:func:`idrop.core.vjp.info_dropout_vjp` returns for a cotangent of ones on one output:

.. math::
    \dot z = \frac{\partial z}{\partial f}\dot f + \frac{\partial z}{\partial a}\dot a
        + \alpha z\,\dot\epsilon, \qquad
    \dot{\mathrm{KL}} = \frac{\partial\mathrm{KL}}{\partial f}\dot f
        + \frac{\partial\mathrm{KL}}{\partial a}\dot a
        + \frac{\partial\mathrm{KL}}{\partial\mu}\dot\mu
        + \frac{\partial\mathrm{KL}}{\partial\sigma}\dot\sigma

(``dz/d eps = alpha z`` in both noise forms). So the forward mode of a custom-gradient kernel
(JAX's ``custom_jvp``) is written with the same formulas as its backward pass, once.
"""

from __future__ import annotations

from typing import Any

from ._xp import Array, Namespace
from .functional import alpha_from_logits
from .noise import lognormal_noise
from .spec import InfoDropoutSpec
from .vjp import info_dropout_vjp


def info_dropout_jvp(
    f: Array,
    alpha_logits: Array,
    eps: Array | None,
    f_dot: Array | None,
    a_dot: Array | None,
    eps_dot: Array | None = None,
    mu_dot: Any = None,
    sigma_dot: Any = None,
    *,
    spec: InfoDropoutSpec,
    mu: Any = 0.0,
    sigma: Any = 1.0,
    training: bool = True,
    xp: Namespace,
) -> tuple[Array, Array]:
    """Tangents ``(z_dot, kl_dot)`` of ``(z, kl per unit)`` along the given input tangents.

    Args:
        f, alpha_logits, eps, spec, mu, sigma, training: as in the forward call.
        f_dot, a_dot, eps_dot: tangents of ``f``, the alpha logits and ``eps`` (``None``: zero).
        mu_dot, sigma_dot: tangents of the log-normal prior's scalars (``None``: zero).
        xp: array namespace.

    Returns:
        ``(z_dot, kl_dot)``, each like ``f``.
    """
    ones = xp.ones_like(f)
    lognormal = spec.prior == "log-normal"
    prior = {"mu": mu, "sigma": sigma} if lognormal else {}
    dz = info_dropout_vjp(f, alpha_logits, eps, ones, None, spec=spec, **prior, training=training, xp=xp)
    dkl = info_dropout_vjp(f, alpha_logits, eps, None, ones, spec=spec, **prior, training=training, xp=xp)
    z_dot = xp.zeros_like(f)
    kl_dot = xp.zeros_like(f)
    if f_dot is not None:
        z_dot = z_dot + dz.f * f_dot
        kl_dot = kl_dot + dkl.f * f_dot
    if a_dot is not None:
        z_dot = z_dot + dz.alpha_logits * a_dot
        kl_dot = kl_dot + dkl.alpha_logits * a_dot
    if training and eps_dot is not None:
        alpha = alpha_from_logits(alpha_logits, max_alpha=spec.max_alpha, alpha_min=spec.alpha_min, xp=xp)
        z_dot = z_dot + alpha * lognormal_noise(f, alpha, eps, mean_one=spec.mean_one, xp=xp) * eps_dot
    if lognormal and mu_dot is not None:
        kl_dot = kl_dot + dkl.mu * mu_dot
    if lognormal and sigma_dot is not None:
        kl_dot = kl_dot + dkl.sigma * sigma_dot
    return z_dot, kl_dot
