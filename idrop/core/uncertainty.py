r"""Monte-Carlo predictive statistics from sampled class probabilities (written once, over ``xp``).

With ``S`` stochastic forward passes ``p_s = p(y | x, eps_s)`` (the noise on, everything else in
evaluation), the predictive distribution is their mean and its uncertainty splits in two
(Gal 2016, sec. 3.3; Depeweg et al. 2018):

.. math::
    \bar p = \frac1S \sum_s p_s, \qquad
    H[\bar p] = -\sum_c \bar p_c \log \bar p_c \ \text{(total)}, \qquad
    I = H[\bar p] - \frac1S \sum_s H[p_s] \ \text{(mutual information: the epistemic part)}.

The backends draw the samples in chunks to bound memory. Each chunk is reduced at once to
``(n, mean, m2, mean entropy)`` and chunks are merged with Chan et al.'s pairwise update, so the
standard deviation never suffers the cancellation of ``E[p^2] - E[p]^2``, and the result of a
chunked run equals the one-chunk run up to float rounding.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._xp import Array, Namespace


class MCPrediction(NamedTuple):
    """What ``mc_predict`` returns in every backend (arrays of that backend).

    Attributes:
        mean: predictive probabilities ``mean over samples of p_s``, shape ``[batch, classes]``.
        std: their standard deviation over the samples (``ddof=0``), same shape.
        entropy: predictive entropy ``H[mean]`` in nats, shape ``[batch]`` (total uncertainty).
        mutual_information: ``H[mean] - mean_s H[p_s]`` in nats, shape ``[batch]`` (epistemic part).
    """

    mean: Any
    std: Any
    entropy: Any
    mutual_information: Any


class ChunkStats(NamedTuple):
    """Sufficient statistics of some samples: their count, mean, sum of squared deviations, mean entropy."""

    n: int
    mean: Any
    m2: Any
    mean_entropy: Any


def entropy(p: Array, *, xp: Namespace) -> Array:
    """``-sum_c p_c log p_c`` over the last axis, with ``0 log 0 = 0``."""
    positive = p > 0
    safe = xp.where(positive, p, xp.ones_like(p))
    return -xp.sum(xp.where(positive, p * xp.log(safe), xp.zeros_like(p)), axis=-1)


def chunk_stats(probs: Array, *, xp: Namespace) -> ChunkStats:
    """Reduce probabilities of shape ``[samples, batch, ..., classes]`` over the sample axis."""
    n = probs.shape[0]
    mean = xp.mean(probs, axis=0)
    m2 = xp.sum(xp.square(probs - mean[None]), axis=0)
    return ChunkStats(n, mean, m2, xp.mean(entropy(probs, xp=xp), axis=0))


def merge_stats(a: ChunkStats | None, b: ChunkStats) -> ChunkStats:
    """Chan, Golub & LeVeque's pairwise merge of two :class:`ChunkStats` (exact, no cancellation)."""
    if a is None:
        return b
    n = a.n + b.n
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.n / n)
    m2 = a.m2 + b.m2 + delta * delta * (a.n * b.n / n)
    mean_entropy = a.mean_entropy + (b.mean_entropy - a.mean_entropy) * (b.n / n)
    return ChunkStats(n, mean, m2, mean_entropy)


def summary(stats: ChunkStats, *, xp: Namespace) -> MCPrediction:
    """The :class:`MCPrediction` of merged statistics; the mutual information is clipped at 0 (rounding)."""
    variance = stats.m2 / stats.n
    std = xp.sqrt(xp.where(variance > 0, variance, xp.zeros_like(variance)))
    total = entropy(stats.mean, xp=xp)
    mi = total - stats.mean_entropy
    return MCPrediction(stats.mean, std, total, xp.where(mi > 0, mi, xp.zeros_like(mi)))


def predictive_summary(probs: Array, *, xp: Namespace) -> MCPrediction:
    """:class:`MCPrediction` of probabilities ``[samples, batch, ..., classes]`` in one chunk."""
    return summary(chunk_stats(probs, xp=xp), xp=xp)


def chunk_bounds(n_samples: int, chunk: int | None) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n_samples)`` in pieces of at most ``chunk`` samples."""
    step = n_samples if chunk is None else min(chunk, n_samples)
    return [(s, min(s + step, n_samples)) for s in range(0, n_samples, step)]


def sample_seed(seed: int, sample: int, call: int, *, joint: bool = False) -> int:
    """A 31-bit seed for the noise of one sample and one layer call, from the user's ``seed``.

    Each sample's noise depends only on ``(seed, sample, call)``, never on how the samples are
    chunked, so ``chunk=`` changes memory use and nothing else. ``numpy.random.SeedSequence``
    mixes the three words (NumPy is the core's one dependency). ``joint=True`` is the seed of one draw
    for a whole chunk starting at ``sample`` (a layer that does not see the batch on its leading axis).
    """
    import numpy as np

    words = (seed, sample, call, 1) if joint else (seed, sample, call)
    return int(np.random.SeedSequence(words).generate_state(1)[0] >> 1)
