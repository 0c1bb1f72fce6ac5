"""``InfoDropout(alpha_rank=r)``, the cheap alpha branch, in every backend: its maps, its stacked call,
copies and saves, the framework transforms. Values against the reference are in the conformance suite
(``idrop/conformance/test_layers.py::test_low_rank_layer`` and its gradients)."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest

from idrop.core import spec


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# --------------------------------------------------------------------------------- torch --


def test_torch_maps_stack_and_round_trip():
    torch = pytest.importorskip("torch")
    from torch import nn

    from idrop.backends.torch import InfoDropout
    from idrop.backends.torch._maps import both_maps

    torch.manual_seed(0)
    layer = InfoDropout(nn.Conv2d(3, 6, 3, stride=2, padding=1), alpha_rank=2)
    a = layer.alpha_layer
    assert tuple(a.down.weight.shape) == (2, 3, 3, 3) and a.down.bias is None
    assert tuple(a.up.weight.shape) == (6, 2, 1, 1) and a.up.bias is not None
    assert "alpha_rank=2" in repr(layer)
    x, eps = torch.randn(2, 3, 8, 8), torch.randn(2, 6, 4, 4)
    # One stacked convolution (layer and down) gives what the two maps give, batched and not.
    for xi, batched in ((x, True), (x[0], False)):
        h, logits = both_maps(layer.layer, a, xi, stack=True, batched=batched)
        torch.testing.assert_close(h, layer.layer(xi))  # oneDNN may pick another algorithm for out + r channels
        torch.testing.assert_close(logits, a(xi))
    z = layer(x, noise=eps)
    z.sum().backward()
    assert all(p.grad is not None for p in layer.parameters())
    # state_dict, deepcopy and torch.compile give the same z and KL.
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    twin = InfoDropout(nn.Conv2d(3, 6, 3, stride=2, padding=1), alpha_rank=2)
    twin.load_state_dict(torch.load(io.BytesIO(buf.getvalue())))
    assert set(layer.state_dict()) == {
        "layer.weight",
        "layer.bias",
        "alpha_layer.down.weight",
        "alpha_layer.up.weight",
        "alpha_layer.up.bias",
    }
    for other in (twin, copy.deepcopy(layer)):
        torch.testing.assert_close(other(x, noise=eps), layer(x, noise=eps), rtol=0, atol=0)
        torch.testing.assert_close(other.kl, layer.kl, rtol=0, atol=0)
    torch._dynamo.reset()
    torch.testing.assert_close(torch.compile(layer)(x, noise=eps), layer(x, noise=eps))


def test_torch_linear_lazy_unbatched_and_refusals():
    torch = pytest.importorskip("torch")
    from torch import nn

    from idrop.backends.torch import InfoDropout

    layer = InfoDropout(nn.LazyLinear(4), alpha_rank=3)
    z = layer(torch.randn(5))  # unbatched: a 0-d KL
    assert z.shape == (4,) and layer.kl.shape == ()
    assert tuple(layer.alpha_layer.down.weight.shape) == (3, 5)
    with pytest.raises(ValueError) as err:
        InfoDropout(nn.Sequential(nn.Linear(2, 2)), alpha_rank=2)
    assert str(err.value) == str(spec.no_low_rank_map(2, "Sequential", "Linear/Conv1d/2d/3d"))
    with pytest.raises(ValueError, match="`alpha_rank`"):
        InfoDropout(nn.Linear(2, 2), alpha_rank=2, alpha_layer=nn.Linear(2, 2))


# ---------------------------------------------------------------------------- tensorflow --


def test_keras_maps_stack_save_and_config(tmp_path):
    pytest.importorskip("tensorflow")
    import keras

    from idrop.backends.tensorflow import InfoDropout
    from idrop.backends.tensorflow._maps import _low_rank_call

    inputs = keras.Input((8, 8, 3))
    conv = InfoDropout(keras.layers.Conv2D(6, 3, strides=2, padding="same"), alpha_rank=2, name="c", seed=1)
    dense = InfoDropout(keras.layers.Dense(4), alpha_rank=3, name="d", seed=2)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(conv(inputs))))
    assert conv._low_rank_maps and not dense._low_rank_maps  # only a conv runs stacked
    x = _rand(2, 8, 8, 3)
    h, logits = _low_rank_call(conv.layer, conv.alpha_layer, x)
    np.testing.assert_allclose(h, conv.layer(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(logits, conv.alpha_layer(x), rtol=1e-6, atol=1e-6)
    config = dense.get_config()
    assert config["alpha_rank"] == 3 and config["alpha_layer"] is None
    assert InfoDropout.from_config(config).get_config() == config
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded(x), model(x))
    eps = _rand(2, 4, 4, 6, seed=1)
    twin = loaded.get_layer("c")
    np.testing.assert_array_equal(twin(x, training=True, noise=eps), conv(x, training=True, noise=eps))
    np.testing.assert_array_equal(twin.kl, conv.kl)
    assert len(model.trainable_weights) == 2 * 5


def test_keras_xla_gradients_and_refusals():
    tf = pytest.importorskip("tensorflow")
    import keras

    from idrop.backends.tensorflow import InfoDropout

    layer = InfoDropout(keras.layers.Conv2D(4, 3), alpha_rank=2, seed=0)
    x, eps = _rand(2, 6, 6, 3), _rand(2, 4, 4, 4, seed=1)
    eager = layer(x, training=True, noise=eps)

    @tf.function(jit_compile=True)
    def step(x, eps):
        with tf.GradientTape() as tape:
            z = layer(x, training=True, noise=eps)
            loss = tf.reduce_sum(z) + tf.reduce_sum(layer.kl)
        return z, tape.gradient(loss, layer.trainable_variables)

    z, grads = step(x, eps)
    np.testing.assert_allclose(z, eager, rtol=1e-5, atol=1e-5)
    assert len(grads) == 5 and all(g is not None for g in grads)
    with pytest.raises(ValueError) as err:
        InfoDropout(keras.layers.BatchNormalization(), alpha_rank=2)
    assert str(err.value) == str(spec.no_low_rank_map(2, "BatchNormalization", "Dense/Conv1D/2D/3D"))


# ----------------------------------------------------------------------------------- jax --


def test_jax_maps_transforms_and_state():
    pytest.importorskip("flax")
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from idrop.backends.jax import InfoDropout

    rngs = nnx.Rngs(0)
    layer = InfoDropout(nnx.Conv(3, 6, (3, 3), (2, 2), padding=1, rngs=rngs), alpha_rank=2, rngs=rngs)
    a = layer.alpha_layer
    assert a.down.kernel[...].shape == (3, 3, 3, 2) and a.down.bias is None
    assert a.up.kernel[...].shape == (1, 1, 2, 6)
    x, eps = jnp.asarray(_rand(2, 8, 8, 3)), jnp.asarray(_rand(2, 4, 4, 6, seed=1))
    z = layer(x, noise=eps)
    np.testing.assert_array_equal(layer(x[0], noise=eps[0]), z[0])  # unbatched input

    @nnx.jit
    def step(layer, x, eps):
        def loss(layer):
            return layer(x, noise=eps).sum() + layer.kl[...].sum()

        return nnx.grad(loss)(layer)

    grads = step(layer, x, eps)
    assert jnp.abs(grads["alpha_layer"]["down"]["kernel"][...]).sum() > 0
    twin = copy.deepcopy(layer)
    np.testing.assert_array_equal(twin(x, noise=eps), z)
    graph, state = nnx.split(layer)
    np.testing.assert_array_equal(nnx.merge(graph, jax.tree.map(jnp.copy, state))(x, noise=eps), z)
    with pytest.raises(ValueError) as err:
        InfoDropout(nnx.BatchNorm(3, rngs=rngs), alpha_rank=2, rngs=rngs)
    assert str(err.value) == str(spec.no_low_rank_map(2, "BatchNorm", "nnx.Linear/nnx.Conv"))


# ---------------------------------------------------------------------------------- spec --


@pytest.mark.parametrize("value", [0, -2, True, 2.5, "4"])
def test_spec_refuses_bad_ranks(value):
    with pytest.raises(ValueError, match="`alpha_rank`"):
        spec.check_alpha_rank(value)


def test_spec_accepts_ranks_and_refuses_two_branches():
    assert spec.check_alpha_rank(None) is None and spec.check_alpha_rank(np.int64(3)) == 3
    assert spec.check_alpha_rank(None, has_alpha_layer=True) is None
    with pytest.raises(ValueError, match="not both"):
        spec.check_alpha_rank(2, has_alpha_layer=True)
