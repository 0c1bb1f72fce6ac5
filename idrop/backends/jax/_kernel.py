"""The JAX training kernel: Information Dropout's element-wise chain as one ``jax.custom_vjp``.

The forward pass is :func:`idrop.core.functional.info_dropout` (after the activation, when one
is folded in), so the numbers are the core's; the backward pass is
:func:`idrop.core.vjp.info_dropout_vjp` and :func:`idrop.core.vjp.activation_vjp`
(ReLU'(0) = 0). Automatic differentiation would keep every intermediate of the chain (sigmoid,
alpha, the exponent, the noise, ``log f``...) for the backward pass; this kernel keeps only the
pre-activation ``h``, the alpha logits and the PRNG key: ``jax.random`` is counter-based, so
``eps`` is drawn again, bit for bit, in the backward pass (injected ``noise=`` is kept instead).

Both rules are plain ``jax.numpy``, so the kernel works under ``jit``, ``grad``, ``vmap`` and
``checkpoint``, and its gradient is differentiable again: ``grad`` of ``grad``, ``jax.hessian``
and forward-over-reverse (``jvp`` of ``grad``) give the derivatives of the core's formulas.
Forward mode of the kernel itself (``jax.jvp``/``jacfwd`` of the layer) raises JAX's
``custom_vjp`` error. The cotangent of injected ``noise`` is exact.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from idrop.core import functional as _functional
from idrop.core._xp import activation as _activation
from idrop.core.noise import lognormal_noise
from idrop.core.spec import InfoDropoutSpec
from idrop.core.vjp import activation_vjp, info_dropout_vjp

from ._namespace import draw_normal, kl_dtype, need_key, xp


class Config(NamedTuple):
    """The static options of one kernel call (hashable: ``nondiff_argnums``)."""

    spec: InfoDropoutSpec
    activation: str | None  # folded activation, or None when the input is f itself
    training: bool
    draw: bool  # the noise argument is a PRNG key (eps drawn here) rather than eps
    kl_dtype: Any  # dtype of alpha, the KL and eps


def _f(cfg: Config, h: jax.Array) -> jax.Array:
    return h if cfg.activation is None else _activation(cfg.activation, h, xp=xp)


def _eps(cfg: Config, shape: tuple[int, ...], noise: Any) -> jax.Array | None:
    if not cfg.training:
        return None
    return draw_normal(noise, shape, cfg.kl_dtype) if cfg.draw else noise


def _forward(cfg: Config, h: jax.Array, a: jax.Array, noise: Any, mu: Any, sigma: Any) -> tuple[Any, Any]:
    f = _f(cfg, h)
    prior = {} if mu is None else {"mu": mu, "sigma": sigma}
    return _functional.info_dropout(
        f,
        a,
        _eps(cfg, f.shape, noise),
        spec=cfg.spec,
        **prior,
        training=cfg.training,
        kl_dtype=None if cfg.kl_dtype == f.dtype else cfg.kl_dtype,
        xp=xp,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused(cfg: Config, h: jax.Array, a: jax.Array, noise: Any, mu: Any, sigma: Any) -> tuple[Any, Any]:
    """``(z, kl)`` of :func:`idrop.core.functional.info_dropout` applied to ``act(h)`` (``h`` when no activation).

    ``noise``: a PRNG key (``cfg.draw``), ``eps`` in ``cfg.kl_dtype``, or None (evaluation).
    ``mu``/``sigma``: 0-d arrays in ``cfg.kl_dtype`` for the log-normal prior, else None.
    """
    return _forward(cfg, h, a, noise, mu, sigma)


def _fwd(cfg: Config, h: jax.Array, a: jax.Array, noise: Any, mu: Any, sigma: Any) -> tuple[Any, tuple]:
    return _forward(cfg, h, a, noise, mu, sigma), (h, a, noise, mu, sigma)


def _bwd(cfg: Config, res: tuple, cts: tuple) -> tuple:
    h, a, noise, mu, sigma = res
    z_cot, kl_cot = cts
    cdt = cfg.kl_dtype
    hc, ac, zc = h.astype(cdt), a.astype(cdt), z_cot.astype(cdt)
    fc = _f(cfg, h).astype(cdt)  # as the forward pass rounded it
    eps = _eps(cfg, h.shape, noise)
    prior = {} if mu is None else {"mu": mu, "sigma": sigma}
    g = info_dropout_vjp(fc, ac, eps, zc, kl_cot, spec=cfg.spec, **prior, training=cfg.training, xp=xp)
    g_h = g.f if cfg.activation is None else activation_vjp(cfg.activation, hc, g.f, xp=xp)
    g_noise = None
    if cfg.training and not cfg.draw:  # d z / d eps = alpha * z, in both noise forms
        spec = cfg.spec
        alpha = _functional.alpha_from_logits(ac, max_alpha=spec.max_alpha, alpha_min=spec.alpha_min, xp=xp)
        g_noise = (zc * alpha * lognormal_noise(fc, alpha, eps, mean_one=spec.mean_one, xp=xp)).astype(noise.dtype)
    g_mu = None if mu is None else jnp.sum(g.mu).astype(mu.dtype)
    g_sigma = None if sigma is None else jnp.sum(g.sigma).astype(sigma.dtype)
    return g_h.astype(h.dtype), g.alpha_logits.astype(a.dtype), g_noise, g_mu, g_sigma


# Each rule as one jitted function: called op by op (outside any jit) the chain is one compiled
# dispatch instead of ~40; inside a jit the inner jit is inlined, so nothing changes there.
_fused.defvjp(jax.jit(_fwd, static_argnums=0), jax.jit(_bwd, static_argnums=0))


def info_dropout_kernel(
    spec: InfoDropoutSpec,
    activation: str | None,
    key: Any,
    h: jax.Array,
    alpha_logits: jax.Array,
    *,
    mu: Any,
    sigma: Any,
    deterministic: bool,
    noise: jax.Array | None,
) -> tuple[jax.Array, jax.Array]:
    """``(z, kl)`` per unit of ``act(h)`` (``h`` itself when ``activation`` is None), by the fused kernel.

    The caller has validated every argument. ``mu``/``sigma`` (log-normal prior; default 0 and 1)
    become 0-d arrays in the KL's dtype here, so their gradients keep their own shape and dtype.
    """
    dtype = kl_dtype(h.dtype)
    mu_sigma = (None, None)
    if spec.prior == "log-normal":
        mu_sigma = (
            jnp.asarray(0.0 if mu is None else mu, dtype=dtype).reshape(()),
            jnp.asarray(1.0 if sigma is None else sigma, dtype=dtype).reshape(()),
        )
    draw = not deterministic and noise is None
    if deterministic:
        noise = None
    elif draw:
        noise = need_key(key)
    else:
        noise = jnp.asarray(noise, dtype=dtype)
    return _fused(Config(spec, activation, not deterministic, draw, dtype), h, alpha_logits, noise, *mu_sigma)
