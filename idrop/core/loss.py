r"""The Information Bottleneck loss (eq. 2 and 5) with the official normalisation.

.. math::
    \mathcal{L} = \text{task loss} + \beta \sum_{\text{layers}}
    \frac{1}{n_\text{train}}\,\mathbb{E}_{\text{batch}}\Big[\sum_{\text{units}} \mathrm{KL}\Big]

``beta`` and ``n_train`` are explicit: the KL of the whole dataset is divided by
its size so that ``beta`` means the same at every batch size (official code).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._xp import Array, Namespace
from .spec import check_beta, check_n_train


def per_sample_kl(kl_per_unit: Array, *, xp: Namespace) -> Array:
    """Sum a per-unit KL over every axis but the first: shape ``[batch]``."""
    return xp.sum(kl_per_unit, axis=tuple(range(1, kl_per_unit.ndim)))


def kl_term(kl_per_sample: Sequence[Array], *, n_train: int, xp: Namespace) -> Array:
    r"""``sum over layers of mean over batch of kl / n_train`` (eq. 5, official code).

    Args:
        kl_per_sample: one ``[batch]`` array per Information Dropout layer.
        n_train: size of the training set (>= 1).
        xp: array namespace.
    """
    n_train = check_n_train(n_train)
    total = 0.0
    for kl in kl_per_sample:
        total = total + xp.mean(kl)
    return total / n_train


def ib_loss(task_loss: Array, kl_per_sample: Sequence[Array], *, beta: float, n_train: int, xp: Namespace) -> Array:
    r"""``task_loss + beta * kl_term`` (eq. 5): the Information Bottleneck Lagrangian."""
    beta = check_beta(beta)
    return task_loss + beta * kl_term(kl_per_sample, n_train=n_train, xp=xp)
