r"""Diagnostics of Information Dropout layers, written once: alpha statistics and the warn-once rules.

The backends compute, per layer, the per-unit KL (a *KL map*) and ``alpha`` on a batch without
noise; this module reduces them. A unit is *pinned* at a bound when ``sigmoid(a)``, the free part of
``alpha = alpha_min + max_alpha * sigmoid(a)``, is within ``pin_tol`` of 0 or 1: its gradient
through the sigmoid is then at most ``pin_tol`` of the largest, so the unit has stopped learning
its noise (all at ``alpha_min``: the layer transmits everything; all at the top: it transmits
nothing).
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

from ._xp import Array, Namespace
from .spec import invalid

#: Default tolerance of :func:`alpha_stats`: ``sigmoid(a)`` below 0.01 or above 0.99.
PIN_TOL = 0.01
#: Share of units pinned at one bound above which :func:`warn_pinned` warns ("most units").
PINNED_SHARE = 0.5
#: Share of the loss above which :func:`warn_kl_dominates` warns: ``beta * KL`` larger than the task loss.
KL_SHARE = 0.5


class IdropWarning(UserWarning):
    """The category of idrop's own warnings (filter them with ``warnings.filterwarnings``)."""


class AlphaStats(NamedTuple):
    """Alpha of one layer on a batch: its mean, and the shares of units pinned at each bound."""

    mean: Any
    pinned_low: Any
    pinned_high: Any


def check_pin_tol(pin_tol: Any) -> float:
    """``pin_tol`` as a float in ``(0, 0.5)``, or the core's ``ValueError``."""
    import numbers

    if isinstance(pin_tol, bool) or not isinstance(pin_tol, numbers.Real) or not 0 < pin_tol < 0.5:
        raise invalid("pin_tol", "a float in (0, 0.5) (the distance of sigmoid(a) from 0 or 1)", pin_tol)
    return float(pin_tol)


def alpha_stats(
    alpha: Array, *, max_alpha: float, alpha_min: float, pin_tol: float = PIN_TOL, xp: Namespace
) -> AlphaStats:
    """Mean alpha and the shares of units with ``sigmoid(a) <= pin_tol`` or ``>= 1 - pin_tol``.

    ``alpha`` is any array of one layer's per-unit noise scales (an empty one gives NaN means,
    as ``mean`` of nothing is). The shares are over every unit of every sample.
    """
    pin_tol = check_pin_tol(pin_tol)
    free = (alpha - alpha_min) / max_alpha  # sigmoid(a), in [0, 1]
    low = xp.where(free <= pin_tol, xp.ones_like(free), xp.zeros_like(free))
    high = xp.where(free >= 1 - pin_tol, xp.ones_like(free), xp.zeros_like(free))
    return AlphaStats(xp.mean(alpha), xp.mean(low), xp.mean(high))


_warned: set[tuple[str, str]] = set()


def warn_once(rule: str, subject: str, message: str, *, stacklevel: int = 4) -> bool:
    """Emit ``message`` as an :class:`IdropWarning` the first time ``(rule, subject)`` fires in this process."""
    key = (rule, subject)
    if key in _warned:
        return False
    _warned.add(key)
    warnings.warn(message, IdropWarning, stacklevel=stacklevel)
    return True


def reset_warnings() -> None:
    """Forget which warnings were shown, so each may fire once more (for tests and notebooks)."""
    _warned.clear()


def warn_pinned(layer: str, stats: AlphaStats, *, threshold: float = PINNED_SHARE) -> bool:
    """Warn once per layer when most of its units are pinned at one alpha bound; return whether it fired."""
    low, high = float(stats.pinned_low), float(stats.pinned_high)
    if max(low, high) <= threshold:
        return False
    where, hint = (
        ("alpha_min", "the layer lets everything through: raise beta, or check the alpha branch's initialisation")
        if low >= high
        else ("the cap max_alpha", "the layer transmits almost nothing: lower beta or warm it up (beta_schedule)")
    )
    return warn_once(
        "pinned",
        layer,
        f"idrop: {max(low, high):.0%} of the units of layer {layer!r} have alpha pinned at {where}; {hint}.",
    )


def warn_kl_dominates(task_loss: float, kl_term: float, *, threshold: float = KL_SHARE) -> bool:
    """Warn once when ``beta * KL / n_train`` is more than ``threshold`` of the whole loss; return whether it fired."""
    task_loss, kl_term = float(task_loss), float(kl_term)
    total = task_loss + kl_term
    if not total > 0 or kl_term / total <= threshold:
        return False
    return warn_once(
        "kl_dominates",
        "loss",
        f"idrop: the KL term ({kl_term:.4g}) is {kl_term / total:.0%} of the loss (task loss {task_loss:.4g}); "
        "the network may learn to transmit nothing. Lower beta, check n_train (the training-set size), "
        "or warm beta up with beta_schedule.",
    )
