"""The functional ops of the Keras adapter: Information Dropout, its baselines and the Gaussian KL.

Each draws its noise from a ``keras.random.SeedGenerator`` or an int ``seed=`` unless ``noise=``
is given (on the TensorFlow backend with ``tf.random.stateless_*(alg="philox")``, elsewhere with
``keras.random``), and computes the core's formulas (:mod:`idrop.core.functional`,
:mod:`idrop.core.noise`, :mod:`idrop.core.kl`) on the adapter's namespace
:data:`idrop.backends.keras._namespace.xp`. ``idrop.backends.tensorflow`` exports these same functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

from idrop.backends.keras._namespace import (
    check_float,
    check_noise,
    compute_dtype,
    draw_normal,
    draw_uniform,
    dtype_name,
    tensor,
    xp,
)
from idrop.core import functional as _functional
from idrop.core import noise as _noise
from idrop.core.kl import kl_divergence
from idrop.core.priors import GaussianPosterior, StandardNormalPrior
from idrop.core.spec import (
    InfoDropoutSpec,
    check_alpha,
    check_flag,
    check_prior_scale,
    check_probability,
    check_same_shape,
    check_scalar_shape,
)


def alpha_from_logits(alpha_logits: Any, *, max_alpha: float = 0.7, alpha_min: float = 1e-3) -> Any:
    """``alpha = alpha_min + max_alpha * sigmoid(alpha_logits)`` (see :func:`idrop.core.alpha_from_logits`)."""
    spec = InfoDropoutSpec(max_alpha=max_alpha, alpha_min=alpha_min)
    return _functional.alpha_from_logits(
        tensor(alpha_logits), max_alpha=spec.max_alpha, alpha_min=spec.alpha_min, xp=xp
    )


def info_dropout(
    f: Any,
    alpha_logits: Any,
    *,
    prior: str = "log-uniform",
    max_alpha: float = 0.7,
    alpha_min: float = 1e-3,
    mean_one: bool = False,
    zero_units: str = "count",
    mu: Any = None,
    sigma: Any = None,
    training: bool = True,
    noise: Any = None,
    seed: Any = None,
) -> tuple[Any, Any]:
    r"""Information Dropout of an activation ``f`` given the alpha branch's logits.

    .. math:: z = f\,e^{\alpha\epsilon},\quad \alpha = \alpha_{\min} + \alpha_{\max}\sigma(a),
        \quad \epsilon\sim\mathcal N(0, 1)

    with the per-unit KL of eq. 3 (log-uniform prior) or eq. 4 (log-normal prior).

    Args:
        f: the activation ``f(x)`` (floating point, any shape).
        alpha_logits: the alpha branch's output, same shape as ``f``.
        prior: ``"log-uniform"`` or ``"log-normal"``.
        max_alpha, alpha_min, mean_one, zero_units: as in :class:`InfoDropout`.
        mu, sigma: the log-normal prior's parameters (default 0 and 1): numbers (``sigma > 0``)
            or 0-d (or shape ``(1,)``) tensors, one prior per layer.
        training: apply noise (``True``) or return ``f`` (``False``).
        noise: the standard-normal ``eps`` to use instead of drawing it, shaped exactly like ``f``.
        seed: a ``keras.random.SeedGenerator`` (advances on each draw; use this in
            loops and under ``tf.function``/``jax.jit``) or an int (the same draw every call).

    Returns:
        ``(z, kl)``: ``z`` like ``f``; ``kl`` per unit, like ``f`` but float32 for
        half-precision inputs.
    """
    spec = InfoDropoutSpec(
        prior=prior, max_alpha=max_alpha, alpha_min=alpha_min, mean_one=mean_one, zero_units=zero_units
    )
    training = check_flag("training", training)
    f, alpha_logits = tensor(f), tensor(alpha_logits)
    check_float("f", f)
    check_float("alpha_logits", alpha_logits)
    check_same_shape(f.shape, alpha_logits.shape)
    # torch promotes; TensorFlow does not: one rule on every Keras backend
    if dtype_name(alpha_logits) != dtype_name(f):
        alpha_logits = ops.cast(alpha_logits, dtype_name(f))
    kl_dtype = compute_dtype(f)
    if spec.prior == "log-normal":
        mu = _prior_parameter("mu", 0.0 if mu is None else mu, kl_dtype)
        sigma = _prior_parameter("sigma", 1.0 if sigma is None else sigma, kl_dtype)
    eps = None
    if training:
        eps = draw_normal(f, seed) if noise is None else _noise_like(f, noise, kl_dtype)
    return _functional.info_dropout(
        f,
        alpha_logits,
        eps,
        spec=spec,
        mu=mu,
        sigma=sigma,
        training=training,
        kl_dtype=kl_dtype if kl_dtype != dtype_name(f) else None,
        xp=xp,
    )


def _prior_parameter(name: str, value: Any, dtype: str) -> Any:
    """``mu`` or ``sigma`` as a tensor: a number (``sigma > 0``), or a scalar tensor (one prior per layer)."""
    # A Python or NumPy scalar (not a tensor or array) is checked as a number.
    if isinstance(value, np.generic) or not hasattr(value, "shape"):
        if name == "sigma":
            value = check_prior_scale(name, value)
        return tensor(float(value), dtype)
    value = tensor(value, dtype)
    check_scalar_shape(name, tuple(value.shape))
    return value


def _noise_like(f: Any, noise: Any, dtype: str) -> Any:
    """Injected noise as a ``dtype`` tensor, refused unless shaped exactly like ``f``."""
    noise = tensor(noise, dtype)
    check_noise("noise", noise, f.shape)
    return noise


def gaussian_kl(mu: Any, scale: Any) -> Any:
    r"""Per-unit ``KL(N(mu, scale^2) || N(0, 1))``, the VAE's latent term (Sec. 5).

    Float32 at least for half-precision inputs. See :func:`idrop.core.kl_divergence`.
    """
    mu, scale = tensor(mu), tensor(scale)
    check_float("mu", mu)
    dtype = compute_dtype(mu)
    posterior = GaussianPosterior(ops.cast(mu, dtype), ops.cast(scale, dtype))
    return kl_divergence(posterior, StandardNormalPrior(), xp=xp)


def _baseline(law: str, f: Any, training: Any, noise: Any, draw: Any, **params: Any) -> Any:
    """The baselines' one path: check ``f`` and the mode, then apply the registered law to ``noise``
    (or to ``draw(f)``, the seeded draw) in float32 at least, returning ``f``'s dtype."""
    training = check_flag("training", training)
    f = tensor(f)
    check_float("f", f)
    if not training or params.get("rate") == 0.0:
        return f
    cd = compute_dtype(f)
    raw = draw(f) if noise is None else _noise_like(f, noise, cd)
    out = _noise.NOISE_LAWS[law].apply(ops.cast(f, cd), tensor(raw, cd), xp=xp, **params)
    return ops.cast(out, dtype_name(f))


