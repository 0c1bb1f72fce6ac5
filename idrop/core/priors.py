"""Posterior and prior families whose KL divergences the core knows.

The noisy representation of one unit is ``z = f * exp(alpha * eps)``, so given
``x`` its log is normal: ``log z ~ N(log f, alpha^2)`` (``log f - alpha^2/2`` in
the mean-1 form). That is :class:`LogNormalPosterior`. The priors are the
paper's: log-uniform for ReLU (Prop. 1), log-normal for Softplus (Prop. 2), and
the standard normal of the VAE (Sec. 5) with its :class:`GaussianPosterior`.
"""

from __future__ import annotations

import dataclasses

from ._xp import Array
from .spec import ZERO_UNITS, check_alpha_min, check_max_alpha, invalid


@dataclasses.dataclass(frozen=True)
class LogNormalPosterior:
    """``z | x = f * logN(0, alpha^2)``: the output of an Information Dropout unit.

    Attributes:
        f: the deterministic activation ``f(x)`` (>= 0).
        alpha: the noise scale, same shape as ``f``.
        mean_one: whether the noise is the mean-1 form (shifts ``log z`` by ``-alpha^2/2``).
    """

    f: Array
    alpha: Array
    mean_one: bool = False


@dataclasses.dataclass(frozen=True)
class GaussianPosterior:
    """``N(mu, scale^2)``, the VAE's encoder distribution (Sec. 5)."""

    mu: Array
    scale: Array


@dataclasses.dataclass(frozen=True)
class LogUniformPrior:
    """``p(log z) = const``: scale-invariant prior for ReLU units (Prop. 1).

    Attributes:
        max_alpha: cap of alpha; the KL is normalised to 0 at ``alpha = max_alpha + alpha_min``.
        alpha_min: floor of alpha.
        zero_units: ``"count"`` or ``"mask"`` (how units with ``f == 0`` are charged).
    """

    max_alpha: float = 0.7
    alpha_min: float = 1e-3
    zero_units: str = "count"

    def __post_init__(self) -> None:
        check_max_alpha(self.max_alpha)
        check_alpha_min(self.alpha_min)
        if self.zero_units not in ZERO_UNITS:
            raise invalid("zero_units", "one of 'count', 'mask'", self.zero_units)


@dataclasses.dataclass(frozen=True)
class LogNormalPrior:
    """``log z ~ N(mu, sigma^2)``: prior for Softplus units (Prop. 2).

    ``mu`` and ``sigma`` are learnable scalars per layer (init 0 and 1). They are
    arrays here so gradients flow through them in the adapters.
    """

    mu: Array = 0.0
    sigma: Array = 1.0


@dataclasses.dataclass(frozen=True)
class StandardNormalPrior:
    """``N(0, 1)``: the VAE's prior on the latent (Sec. 5)."""
