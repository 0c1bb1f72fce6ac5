"""KL bookkeeping of the NNX layers (docs/design-notes.md section 3, Flax's sow/pop as the model)."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from idrop.backends import jax as J  # noqa: E402

X = jnp.linspace(-1.0, 1.0, 20, dtype=jnp.float32).reshape(4, 5)


def _layer(din=5, dout=3, seed=1, **kw):
    return J.InfoDropout(nnx.Linear(din, dout, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(0, dropout=seed), **kw)


def test_kl_is_the_latest_calls_and_a_layer_called_twice_counts_twice():
    layer = _layer()
    layer(X)
    first = layer.kl[...]
    layer(X[:2])
    second = layer.kl[...]
    assert second.shape == (2,)  # .kl is the latest call's
    expected = (jnp.mean(first) + jnp.mean(second)) / 10
    np.testing.assert_allclose(J.kl_loss(layer, 10), expected, rtol=1e-6)


def test_collection_clears():
    layer = _layer()
    layer(X)
    assert float(J.kl_loss(layer, 10)) > 0
    assert layer.kl.get_value() is None and layer.kl_pending.get_value() is None
    assert float(J.kl_loss(layer, 10)) == 0.0  # no forward since the last collection
    layer(X)
    assert float(J.ib_loss(jnp.float32(0.0), layer, beta=1.0, n_train=10)) > 0
    assert float(J.ib_loss(jnp.float32(0.0), layer, beta=1.0, n_train=10)) == 0.0


def test_a_layer_not_called_since_the_last_collection_contributes_nothing():
    a, b = _layer(seed=1), _layer(din=3, dout=5, seed=2)
    model = nnx.Sequential(a, b)
    model(X)
    J.kl_loss(model, 1)
    a(X)  # b skipped this time
    kl_a = a.kl[...]
    assert b.kl.get_value() is None
    np.testing.assert_allclose(J.kl_loss(model, 1), jnp.mean(kl_a), rtol=1e-6)


def test_empty_batch_contributes_zero():
    layer = _layer()
    z = layer(jnp.zeros((0, 5), jnp.float32))
    assert z.shape == (0, 3) and layer.kl[...].shape == (0,)
    assert float(J.kl_loss(layer, 10)) == 0.0
    layer(X[:0])
    layer(X)
    kl = layer.kl[...]
    np.testing.assert_allclose(J.ib_loss(jnp.float32(1.0), layer, 1.0, 10), 1.0 + jnp.mean(kl) / 10, rtol=1e-6)


def test_unbatched_input_gives_a_0d_kl_counted_as_one_sample():
    layer = _layer()
    z = layer(X[0])
    assert z.shape == (3,) and layer.kl[...].shape == ()
    kl = layer.kl[...]
    np.testing.assert_allclose(J.kl_loss(layer, 4), kl / 4, rtol=1e-6)
    # The same input as a batch of one gives the same per-sample KL (the KL does not depend on the noise).
    layer(X[:1])
    np.testing.assert_allclose(layer.kl[...], kl[None], rtol=1e-6)
    conv = J.InfoDropout(nnx.Conv(3, 2, (3, 3), rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
    conv(jnp.ones((6, 6, 3), jnp.float32))
    assert conv.kl[...].shape == ()
    conv(jnp.ones((2, 6, 6, 3), jnp.float32))
    assert conv.kl[...].shape == (2,)


def test_evaluation_records_nothing_without_eval_kl_and_replaces_with_it():
    layer = _layer()
    layer(X)
    layer(X, deterministic=True)  # evaluation without eval_kl: nothing recorded, the records dropped
    assert layer.kl.get_value() is None and float(J.kl_loss(layer, 1)) == 0.0

    # Under a plain jax transform a Flax module may not mutate: the evaluation call still runs
    # (as nnx.Dropout does) and leaves the records, the one documented exception to rule 4.
    layer(X)
    kl = layer.kl[...]
    np.testing.assert_array_equal(jax.jit(lambda x: layer(x, deterministic=True))(X), jax.nn.relu(layer.layer(X)))
    np.testing.assert_allclose(J.kl_loss(layer, 1), jnp.mean(kl), rtol=1e-6)

    evaluating = _layer(eval_kl=True, deterministic=True)
    for _ in range(5):
        evaluating(X)
    kl = evaluating.kl[...]
    assert kl.shape == (4,)
    # An evaluation loop that never collects holds one record, not five.
    np.testing.assert_allclose(J.kl_loss(evaluating, 1), jnp.mean(kl), rtol=1e-6)


def test_copies_start_with_no_records():
    layer = _layer()
    layer(X)
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert clone.kl.get_value() is None and clone.kl_pending.get_value() is None
        assert float(J.kl_loss(clone, 1)) == 0.0
        np.testing.assert_array_equal(clone.layer.kernel[...], layer.layer.kernel[...])
        assert clone(X).shape == (4, 3)
    model = copy.deepcopy(nnx.Sequential(layer))
    assert model.layers[0].kl.get_value() is None
    assert layer.kl.get_value() is not None  # the original keeps its records
    assert float(J.kl_loss(layer, 1)) > 0


def test_records_stay_one_scalar_per_layer():
    """A loop that reads .kl itself and never collects holds a 0-d sum, not one array per call."""
    layer = _layer()
    for _ in range(3):
        layer(X)
    assert layer.kl_pending[...].shape == () and layer.kl_pending[...].dtype == jnp.float32


def test_half_precision_records_in_float32_and_float64_in_float64():
    kw = {"dtype": jnp.bfloat16, "param_dtype": jnp.bfloat16}
    layer = J.InfoDropout(nnx.Linear(5, 3, rngs=nnx.Rngs(0), **kw), rngs=nnx.Rngs(1))
    layer(X.astype(jnp.bfloat16))
    assert layer.kl[...].dtype == jnp.float32 and J.kl_loss(layer, 1).dtype == jnp.float32
    kw = {"param_dtype": jnp.float64}
    layer = J.InfoDropout(nnx.Linear(5, 3, rngs=nnx.Rngs(0), **kw), rngs=nnx.Rngs(1))
    layer(X.astype(jnp.float64))
    assert J.kl_loss(layer, 1).dtype == jnp.float64


def test_n_train_accepts_numpy_integers():
    layer = _layer()
    layer(X)
    kl = layer.kl[...]
    np.testing.assert_allclose(J.kl_loss(layer, np.int64(10)), jnp.mean(kl) / 10, rtol=1e-6)
    with pytest.raises(ValueError, match="n_train"):
        J.kl_loss(layer, np.int64(0))
    layer(X)
    with pytest.raises(ValueError, match="beta"):
        J.ib_loss(jnp.float32(0.0), layer, beta=-1.0, n_train=10)
    assert layer.kl_pending.get_value() is not None  # a refused call collected nothing