def binary_dropout(f: Any, rate: float = 0.5, *, training: bool = True, noise: Any = None, seed: Any = None) -> Any:
    """Binary dropout; ``noise`` is the standard-uniform draw (keep where ``noise >= rate``)."""
    rate = check_probability("rate", rate)
    return _baseline("binary", f, training, noise, lambda t: draw_uniform(t, seed), rate=rate)


def gaussian_dropout(f: Any, rate: float = 0.5, *, training: bool = True, noise: Any = None, seed: Any = None) -> Any:
    """Gaussian dropout ``f * (1 + sqrt(rate/(1-rate)) * eps)``; ``noise`` is ``eps``."""
    rate = check_probability("rate", rate)
    return _baseline("gaussian", f, training, noise, lambda t: draw_normal(t, seed), rate=rate)


def lognormal_dropout(
    f: Any, alpha: float = 0.7, *, mean_one: bool = False, training: bool = True, noise: Any = None, seed: Any = None
) -> Any:
    """Log-normal dropout with one fixed ``alpha``: ``f * exp(alpha * eps)``."""
    alpha = check_alpha("alpha", alpha)
    mean_one = check_flag("mean_one", mean_one)
    draw = lambda t: draw_normal(t, seed)  # noqa: E731
    return _baseline("lognormal", f, training, noise, draw, alpha=alpha, mean_one=mean_one)
