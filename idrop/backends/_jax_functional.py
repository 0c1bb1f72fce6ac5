"""The JAX adapter's array namespace and pure functions: ``info_dropout``, the baselines'
noise, ``gaussian_kl`` (re-exported by :mod:`idrop.backends.jax`, with the NNX modules).

Safe under ``jit``, ``grad``, ``vmap`` and ``checkpoint``; noise comes from an explicit
``key`` (or injected ``noise``), as in Equinox.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from idrop.backends import _jax_kernel as _kernel
from idrop.core import functional as _functional
from idrop.core import noise as _noise
from idrop.core.kl import kl_divergence as _kl_divergence
from idrop.core.priors import GaussianPosterior, StandardNormalPrior
from idrop.core.spec import (
    InfoDropoutSpec,
    check_float_dtype,
    check_nonnegative,
    check_probability,
    check_same_shape,
    invalid,
)

# --------------------------------------------------------------------------- #
# 1. The array namespace: jax.numpy, plus jax.nn.sigmoid (_jax_kernel.XP).   #
# --------------------------------------------------------------------------- #

xp = _kernel.XP

_HALF = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))


def _compute_dtype(a: jax.Array) -> Any:
    """float32 for half-precision arrays (KL and noise), else the array's dtype."""
    return jnp.dtype(jnp.float32) if a.dtype in _HALF else a.dtype


def _check_float(name: str, a: Any) -> None:
    dtype = jnp.asarray(a).dtype if not hasattr(a, "dtype") else jnp.dtype(a.dtype)
    check_float_dtype(name, dtype.name, bool(jnp.issubdtype(dtype, jnp.floating)))


def _need_key(key: jax.Array | None) -> jax.Array:
    if key is None:
        raise invalid("key", "a jax.random key when deterministic=False and noise is None", key)
    return key


# --------------------------------------------------------------------------- #
# 2. Pure functions.                                                           #
# --------------------------------------------------------------------------- #


def alpha_from_logits(alpha_logits: jax.Array, *, max_alpha: float = 0.7, alpha_min: float = 1e-3) -> jax.Array:
    """``alpha = alpha_min + max_alpha * sigmoid(alpha_logits)`` (see :func:`idrop.core.alpha_from_logits`)."""
    spec = InfoDropoutSpec(max_alpha=max_alpha, alpha_min=alpha_min)
    return _functional.alpha_from_logits(alpha_logits, max_alpha=spec.max_alpha, alpha_min=spec.alpha_min, xp=xp)


