"""The PyTorch adapter's functional ops: ``info_dropout`` (like ``F.dropout``), the baselines'
noise, ``gaussian_kl`` and ``alpha_from_logits`` (re-exported by :mod:`idrop.backends.torch`).

They draw noise with torch's RNG (optionally a ``generator=``) unless ``noise=`` is given, and
check their arguments by the core's rules (docs/design-notes.md sections 1-2).
"""

from __future__ import annotations

from typing import Any

import torch

from idrop.core import functional as _functional
from idrop.core import noise as _noise
from idrop.core.kl import kl_divergence
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
from ._namespace import check_float, compute_dtype, draw_normal, kl_dtype, xp


def check_noise(noise: Any, like: torch.Tensor) -> None:
    """Injected ``noise`` is a float tensor of exactly ``like``'s shape: one draw per unit, never broadcast."""
    if noise is not None:
        check_float("noise", noise)
        check_noise_shape("noise", tuple(noise.shape), tuple(like.shape))


def _prior_param(name: str, value: Any, default: float, like: torch.Tensor) -> torch.Tensor:
    """A log-normal prior parameter as a tensor in the KL's dtype: a Python number (``sigma > 0``) or a
    scalar tensor (the caller's, as the layers' learned ``mu`` and ``exp(log_sigma)``)."""
    if value is None:
        value = default
    elif not isinstance(value, torch.Tensor) and name == "sigma":
        check_prior_scale(name, value)
    elif isinstance(value, torch.Tensor):
        check_scalar_shape(name, tuple(value.shape))
    return torch.as_tensor(value, dtype=compute_dtype(like), device=like.device)


def prior_params(spec: InfoDropoutSpec, f: torch.Tensor, mu: Any, sigma: Any) -> tuple[Any, Any]:
    """``(mu, sigma)`` as tensors in the KL's dtype for the log-normal prior; ``(None, None)`` otherwise."""
    if spec.prior != "log-normal":
        return None, None
    return _prior_param("mu", mu, 0.0, f), _prior_param("sigma", sigma, 1.0, f)


def alpha_from_logits(alpha_logits: torch.Tensor, *, max_alpha: float = 0.7, alpha_min: float = 1e-3) -> torch.Tensor:
    """``alpha = alpha_min + max_alpha * sigmoid(alpha_logits)`` (see :func:`idrop.core.alpha_from_logits`)."""
    spec = InfoDropoutSpec(max_alpha=max_alpha, alpha_min=alpha_min)
    check_float("alpha_logits", alpha_logits)
    return _functional.alpha_from_logits(alpha_logits, max_alpha=spec.max_alpha, alpha_min=spec.alpha_min, xp=xp)


