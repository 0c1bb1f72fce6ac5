"""Multiplicative noise laws: Information Dropout's log-normal noise and the baselines.

Each law is split the way STYLE.md section 3.1 asks: the backend draws the raw
noise (``eps`` standard normal, or ``u`` standard uniform) with its own RNG, and
the functions here turn it into ``z`` deterministically, identically everywhere.
The registry :data:`NOISE_LAWS` lists every law so the conformance suite can
prove that each one has cases (the guard test).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from ._xp import Array, Namespace
from .spec import check_alpha, check_probability


def lognormal_multiplier(alpha: Array, eps: Array, *, mean_one: bool, xp: Namespace) -> Array:
    r"""Log-normal noise ``exp(alpha * eps)``, or the mean-1 form.

    .. math::
        \epsilon \sim \log\mathcal{N}(0, \alpha^2) = e^{\alpha \cdot \mathrm{eps}}
        \quad\text{(median 1, official code)}, \qquad
        e^{\alpha \cdot \mathrm{eps} - \alpha^2/2} \quad\text{(mean 1, paper's text)}

    Args:
        alpha: noise scale, broadcastable to ``eps``.
        eps: standard-normal draws.
        mean_one: subtract ``alpha**2 / 2`` in the exponent so ``E[noise] = 1``.
        xp: array namespace.
    """
    exponent = alpha * eps
    if mean_one:
        exponent = exponent - 0.5 * alpha * alpha  # alpha may be a Python float
    return xp.exp(exponent)


def lognormal_noise(f: Array, alpha: Array, eps: Array, *, mean_one: bool = False, xp: Namespace) -> Array:
    """Information Dropout's noisy output ``z = f * exp(alpha * eps)`` (Sec. 3, eq. 6)."""
    return f * lognormal_multiplier(alpha, eps, mean_one=mean_one, xp=xp)


def constant_lognormal_noise(f: Array, eps: Array, *, alpha: float, mean_one: bool = False, xp: Namespace) -> Array:
    """Log-normal dropout with one fixed ``alpha`` for every unit (no alpha branch)."""
    alpha = check_alpha("alpha", alpha)  # [0, 1], the bound the adapters apply (design notes, "Bounds")
    return lognormal_noise(f, alpha, eps, mean_one=mean_one, xp=xp)


def bernoulli_noise(f: Array, u: Array, *, rate: float, xp: Namespace) -> Array:
    """Binary dropout: keep a unit when ``u >= rate`` and rescale by ``1 / (1 - rate)``.

    ``u`` is standard uniform on ``[0, 1)``, so ``P(keep) = 1 - rate`` and the
    noise has mean 1 (Srivastava et al. 2014, as in ``torch.nn.Dropout``).
    """
    rate = check_probability("rate", rate)
    keep = xp.where(u >= rate, xp.ones_like(f), xp.zeros_like(f))
    return f * keep * (1.0 / (1.0 - rate))


def gaussian_noise(f: Array, eps: Array, *, rate: float, xp: Namespace) -> Array:
    """Gaussian dropout: ``z = f * (1 + sqrt(rate / (1 - rate)) * eps)``.

    The variance ``rate / (1 - rate)`` matches binary dropout with the same
    ``rate`` (Srivastava et al. 2014, Sec. 10; ``keras.layers.GaussianDropout``).
    """
    rate = check_probability("rate", rate)
    return f * (1.0 + math.sqrt(rate / (1.0 - rate)) * eps)


@dataclasses.dataclass(frozen=True)
class NoiseLaw:
    """One registered noise law: how to turn raw draws into a noisy output.

    Attributes:
        name: registry key.
        apply: the deterministic map ``(f, raw, **params, xp) -> z``.
        raw: ``"normal"`` or ``"uniform"``, the law of the raw draws.
        doc: one line for reports.
    """

    name: str
    apply: Callable[..., Array]
    raw: str
    doc: str


NOISE_LAWS: dict[str, NoiseLaw] = {}


def register_noise(name: str, raw: str, doc: str) -> Callable[[Callable], Callable]:
    """Register a noise law under ``name``; registering a name twice is an error."""

    def decorator(fn: Callable) -> Callable:
        if name in NOISE_LAWS:
            raise KeyError(f"noise law {name!r} is registered already")
        NOISE_LAWS[name] = NoiseLaw(name=name, apply=fn, raw=raw, doc=doc)
        return fn

    return decorator


register_noise("information", "normal", "log-normal, learned alpha")(lognormal_noise)
register_noise("lognormal", "normal", "log-normal, fixed alpha")(constant_lognormal_noise)
register_noise("binary", "uniform", "Bernoulli, rescaled to mean 1")(bernoulli_noise)
register_noise("gaussian", "normal", "Gaussian, mean 1")(gaussian_noise)
