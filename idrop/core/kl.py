"""KL divergences, registered by (posterior type, prior type).

In the style of ``torch.distributions.kl.register_kl`` and TFP's ``RegisterKL``:
each closed form is a function ``_kl_<posterior>_<prior>``; registering a pair
twice is an error; :func:`kl_divergence` dispatches on the exact types. The
result is per unit (same shape as the posterior's parameters).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ._xp import Array, Namespace
from .priors import (
    GaussianPosterior,
    LogNormalPosterior,
    LogNormalPrior,
    LogUniformPrior,
    StandardNormalPrior,
)

#: Floor of ``f`` before its log in the log-normal prior (official code).
LOG_FLOOR = 1e-4

KL_REGISTRY: dict[tuple[type, type], Callable[..., Array]] = {}


def register_kl(posterior_type: type, prior_type: type) -> Callable[[Callable], Callable]:
    """Register the closed-form KL of ``posterior_type`` against ``prior_type``."""

    def decorator(fn: Callable) -> Callable:
        key = (posterior_type, prior_type)
        if key in KL_REGISTRY:
            raise KeyError(f"KL({posterior_type.__name__} || {prior_type.__name__}) is registered already")
        KL_REGISTRY[key] = fn
        return fn

    return decorator


def kl_divergence(posterior: object, prior: object, *, xp: Namespace) -> Array:
    """Per-unit ``KL(posterior || prior)`` by the registered closed form.

    Raises:
        NotImplementedError: if no closed form is registered for the pair.
    """
    key = (type(posterior), type(prior))
    try:
        fn = KL_REGISTRY[key]
    except KeyError:
        raise NotImplementedError(
            f"No KL registered for ({key[0].__name__}, {key[1].__name__}); "
            f"known pairs: {[(a.__name__, b.__name__) for a, b in KL_REGISTRY]}"
        ) from None
    return fn(posterior, prior, xp=xp)


@register_kl(LogNormalPosterior, LogUniformPrior)
def _kl_lognormal_loguniform(posterior: LogNormalPosterior, prior: LogUniformPrior, *, xp: Namespace) -> Array:
    r"""KL of the log-normal noise against the log-uniform prior (Prop. 1, eq. 3).

    .. math::
        \mathrm{KL} = -\log\alpha + c
        = \log(\alpha_{\max} + \alpha_{\min}) - \log\alpha \;\ge 0,

    with the constant chosen, as in the official code, so the KL is 0 at the
    largest reachable alpha. The mean-1 form shifts ``log z`` only, which a
    log-uniform prior does not see. With ``zero_units="mask"`` units whose
    ``f == 0`` get 0 (the paper's ``-log q`` constant, dropped).
    """
    kl = math.log(prior.max_alpha + prior.alpha_min) - xp.log(posterior.alpha)
    if prior.zero_units == "mask":
        kl = xp.where(posterior.f > 0, kl, xp.zeros_like(kl))
    return kl


@register_kl(LogNormalPosterior, LogNormalPrior)
def _kl_lognormal_lognormal(posterior: LogNormalPosterior, prior: LogNormalPrior, *, xp: Namespace) -> Array:
    r"""KL of ``log z ~ N(m, alpha^2)`` against ``N(mu, sigma^2)`` (Prop. 2, eq. 4).

    .. math::
        \mathrm{KL} = \tfrac12\Big(\tfrac{\alpha^2}{\sigma^2}
        + \tfrac{(m - \mu)^2}{\sigma^2} - 1\Big) + \log\sigma - \log\alpha,
        \qquad m = \log\max(f, 10^{-4})

    This is the Gaussian KL of the logs, with the mean term the official code
    keeps (``KL_div2``). In the mean-1 form ``m`` is ``log f - alpha^2 / 2``.
    """
    alpha, sigma, mu = posterior.alpha, prior.sigma, prior.mu
    # where, not maximum: the floor passes no gradient to the clamped side, also at f == floor
    # exactly (DESIGN.md section 1, "Derivatives at kinks"; idrop.core.vjp keeps the same rule).
    m = xp.log(xp.where(posterior.f > LOG_FLOOR, posterior.f, LOG_FLOOR * xp.ones_like(posterior.f)))
    if posterior.mean_one:
        m = m - 0.5 * xp.square(alpha)
    ratio = xp.square(alpha / sigma) + xp.square(m - mu) / xp.square(sigma)
    return 0.5 * (ratio - 1.0) + xp.log(sigma) - xp.log(alpha)


@register_kl(GaussianPosterior, StandardNormalPrior)
def _kl_gaussian_standardnormal(posterior: GaussianPosterior, prior: StandardNormalPrior, *, xp: Namespace) -> Array:
    r"""``KL(N(mu, s^2) || N(0, 1))``, the VAE's latent term (Sec. 5; Kingma & Welling).

    .. math::
        \mathrm{KL} = \tfrac12(\mu^2 + s^2 - 1) - \log s
        = \tfrac12\big(\mu^2 + \mathrm{expm1}(2\log s)\big) - \log s

    The ``expm1`` form keeps full precision when ``s`` is close to 1.
    """
    log_s = xp.log(posterior.scale)
    return 0.5 * (xp.square(posterior.mu) + xp.expm1(2.0 * log_s)) - log_s
