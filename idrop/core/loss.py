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


def per_sample_kl(kl_per_unit: Array, *, batched: bool = True, xp: Namespace) -> Array:
    """Sum a per-unit KL over every axis but the batch axis: shape ``[batch]``.

    ``batched=False`` is for an input without a batch axis (a torch ``Linear`` on a 1-D
    input, say): the whole KL is one sample's, a 0-d array, which :func:`kl_term` counts
    as a batch of one (docs/design-notes.md, "KL bookkeeping").
    """
    if not batched:
        return xp.sum(kl_per_unit)
    return xp.sum(kl_per_unit, axis=tuple(range(1, kl_per_unit.ndim)))


def batch_mean(kl: Array, *, xp: Namespace) -> Array:
    """Mean of a per-sample KL over its batch; a 0-d KL is one sample; an empty batch gives 0.

    ``mean`` of nothing is NaN, which would make the whole loss NaN for a batch that happens to
    be empty (the last batch of a filtered stream, say); an empty batch carries no information,
    so it contributes 0 (docs/design-notes.md, "KL bookkeeping").
    """
    if kl.ndim == 0:
        return kl
    n = kl.shape[0]
    if n == 0:
        return xp.sum(kl)  # 0, in kl's dtype, on kl's device, still differentiable
    return xp.mean(kl)


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
        total = total + batch_mean(kl, xp=xp)
    return total / n_train


def ib_loss(task_loss: Array, kl_per_sample: Sequence[Array], *, beta: float, n_train: int, xp: Namespace) -> Array:
    r"""``task_loss + beta * kl_term`` (eq. 5): the Information Bottleneck Lagrangian."""
    beta = check_beta(beta)
    return task_loss + beta * kl_term(kl_per_sample, n_train=n_train, xp=xp)
