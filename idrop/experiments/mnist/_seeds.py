"""Helpers the MNIST backends share: seeds, minibatch order, error rates (NumPy only)."""

from __future__ import annotations

import numpy as np


def epoch_seed(seed: int, epoch: int) -> int:
    """A 31-bit seed for one epoch of one run.

    Each epoch draws its shuffling and noise from its own seed, so a run resumed
    from the checkpoint of epoch k repeats exactly what an uninterrupted run does
    after epoch k, without saving any RNG state.
    """
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] & 0x7FFFFFFF)


def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The epoch's minibatches as index arrays; the last, smaller batch is kept."""
    perm = np.random.default_rng([seed, epoch, 1]).permutation(n)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


def init_seed(seed: int, width: float, method: str) -> int:
    """Seed of the initial weights: same seed -> same weights for every method of a width."""
    del method  # methods compared at one seed and width start from the same draw where shapes allow
    return int(np.random.SeedSequence([seed, int(width), 7]).generate_state(1)[0] & 0x7FFFFFFF)
