"""The JAX training kernel: Information Dropout's element-wise chain as one ``jax.custom_jvp``.

The forward pass is :func:`idrop.core.functional.info_dropout` (after the activation, when one
is folded in), so the numbers are the core's; the forward-mode rule is
:func:`idrop.core.jvp.info_dropout_jvp` (the diagonal Jacobian, from the closed-form backward
:func:`idrop.core.vjp.info_dropout_vjp`) with :func:`idrop.core.vjp.activation_vjp` (ReLU'(0) = 0).
Reverse mode is JAX's transpose of that rule. Automatic differentiation would keep every
intermediate of the chain (sigmoid, alpha, the exponent, the noise, ``log f``...) for the backward
pass; the rule's tangent runs under ``jax.checkpoint``, so this kernel keeps only the
pre-activation ``h``, the alpha logits and the PRNG key: ``jax.random`` is counter-based, so
``eps`` is drawn again, bit for bit, in the backward pass (injected ``noise=`` is kept instead).
``tests/backends/test_jax_kernel.py`` checks the saved residuals.

A ``custom_jvp`` rather than a ``custom_vjp``: JAX refuses forward mode (``jax.jvp``,
``jax.jacfwd``) of a ``custom_vjp`` function, even inside a ``jit``. The rule is plain
``jax.numpy``, so the kernel works under ``jit``, ``grad``, ``vmap``, ``checkpoint``, ``jvp`` and
``jacfwd``, and every derivative is differentiable again: ``grad`` of ``grad``, ``jax.hessian``,
forward-over-reverse and reverse-over-forward give the derivatives of the core's formulas. The
tangent (and cotangent) of injected ``noise`` is exact.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from idrop.core import functional as _functional
from idrop.core._xp import activation as _activation
from idrop.core.jvp import info_dropout_jvp
from idrop.core.spec import InfoDropoutSpec
from idrop.core.vjp import activation_vjp

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


def _primal(cfg: Config, h: jax.Array, a: jax.Array, noise: Any, mu: Any, sigma: Any) -> tuple[Any, Any]:
    return _forward(cfg, h, a, noise, mu, sigma)


#: One jitted dispatch for an eager call (outside any jit), instead of ~40; inlined inside a jit.
_primal_jit = jax.jit(_primal, static_argnums=0)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _fused(cfg: Config, h: jax.Array, a: jax.Array, noise: Any, mu: Any, sigma: Any) -> tuple[Any, Any]:
    """``(z, kl)`` of :func:`idrop.core.functional.info_dropout` applied to ``act(h)`` (``h`` when no activation).

    ``noise``: a PRNG key (``cfg.draw``), ``eps`` in ``cfg.kl_dtype``, or None (evaluation).
    ``mu``/``sigma``: 0-d arrays in ``cfg.kl_dtype`` for the log-normal prior, else None.
    """
    return _primal_jit(cfg, h, a, noise, mu, sigma)


def _tangent(cfg: Config, primals: tuple, tangents: tuple) -> tuple[Any, Any]:
    """``(z_dot, kl_dot)`` by :func:`idrop.core.jvp.info_dropout_jvp`, cast to the outputs' dtypes."""
    h, a, noise, mu, sigma = primals
    h_dot, a_dot, noise_dot, mu_dot, sigma_dot = tangents
    cdt = cfg.kl_dtype
    hc, ac = h.astype(cdt), a.astype(cdt)
    fc = _f(cfg, h).astype(cdt)  # as the forward pass rounded it
    f_dot = h_dot.astype(cdt)
    if cfg.activation is not None:
        f_dot = activation_vjp(cfg.activation, hc, f_dot, xp=xp)  # element-wise: the vjp is the jvp
    prior = {} if mu is None else {"mu": mu, "sigma": sigma, "mu_dot": mu_dot, "sigma_dot": sigma_dot}
    eps_dot = noise_dot if cfg.training and not cfg.draw else None  # a key has no tangent
    z_dot, kl_dot = info_dropout_jvp(
        fc,
        ac,
        _eps(cfg, h.shape, noise),
        f_dot,
        a_dot.astype(cdt),
        eps_dot,
        spec=cfg.spec,
        training=cfg.training,
        xp=xp,
        **prior,
    )
    return z_dot.astype(h.dtype), kl_dot


def _jvp(cfg: Config, primals: tuple, tangents: tuple) -> tuple[tuple, tuple]:
    """The kernel's forward mode; reverse mode is JAX's transpose of it (``grad``, ``vjp``).

    The tangent is linear in ``tangents`` with coefficients computed from ``primals``. Under
    ``jax.checkpoint`` JAX keeps only the primals (``h``, the alpha logits, the key or ``eps``) as
    residuals for reverse mode and recomputes the coefficients in the backward pass, as the
    custom-VJP kernel this replaces did (``jax.custom_vjp`` refuses forward mode).
    """
    out = _primal(cfg, *primals)
    # prevent_cse=False: inside one jit XLA may still share the recomputation with the forward pass
    # (as it shared the custom-VJP kernel's redraw of eps); with the default barriers a jitted
    # grad step of this op ran slower than the custom-VJP kernel's. JAX's residuals stay h, a, key.
    return out, jax.checkpoint(_tangent, static_argnums=0, prevent_cse=False)(cfg, primals, tangents)


_fused.defjvp(jax.jit(_jvp, static_argnums=0))


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
