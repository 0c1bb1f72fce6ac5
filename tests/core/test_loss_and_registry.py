"""The loss assembly (eq. 5) and the KL and noise registries."""

import numpy as np
import pytest

from idrop.core import (
    KL_REGISTRY,
    NOISE_LAWS,
    ib_loss,
    kl_divergence,
    kl_term,
    per_sample_kl,
    register_kl,
    register_noise,
)
from idrop.core.priors import LogNormalPosterior, LogUniformPrior


def test_kl_term_is_sum_of_batch_means_over_n_train():
    kl_a = per_sample_kl(np.ones((4, 3, 2)), xp=np)
    kl_b = np.array([1.0, 3.0])
    assert kl_a.tolist() == [6.0] * 4
    assert kl_term([kl_a, kl_b], n_train=10, xp=np) == pytest.approx((6.0 + 2.0) / 10)
    assert ib_loss(1.5, [kl_a, kl_b], beta=3.0, n_train=10, xp=np) == pytest.approx(1.5 + 3.0 * 0.8)


def test_registering_twice_is_an_error():
    with pytest.raises(KeyError, match="registered already"):
        register_kl(LogNormalPosterior, LogUniformPrior)(lambda *a, **k: None)
    with pytest.raises(KeyError, match="registered already"):
        register_noise("binary", "uniform", "")(lambda *a, **k: None)


def test_unknown_pair_is_not_implemented():
    with pytest.raises(NotImplementedError, match="No KL registered"):
        kl_divergence(object(), LogUniformPrior(), xp=np)


def test_registries_list_the_papers_laws():
    assert set(NOISE_LAWS) == {"information", "lognormal", "binary", "gaussian"}
    assert len(KL_REGISTRY) == 3