def info_dropout(
    key: jax.Array | None,
    f: jax.Array,
    alpha_logits: jax.Array,
    *,
    prior: str = "log-uniform",
    max_alpha: float = 0.7,
    alpha_min: float = 1e-3,
    mean_one: bool = False,
    zero_units: str = "count",
    mu: jax.Array | float | None = None,
    sigma: jax.Array | float | None = None,
    deterministic: bool = False,
    noise: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    r"""Information Dropout of an activation ``f`` given the alpha branch's logits.

    .. math:: z = f\,e^{\alpha\epsilon},\quad \alpha = \alpha_{\min} + \alpha_{\max}\sigma(a),
        \quad \epsilon\sim\mathcal N(0, 1)

    with the per-unit KL of eq. 3 (log-uniform prior) or eq. 4 (log-normal prior).
    A pure function: every option is a static Python value, so wrap it in
    ``jax.jit`` with the options bound (``functools.partial``) or marked static.

    Args:
        key: a ``jax.random`` key for ``eps``; may be ``None`` when ``deterministic``
            or when ``noise`` is given.
        f: the activation ``f(x)`` (floating point, any shape).
        alpha_logits: the alpha branch's output, same shape as ``f``.
        prior: ``"log-uniform"`` or ``"log-normal"``.
        max_alpha, alpha_min, mean_one, zero_units: as in :class:`InfoDropout`.
        mu, sigma: the log-normal prior's parameters (default 0 and 1); may be traced.
        deterministic: return ``f`` unchanged (the KL is still computed).
        noise: the standard-normal ``eps`` to use instead of drawing it.

    Returns:
        ``(z, kl)``: ``z`` like ``f``; ``kl`` per unit, like ``f`` but float32 for
        half-precision inputs.

    Raises:
        ValueError, TypeError: for bad options, non-float inputs, mismatched
        shapes, or ``key=None`` when a draw is needed.
    """
    spec = InfoDropoutSpec(
        prior=prior, max_alpha=max_alpha, alpha_min=alpha_min, mean_one=mean_one, zero_units=zero_units
    )
    _check_float("f", f)
    _check_float("alpha_logits", alpha_logits)
    check_same_shape(jnp.shape(f), jnp.shape(alpha_logits))
    return _chain(
        spec,
        None,
        key,
        jnp.asarray(f),
        jnp.asarray(alpha_logits),
        mu=mu,
        sigma=sigma,
        deterministic=deterministic,
        noise=noise,
    )


def _chain(
    spec: InfoDropoutSpec,
    activation: str | None,
    key: jax.Array | None,
    h: jax.Array,
    alpha_logits: jax.Array,
    *,
    mu: Any,
    sigma: Any,
    deterministic: bool,
    noise: jax.Array | None,
) -> tuple[jax.Array, jax.Array]:
    """``(z, kl)`` of ``act(h)`` (``h`` when ``activation`` is None) by the custom-VJP kernel."""
    kl_dtype = _compute_dtype(h)
    mu_sigma = (None, None)
    if spec.prior == "log-normal":
        mu_sigma = (
            jnp.asarray(0.0 if mu is None else mu, dtype=kl_dtype),
            jnp.asarray(1.0 if sigma is None else sigma, dtype=kl_dtype),
        )
    draw = not deterministic and noise is None
    if deterministic:
        noise = None
    elif draw:
        noise = _need_key(key)
    else:
        noise = jnp.asarray(noise, dtype=kl_dtype)
    cfg = _kernel.Config(spec, activation, not deterministic, draw, kl_dtype)
    return _kernel.info_dropout_chain(cfg, h, alpha_logits, noise, *mu_sigma)


def gaussian_kl(mu: jax.Array, scale: jax.Array) -> jax.Array:
    r"""Per-unit ``KL(N(mu, scale^2) || N(0, 1))``, the VAE's latent term (Sec. 5).

    Float32 at least for half-precision inputs. See :func:`idrop.core.kl_divergence`.
    """
    _check_float("mu", mu)
    mu = jnp.asarray(mu)
    dtype = _compute_dtype(mu)
    posterior = GaussianPosterior(mu.astype(dtype), jnp.asarray(scale, dtype=dtype))
    return _kl_divergence(posterior, StandardNormalPrior(), xp=xp)


def _baseline(law: str, f: jax.Array, raw: jax.Array, **params: Any) -> jax.Array:
    """Apply a registered baseline law in float32 at least, returning ``f``'s dtype."""
    dtype = _compute_dtype(f)
    out = _noise.NOISE_LAWS[law].apply(f.astype(dtype), jnp.asarray(raw, dtype=dtype), xp=xp, **params)
    return out.astype(f.dtype)


def binary_dropout(
    key: jax.Array | None,
    f: jax.Array,
    rate: float = 0.5,
    *,
    deterministic: bool = False,
    noise: jax.Array | None = None,
) -> jax.Array:
    """Binary dropout; ``noise`` is the standard-uniform draw (keep where ``noise >= rate``)."""
    rate = check_probability("rate", rate)
    _check_float("f", f)
    f = jnp.asarray(f)
    if deterministic or rate == 0.0:
        return f
    if noise is None:
        noise = jax.random.uniform(_need_key(key), f.shape, dtype=_compute_dtype(f))
    return _baseline("binary", f, noise, rate=rate)


def gaussian_dropout(
    key: jax.Array | None,
    f: jax.Array,
    rate: float = 0.5,
    *,
    deterministic: bool = False,
    noise: jax.Array | None = None,
) -> jax.Array:
    """Gaussian dropout ``f * (1 + sqrt(rate/(1-rate)) * eps)``; ``noise`` is ``eps``."""
    rate = check_probability("rate", rate)
    _check_float("f", f)
    f = jnp.asarray(f)
    if deterministic or rate == 0.0:
        return f
    if noise is None:
        noise = jax.random.normal(_need_key(key), f.shape, dtype=_compute_dtype(f))
    return _baseline("gaussian", f, noise, rate=rate)


def lognormal_dropout(
    key: jax.Array | None,
    f: jax.Array,
    alpha: float = 0.7,
    *,
    mean_one: bool = False,
    deterministic: bool = False,
    noise: jax.Array | None = None,
) -> jax.Array:
    """Log-normal dropout with one fixed ``alpha``: ``f * exp(alpha * eps)``."""
    alpha = check_nonnegative("alpha", alpha)
    mean_one = InfoDropoutSpec(mean_one=mean_one).mean_one
    _check_float("f", f)
    f = jnp.asarray(f)
    if deterministic:
        return f
    if noise is None:
        noise = jax.random.normal(_need_key(key), f.shape, dtype=_compute_dtype(f))
    return _baseline("lognormal", f, noise, alpha=alpha, mean_one=mean_one)
