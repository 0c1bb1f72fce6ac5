"""The pure functions: ``info_dropout``, the baselines' noise, ``gaussian_kl``, ``alpha_from_logits``.

Noise comes from an explicit ``key`` (or injected ``noise``), as in Equinox; every option is a
static Python value, validated by :mod:`idrop.core.spec` at trace time (the same messages as
every backend). Safe under ``jit``, ``grad``, ``vmap`` and ``checkpoint``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from idrop.core import functional as _functional
from idrop.core import noise as _noise
from idrop.core.kl import kl_divergence as _kl_divergence
from idrop.core.priors import GaussianPosterior, StandardNormalPrior
from idrop.core.spec import (
    InfoDropoutSpec,
    check_alpha,
    check_flag,
    check_noise_shape,
    check_prior_scale,
    check_probability,
    check_same_shape,
    check_scalar_shape,
)

from ._kernel import info_dropout_kernel
from ._namespace import check_array, check_float, draw_normal, draw_uniform, kl_dtype, need_key, xp


def alpha_from_logits(alpha_logits: jax.Array, *, max_alpha: float = 0.7, alpha_min: float = 1e-3) -> jax.Array:
    """``alpha = alpha_min + max_alpha * sigmoid(alpha_logits)`` (see :func:`idrop.core.alpha_from_logits`)."""
    spec = InfoDropoutSpec(max_alpha=max_alpha, alpha_min=alpha_min)
    return _functional.alpha_from_logits(alpha_logits, max_alpha=spec.max_alpha, alpha_min=spec.alpha_min, xp=xp)


def check_noise(noise: Any, shape: tuple[int, ...]) -> None:
    """Injected noise: a float array of exactly ``shape`` (a broadcastable one would share draws)."""
    check_array("noise", noise)
    check_float("noise", noise)
    check_noise_shape("noise", np.shape(noise), shape)


def _prior_parameter(name: str, value: Any) -> Any:
    """``mu``/``sigma``: None (the default), a Python number (``sigma > 0``), or a 0-d / ``(1,)`` array."""
    if value is None:
        return None
    # A Python or NumPy scalar (not an array) is checked as a number.
    if isinstance(value, np.generic) or not hasattr(value, "shape"):
        return check_prior_scale(name, value) if name == "sigma" else value
    check_array(name, value)
    check_scalar_shape(name, np.shape(value))
    return value


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
        f: the activation ``f(x)`` (a floating-point array, any shape).
        alpha_logits: the alpha branch's output, same shape as ``f``.
        prior: ``"log-uniform"`` or ``"log-normal"``.
        max_alpha, alpha_min, mean_one, zero_units: as in :class:`InfoDropout`.
        mu, sigma: the log-normal prior's parameters (default 0 and 1): Python numbers
            (``sigma > 0``) or 0-d arrays (one value per layer), which may be traced.
        deterministic: return ``f`` unchanged (the KL is still computed).
        noise: the standard-normal ``eps`` to use instead of drawing it, shaped like ``f``.

    Returns:
        ``(z, kl)``: ``z`` like ``f``; ``kl`` per unit, like ``f`` but float32 for
        half-precision inputs.

    Raises:
        ValueError, TypeError: for bad options, non-array or non-float inputs, mismatched
            shapes, or ``key=None`` when a draw is needed.
    """
    spec = InfoDropoutSpec(
        prior=prior, max_alpha=max_alpha, alpha_min=alpha_min, mean_one=mean_one, zero_units=zero_units
    )
    deterministic = check_flag("deterministic", deterministic)
    for name, value in (("f", f), ("alpha_logits", alpha_logits)):
        check_array(name, value)
        check_float(name, value)
    check_same_shape(np.shape(f), np.shape(alpha_logits))
    mu, sigma = _prior_parameter("mu", mu), _prior_parameter("sigma", sigma)
    if noise is not None:
        check_noise(noise, np.shape(f))
    return info_dropout_kernel(
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


def gaussian_kl(mu: jax.Array, scale: jax.Array) -> jax.Array:
    r"""Per-unit ``KL(N(mu, scale^2) || N(0, 1))``, the VAE's latent term (Sec. 5).

    Float32 at least for half-precision inputs. See :func:`idrop.core.kl_divergence`.
    """
    check_array("mu", mu)
    check_float("mu", mu)
    mu = jnp.asarray(mu)
    dtype = kl_dtype(mu.dtype)
    posterior = GaussianPosterior(mu.astype(dtype), jnp.asarray(scale, dtype=dtype))
    return _kl_divergence(posterior, StandardNormalPrior(), xp=xp)


def _noisy(f: Any, deterministic: Any, noise: Any) -> tuple[jax.Array, bool]:
    """The baselines' common checks: ``f`` a float array, ``deterministic`` a flag, ``noise`` shaped like ``f``."""
    check_array("f", f)
    check_float("f", f)
    deterministic = check_flag("deterministic", deterministic)
    if noise is not None:
        check_noise(noise, np.shape(f))
    return jnp.asarray(f), deterministic


def _baseline(law: str, f: Any, deterministic: Any, noise: Any, draw: Any, **params: Any) -> jax.Array:
    """The baselines' one path: check ``f``, ``noise`` and the mode, then apply the registered law to
    ``noise`` (or to ``draw(shape, dtype)``) in float32 at least, returning ``f``'s dtype."""
    f, deterministic = _noisy(f, deterministic, noise)
    if deterministic or params.get("rate") == 0.0:
        return f
    dtype = kl_dtype(f.dtype)
    raw = draw(f.shape, dtype) if noise is None else noise
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
    draw = lambda shape, dtype: draw_uniform(need_key(key), shape, dtype)  # noqa: E731
    return _baseline("binary", f, deterministic, noise, draw, rate=rate)


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
    draw = lambda shape, dtype: draw_normal(need_key(key), shape, dtype)  # noqa: E731
    return _baseline("gaussian", f, deterministic, noise, draw, rate=rate)


def lognormal_dropout(
    key: jax.Array | None,
    f: jax.Array,
    alpha: float = 0.7,
    *,
    mean_one: bool = False,
    deterministic: bool = False,
    noise: jax.Array | None = None,
) -> jax.Array:
    """Log-normal dropout with one fixed ``alpha`` in ``[0, 1]``: ``f * exp(alpha * eps)``."""
    alpha = check_alpha("alpha", alpha)
    mean_one = check_flag("mean_one", mean_one)
    draw = lambda shape, dtype: draw_normal(need_key(key), shape, dtype)  # noqa: E731
    return _baseline("lognormal", f, deterministic, noise, draw, alpha=alpha, mean_one=mean_one)
