"""Flax NNX model surgery: a small CNN trained a few steps keeps its evaluation outputs through
to_info_dropout and strip_info_dropout."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from idrop.backends.jax import InfoDropout, kl_loss, strip_info_dropout, to_info_dropout  # noqa: E402


def _flatten(x):
    return x.reshape(x.shape[0], -1)


@pytest.fixture(scope="module")
def trained():
    r = nnx.Rngs(0)
    net = nnx.Sequential(
        nnx.Conv(1, 4, (3, 3), padding="VALID", rngs=r), nnx.BatchNorm(4, rngs=r), nnx.relu,
        nnx.Conv(4, 4, (3, 3), padding="VALID", rngs=r), nnx.softplus, nnx.Dropout(0.2, rngs=r),
        _flatten, nnx.Linear(64, 16, rngs=r), nnx.relu, nnx.Linear(16, 3, rngs=r),
    )  # fmt: skip
    x, y = jax.random.normal(jax.random.key(1), (8, 8, 8, 1), dtype=jnp.float32), jnp.arange(8) % 3
    opt = nnx.Optimizer(net, optax.sgd(0.1), wrt=nnx.Param)
    for _ in range(3):
        grads = nnx.grad(lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean())(net)
        opt.update(net, grads)
    net.eval()
    return net, x


def test_outputs_equal_before_wrapping_after_wrapping_and_after_stripping(trained):
    net, x = trained
    want = np.asarray(net(x))
    wrapped = to_info_dropout(net, rngs=nnx.Rngs(5))
    assert [type(m).__name__ for m in wrapped.layers][:3] == ["InfoDropout", "InfoDropout", "Dropout"]
    wrapped.eval()
    np.testing.assert_allclose(wrapped(x), want, rtol=1e-6, atol=1e-6)
    assert wrapped.layers[0].layer is not net.layers[0]  # nnx.clone: the source is untouched
    stripped = strip_info_dropout(wrapped)
    assert not any(isinstance(m, InfoDropout) for _, m in nnx.iter_modules(stripped))
    assert len(stripped.layers) == len(net.layers)
    np.testing.assert_allclose(stripped(x), want, rtol=1e-6, atol=1e-6)
    wrapped.train()
    wrapped(x)
    assert float(kl_loss(wrapped, 100)) > 0


def test_options_and_errors(trained):
    net, _ = trained
    only = to_info_dropout(net, rngs=nnx.Rngs(0), layers="layers.7", max_alpha=0.5)
    assert isinstance(only.layers[7], InfoDropout) and only.layers[7].spec.max_alpha == 0.5
    by_dropout = to_info_dropout(net, rngs=nnx.Rngs(0), replace="dropout")
    assert [type(m).__name__ for m in by_dropout.layers][3:5] == ["InfoDropout", "function"]
    with pytest.raises(ValueError, match=r"such maps here: \['layers.0', 'layers.3', 'layers.7'\]"):
        to_info_dropout(net, rngs=nnx.Rngs(0), layers=["layers.9"])
    with pytest.raises(ValueError, match="argument `replace`"):
        to_info_dropout(net, rngs=nnx.Rngs(0), replace="everything")
