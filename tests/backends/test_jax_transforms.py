"""The NNX layers under JAX's and Flax's transforms, as ``nnx.Dropout`` behaves under them."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from flax import errors as flax_errors  # noqa: E402
from flax import nnx  # noqa: E402

from idrop.backends import jax as J  # noqa: E402

X = jnp.linspace(-1.0, 1.0, 20, dtype=jnp.float32).reshape(4, 5)


def _linear(din=5, dout=3, seed=0):
    return nnx.Linear(din, dout, rngs=nnx.Rngs(seed))


def _layers():
    return [
        J.InfoDropout(_linear(), rngs=nnx.Rngs(0, dropout=1)),
        J.InfoDropout(_linear(), activation="softplus", rngs=nnx.Rngs(0, dropout=1)),
        J.BinaryDropout(_linear(), rngs=nnx.Rngs(dropout=1)),
        J.GaussianDropout(_linear(), rngs=nnx.Rngs(dropout=1)),
        J.LogNormalDropout(_linear(), rngs=nnx.Rngs(dropout=1)),
    ]


def test_evaluation_runs_under_plain_jax_transforms():
    """Deterministic without eval_kl mutates nothing, so jax.jit/grad/vmap/jacrev work as for nnx.Dropout."""
    for layer in _layers():
        layer.eval()
        f = layer(X)
        np.testing.assert_array_equal(jax.jit(lambda x, m=layer: m(x))(X), f)
        np.testing.assert_allclose(jax.vmap(lambda x, m=layer: m(x))(X), f, rtol=1e-6)
        g = jax.grad(lambda x, m=layer: jnp.sum(m(x)))(X)
        assert g.shape == X.shape and bool(jnp.all(jnp.isfinite(g)))
        assert jax.jacrev(lambda x, m=layer: m(x))(X).shape == (4, 3, 4, 5)
        if isinstance(layer, J.InfoDropout):
            assert layer.kl.get_value() is None and layer.kl_pending.get_value() is None


def test_training_under_plain_jax_transforms_raises_as_nnx_dropout_does():
    """Training mutates the RNG stream and the KL records: Flax's TraceContextError, as for nnx.Dropout."""
    for module in (nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=1)), J.InfoDropout(_linear(), rngs=nnx.Rngs(0, dropout=1))):
        for transform in (jax.jit, jax.vmap, jax.grad):
            with pytest.raises(flax_errors.TraceContextError):
                transform(lambda x, m=module: jnp.sum(m(x)))(X)
    # With a call-time key nnx.Dropout draws without mutating anything; InfoDropout still records its KL.
    layer = J.InfoDropout(_linear(), rngs=nnx.Rngs(0, dropout=1))
    with pytest.raises(flax_errors.TraceContextError, match="KLTerm"):
        jax.jit(lambda x, k: layer(x, rngs=k))(X, jax.random.key(0))


def test_a_module_merged_inside_a_plain_jax_transform_trains():
    """The split/merge idiom (the experiments' train steps): plain jax.jit and jax.grad over the state."""
    layer = J.InfoDropout(_linear(), activation="softplus", rngs=nnx.Rngs(0, dropout=1))
    graphdef, params, rest = nnx.split(layer, nnx.Param, ...)

    @jax.jit
    def step(params, rest, key):
        def loss(params):
            m = nnx.merge(graphdef, params, rest, copy=True)
            return jnp.sum(m(X, rngs=key)) + J.kl_loss(m, 10)

        return jax.value_and_grad(loss)(params)

    loss, grads = step(params, rest, jax.random.key(0))
    assert bool(jnp.isfinite(loss)) and float(jnp.abs(grads["mu"][...])) > 0


def test_nnx_jit_training_step_with_the_kl_compiles_once():
    """The KL state is None at every step boundary (collected inside the step): one trace for many steps."""
    import optax

    model = nnx.Sequential(
        J.InfoDropout(_linear(5, 8), activation="softplus", rngs=nnx.Rngs(0, dropout=1)),
        J.InfoDropout(_linear(8, 1, seed=1), rngs=nnx.Rngs(2, dropout=3)),
    )
    opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    y = jnp.sum(X[:, :2], axis=1, keepdims=True)
    traces = []

    @nnx.jit
    def step(model, opt):
        traces.append(1)

        def loss_fn(model):
            return J.ib_loss(jnp.mean((model(X) - y) ** 2), model, beta=1e-2, n_train=4)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss, grads

    for _ in range(4):
        loss, grads = step(model, opt)
    assert len(traces) == 1 and bool(jnp.isfinite(loss))
    # The KL is in the loss: the log-normal prior's mu only gets a gradient through it.
    assert float(jnp.abs(grads.layers[0].mu[...])) > 0


def test_nnx_grad_and_value_and_grad_see_this_calls_kl():
    layer = J.InfoDropout(_linear(), rngs=nnx.Rngs(0, dropout=1))

    def loss(m):
        m(X)
        return J.kl_loss(m, 1)

    value, grads = nnx.value_and_grad(loss)(layer)
    assert float(value) > 0 and float(jnp.sum(jnp.abs(grads.alpha_layer.kernel[...]))) > 0
    assert float(J.kl_loss(layer, 1)) == 0.0  # collected inside the transform


def test_nnx_vmap_per_example_calls_with_state_axes():
    """Broadcast layer, per-example noise: the KL variables need an axis, as any intermediate under nnx.vmap."""
    layer = J.InfoDropout(_linear(), rngs=nnx.Rngs(0, dropout=1))
    axes = nnx.StateAxes({J.KLTerm: 0, "dropout": 0, ...: None})

    @nnx.split_rngs(splits=4, only="dropout")
    @nnx.vmap(in_axes=(axes, 0))
    def per_example(m, x):
        return m(x)

    z = per_example(layer, X)
    assert z.shape == (4, 3)
    kl = layer.kl[...]
    assert kl.shape == (4,)  # one 0-d KL per vmapped (unbatched) example
    np.testing.assert_allclose(J.kl_loss(layer, 2), jnp.mean(kl) / 2, rtol=1e-6)
    # Without an axis for the KL, Flax refuses to broadcast a per-example value.
    with pytest.raises(ValueError, match="batched"):
        nnx.vmap(lambda m, x: m(x), in_axes=(None, 0))(J.InfoDropout(_linear(), rngs=nnx.Rngs(0)), X)


def test_nnx_vmap_ensemble_of_layers():
    @nnx.split_rngs(splits=3)
    @nnx.vmap(in_axes=0, out_axes=0)
    def make(rngs):
        return J.InfoDropout(nnx.Linear(5, 3, rngs=rngs), rngs=rngs)

    ensemble = make(nnx.Rngs(0, dropout=1))
    z = nnx.vmap(lambda m, x: m(x), in_axes=(0, None))(ensemble, X)
    assert z.shape == (3, 4, 3) and ensemble.kl[...].shape == (3, 4)