def info_dropout(
    f: torch.Tensor,
    alpha_logits: torch.Tensor,
    *,
    prior: str = "log-uniform",
    max_alpha: float = 0.7,
    alpha_min: float = 1e-3,
    mean_one: bool = False,
    zero_units: str = "count",
    mu: torch.Tensor | float | None = None,
    sigma: torch.Tensor | float | None = None,
    training: bool = True,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Information Dropout of an activation ``f`` given the alpha branch's logits.

    .. math:: z = f\,e^{\alpha\epsilon},\quad \alpha = \alpha_{\min} + \alpha_{\max}\sigma(a),
        \quad \epsilon\sim\mathcal N(0, 1)

    with the per-unit KL of eq. 3 (log-uniform prior) or eq. 4 (log-normal prior).

    Args:
        f: the activation ``f(x)`` (floating point, any shape).
        alpha_logits: the alpha branch's output, same shape as ``f``.
        prior: ``"log-uniform"`` or ``"log-normal"``.
        max_alpha, alpha_min, mean_one, zero_units: as in :class:`InfoDropout`.
        mu, sigma: the log-normal prior's parameters (default 0 and 1): Python numbers (``sigma > 0``)
            or scalar tensors (one value per layer).
        training: apply noise (``True``) or return ``f`` (``False``), like ``F.dropout``.
        noise: the standard-normal ``eps`` to use instead of drawing it, exactly ``f``'s shape.
        generator: RNG for the draw.

    Returns:
        ``(z, kl)``: ``z`` like ``f``; ``kl`` per unit, like ``f`` but float32 for
        half-precision inputs.
    """
    spec = InfoDropoutSpec(
        prior=prior, max_alpha=max_alpha, alpha_min=alpha_min, mean_one=mean_one, zero_units=zero_units
    )
    check_float("f", f)
    check_float("alpha_logits", alpha_logits)
    check_same_shape(f.shape, alpha_logits.shape)
    check_noise(noise, f)
    mu, sigma = prior_params(spec, f, mu, sigma)
    if check_flag("training", training):
        return info_dropout_kernel(
            f,
            alpha_logits,
            spec=spec,
            activation=None,
            reduce=False,
            mu=mu,
            sigma=sigma,
            noise=noise,
            generator=generator,
        )
    return _functional.info_dropout(
        f, alpha_logits, None, spec=spec, mu=mu, sigma=sigma, training=False, kl_dtype=kl_dtype(f), xp=xp
    )


def gaussian_kl(mu: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    r"""Per-unit ``KL(N(mu, scale^2) || N(0, 1))``, the VAE's latent term (Sec. 5).

    Float32 at least for half-precision inputs. See :func:`idrop.core.kl_divergence`.
    """
    check_float("mu", mu)
    check_float("scale", scale)
    dtype = compute_dtype(mu)
    posterior = GaussianPosterior(mu.to(dtype), scale.to(dtype))
    return kl_divergence(posterior, StandardNormalPrior(), xp=xp)


def _baseline(
    law: str, f: torch.Tensor, training: Any, noise: torch.Tensor | None, draw: Any, **params: Any
) -> torch.Tensor:
    """The baselines' one path: check ``f``, ``noise`` and the mode, then apply the registered law
    to ``noise`` (or to ``draw()``, torch's draw) in float32 at least, returning ``f``'s dtype."""
    check_float("f", f)
    check_noise(noise, f)
    if not check_flag("training", training) or params.get("rate") == 0.0:
        return f
    raw = draw() if noise is None else noise
    cd = compute_dtype(f)
    out = _noise.NOISE_LAWS[law].apply(f.to(cd), raw.to(device=f.device, dtype=cd), xp=xp, **params)
    return out.to(f.dtype)


def _uniform(f: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    kw = {} if generator is None else {"generator": generator}  # rand_like: symbolic shapes under compile
    return torch.rand_like(f, dtype=compute_dtype(f), memory_format=torch.contiguous_format, **kw)


def binary_dropout(
    f: torch.Tensor,
    rate: float = 0.5,
    *,
    training: bool = True,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Binary dropout; ``noise`` is the standard-uniform draw (keep where ``noise >= rate``)."""
    rate = check_probability("rate", rate)
    return _baseline("binary", f, training, noise, lambda: _uniform(f, generator), rate=rate)


def gaussian_dropout(
    f: torch.Tensor,
    rate: float = 0.5,
    *,
    training: bool = True,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian dropout ``f * (1 + sqrt(rate/(1-rate)) * eps)``; ``noise`` is ``eps``."""
    rate = check_probability("rate", rate)
    return _baseline("gaussian", f, training, noise, lambda: draw_normal(f, generator), rate=rate)


def lognormal_dropout(
    f: torch.Tensor,
    alpha: float = 0.7,
    *,
    mean_one: bool = False,
    training: bool = True,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Log-normal dropout with one fixed ``alpha`` in ``[0, 1]``: ``f * exp(alpha * eps)``."""
    alpha = check_alpha("alpha", alpha)
    mean_one = check_flag("mean_one", mean_one)
    draw = lambda: draw_normal(f, generator)  # noqa: E731
    return _baseline("lognormal", f, training, noise, draw, alpha=alpha, mean_one=mean_one)
