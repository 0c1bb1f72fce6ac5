"""``InfoDropout(alpha_rank=r, recompute_alpha=True)``: the cheap branch's ``up`` and the fused kernel
recomputed in backward by the framework's own engine (torch checkpoint, tf.recompute_grad,
jax.checkpoint). Same outputs and gradients as without it, fewer bytes kept, the transforms still work."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from idrop.core import spec


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_spec_refuses_non_flags(value):
    with pytest.raises(ValueError, match="recompute_alpha"):
        spec.check_recompute_alpha(value, alpha_rank=4)


def test_spec_needs_the_cheap_branch():
    assert spec.check_recompute_alpha(False, alpha_rank=None) is False
    assert spec.check_recompute_alpha(True, alpha_rank=3) is True
    with pytest.raises(ValueError, match="pass `alpha_rank` too"):
        spec.check_recompute_alpha(True, alpha_rank=None)


# --------------------------------------------------------------------------------- torch --


def _torch_pair(torch, conv: bool = True, **kw):
    from torch import nn

    from idrop.backends.torch import InfoDropout

    torch.manual_seed(0)
    make = (lambda: nn.Conv2d(3, 6, 3, stride=2, padding=1)) if conv else (lambda: nn.Linear(5, 6))
    plain = InfoDropout(make(), alpha_rank=2, **kw)
    remat = InfoDropout(make(), alpha_rank=2, recompute_alpha=True, **kw)
    remat.load_state_dict(plain.state_dict())
    return plain, remat


def _torch_step(torch, layer, x, seed=None, **call):
    from idrop.backends.torch import ib_loss

    if seed is not None:
        torch.manual_seed(seed)
    layer.zero_grad()
    z = layer(x, **call)
    ib_loss((z * z).mean(), layer, beta=0.1, n_train=10).backward()
    return z.detach(), [p.grad.clone() for p in layer.parameters()]


@pytest.mark.parametrize("case", ["default", "generator", "noise", "linear", "log-normal", "unbatched"])
def test_torch_same_outputs_and_gradients(case):
    torch = pytest.importorskip("torch")
    kw = {"prior": "log-normal", "activation": "softplus"} if case == "log-normal" else {}
    plain, remat = _torch_pair(torch, conv=case != "linear", **kw)
    x = torch.randn(5) if case == "linear" else torch.randn(2, 3, 8, 8)
    x = x[0] if case == "unbatched" else x
    for _ in range(2):  # the second step: the generators advanced alike
        calls = []
        for _layer in (plain, remat):
            call = {}
            if case == "generator":
                call["generator"] = torch.Generator().manual_seed(7)
            if case == "noise":
                call["noise"] = torch.randn(2, 6, 4, 4, generator=torch.Generator().manual_seed(3))
            calls.append(call)
        (za, ga), (zb, gb) = (_torch_step(torch, m, x, seed=11, **c) for m, c in zip((plain, remat), calls))
        torch.testing.assert_close(zb, za, rtol=0, atol=0)
        torch.testing.assert_close(remat.kl, plain.kl, rtol=0, atol=0)
        for a, b in zip(ga, gb):
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)


def test_torch_keeps_fewer_bytes():
    torch = pytest.importorskip("torch")
    from idrop.backends.torch import InfoDropout, ib_loss

    plain, remat = _torch_pair(torch)
    x = torch.randn(2, 3, 16, 16)
    params = {p.untyped_storage().data_ptr() for m in (plain, remat) for p in m.parameters()}

    def kept(layer):
        storages = {}

        def pack(t):
            st = t.untyped_storage()
            if st.data_ptr() not in params:
                storages[st.data_ptr()] = st.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = ib_loss(layer(x).mean(), layer, beta=0.1, n_train=10)
        loss.backward()
        return sum(storages.values())

    # x + (stacked h and a) + the concatenated weight, against x + (stacked h and t) + the weight:
    # the alpha logits (2*6*8*8 floats) are no longer kept, t (2*2*8*8) is.
    assert kept(plain) - kept(remat) == 4 * 2 * 6 * 8 * 8
    assert isinstance(remat, InfoDropout) and "recompute_alpha=True" in repr(remat)


def test_torch_double_backward_compile_copies_and_errors():
    torch = pytest.importorskip("torch")
    from torch import nn

    from idrop.backends.torch import InfoDropout

    plain, remat = _torch_pair(torch)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    eps = torch.randn(2, 6, 4, 4)
    grads = []
    for layer in (plain, remat):  # a gradient penalty: double backward through the recomputation
        (g,) = torch.autograd.grad((layer(x, noise=eps) ** 2).sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad((g * g).sum(), layer.layer.weight)
        grads.append((g.detach(), gg))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-5, atol=1e-5)
    # torch.compile and deepcopy give the same numbers (injected noise: the compiled draw differs).
    torch._dynamo.reset()
    compiled = torch.compile(copy.deepcopy(remat), dynamic=False)
    want = plain(x, noise=eps)
    torch.testing.assert_close(compiled(x, noise=eps), want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(copy.deepcopy(remat)(x, noise=eps), want, rtol=0, atol=0)
    torch._dynamo.reset()
    # evaluation and no_grad skip the recomputation; the option needs the cheap branch.
    with torch.no_grad():
        torch.testing.assert_close(remat(x, noise=eps), want)
    with pytest.raises(ValueError, match="recompute_alpha"):
        InfoDropout(nn.Conv2d(3, 6, 3), recompute_alpha=True)
    with pytest.raises(ValueError, match="recompute_alpha"):
        InfoDropout(nn.Conv2d(3, 6, 3), alpha_rank=2, recompute_alpha="no")


# ----------------------------------------------------------------------------------- jax --


def _jax_pair(conv: bool = True, **kw):
    from flax import nnx

    from idrop.backends.jax import InfoDropout

    def make(seed):
        if conv:
            return nnx.Conv(3, 6, (3, 3), strides=2, rngs=nnx.Rngs(seed))
        return nnx.Linear(5, 6, rngs=nnx.Rngs(seed))

    plain = InfoDropout(make(0), alpha_rank=2, rngs=nnx.Rngs(params=1, dropout=2), **kw)
    remat = InfoDropout(make(0), alpha_rank=2, recompute_alpha=True, rngs=nnx.Rngs(params=1, dropout=2), **kw)
    return plain, remat


def _jax_loss(layer, x, **call):
    from idrop.backends.jax import ib_loss

    z = layer(x, **call)
    return ib_loss((z * z).mean(), layer, beta=0.1, n_train=10), z


@pytest.mark.parametrize("case", ["default", "noise", "linear", "log-normal", "jit"])
def test_jax_same_outputs_and_gradients(case):
    pytest.importorskip("jax")
    import jax
    from flax import nnx

    kw = {"prior": "log-normal", "activation": "softplus"} if case == "log-normal" else {}
    x = _rand(4, 5) if case == "linear" else _rand(2, 8, 8, 3)
    call = {"noise": _rand(2, 4, 4, 6, seed=3)} if case == "noise" else {}
    grad = nnx.value_and_grad(lambda m, x: _jax_loss(m, x, **call), has_aux=True)
    if case == "jit":
        grad = nnx.jit(grad)
    results = []
    for layer in _jax_pair(conv=case != "linear", **kw):
        for _ in range(2):  # two steps: the streams advance alike
            (_, z), g = grad(layer, x)
        results.append((z, g))
    (za, ga), (zb, gb) = results
    np.testing.assert_array_equal(np.asarray(zb), np.asarray(za))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6), ga, gb)


def test_jax_residuals_higher_order_and_transforms():
    pytest.importorskip("jax")
    import jax
    import jax.numpy as jnp
    from flax import nnx

    plain, remat = _jax_pair()
    x = jnp.asarray(_rand(2, 16, 16, 3))
    eps = jnp.asarray(_rand(2, 8, 8, 6, seed=3))

    def residual_bytes(layer):  # as benchmarks/jax_bench.py _residual_bytes: unique buffers, no params
        graphdef, state = nnx.split(layer)
        params = {a.unsafe_buffer_pointer() for a in jax.tree.leaves(nnx.state(layer, nnx.Param))}

        def loss(state):
            return _jax_loss(nnx.merge(graphdef, state), x)

        _, vjp, _ = jax.vjp(loss, state, has_aux=True)
        kept = {a.unsafe_buffer_pointer(): a.nbytes for a in jax.tree.leaves(vjp) if isinstance(a, jax.Array)}
        return sum(n for b, n in kept.items() if b not in params)

    # h (2*8*8*6 floats) and x are kept either way; a (2*8*8*6) no longer, t (2*8*8*2) instead.
    saved = residual_bytes(plain) - residual_bytes(remat)
    assert saved >= 4 * 2 * 8 * 8 * (6 - 2), saved
    # grad of grad (a gradient penalty) agrees.
    hess = []
    for layer in (plain, remat):

        def penalty(m, x):
            g = nnx.grad(lambda x, m: (m(x, noise=eps) ** 2).sum())(x, m)
            return (g * g).sum()

        hess.append(nnx.grad(penalty)(layer, x))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5), *hess)
    # an unbatched call, jit of the layer.
    np.testing.assert_allclose(remat(x[0], noise=eps[0]), plain(x, noise=eps)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nnx.jit(lambda m, x: m(x, noise=eps))(remat, x), plain(x, noise=eps), rtol=1e-5)
    with pytest.raises(ValueError, match="recompute_alpha"):
        type(remat)(nnx.Conv(3, 6, (3, 3), rngs=nnx.Rngs(0)), recompute_alpha=True, rngs=nnx.Rngs(1))


# --------------------------------------------------------------------------------- keras --

# One script for every Keras backend: the layer with and without recompute_alpha, same weights and
# seed, gives the same z and gradients (TensorFlow: also under XLA, and the config round trip).
_KERAS_CHECK = """
import numpy as np, keras
from idrop.backends.keras import InfoDropout
from idrop.backends.keras._namespace import BACKEND

x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("float32")
eps = np.random.default_rng(1).standard_normal((2, 4, 4, 6)).astype("float32")
layers = []
for rc in (False, True):
    keras.utils.set_random_seed(0)
    m = InfoDropout(keras.layers.Conv2D(6, 3, strides=2, padding="same"), alpha_rank=2, recompute_alpha=rc, seed=5)
    m(x)
    layers.append(m)
layers[1].set_weights(layers[0].get_weights())
assert layers[1].get_config()["recompute_alpha"] is True
assert InfoDropout.from_config(layers[1].get_config()).recompute_alpha is True

def grads(m, noise):
    if BACKEND == "tensorflow":
        import tensorflow as tf
        with tf.GradientTape() as tape:
            z = m(x, training=True, noise=noise)
            loss = tf.reduce_mean(z * z) + tf.reduce_mean(m.kl)
        return z, tape.gradient(loss, m.trainable_variables)
    if BACKEND == "jax":
        import jax, jax.numpy as jnp
        tv, ntv = [v.value for v in m.trainable_variables], [v.value for v in m.non_trainable_variables]
        def loss(tv):
            z, _ = m.stateless_call(tv, ntv, x, training=True, noise=noise)
            return jnp.mean(z * z), z
        (_, z), g = jax.value_and_grad(loss, has_aux=True)(tv)
        return z, g
    import torch
    z = m(torch.tensor(x), training=True, noise=None if noise is None else torch.tensor(noise))
    ((z * z).mean() + m.kl.mean()).backward()
    return z.detach(), [v.value.grad for v in m.trainable_variables]

for noise in (None, eps):
    (za, ga), (zb, gb) = grads(layers[0], noise), grads(layers[1], noise)
    np.testing.assert_array_equal(np.asarray(zb), np.asarray(za))
    for a, b in zip(ga, gb):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
if BACKEND == "tensorflow":
    import tensorflow as tf
    m = layers[1]
    @tf.function(jit_compile=True)
    def step(x):
        with tf.GradientTape() as tape:
            z = m(x, training=True, noise=eps)
            loss = tf.reduce_mean(z * z) + tf.reduce_mean(m.kl)
        return z, tape.gradient(loss, m.trainable_variables)
    z, g = step(x)
    np.testing.assert_allclose(z, layers[0](x, training=True, noise=eps), rtol=1e-5, atol=1e-6)
    assert all(v is not None for v in g)
print("ok", BACKEND)
"""


def test_keras_tensorflow_same_outputs_and_gradients():
    pytest.importorskip("tensorflow")
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the in-process check is for Keras's TensorFlow backend; the others run below")
    exec(compile(_KERAS_CHECK, "<keras check>", "exec"), {})


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_other_backends_same_outputs_and_gradients(backend):
    import os
    import subprocess
    import sys

    pytest.importorskip("keras")
    pytest.importorskip(backend)
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", _KERAS_CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"ok {backend}" in done.stdout


def test_keras_tensorflow_second_order_is_tensorflows_error():
    """``tf.recompute_grad`` cannot be differentiated twice (TensorFlow 2.21 raises NotImplementedError,
    "recompute_grad tried to transpose grad of ..."): a gradient penalty on TensorFlow needs
    ``recompute_alpha=False``, as documented. Pinned so that a TensorFlow that lifts it shows here."""
    tf = pytest.importorskip("tensorflow")
    import keras

    from idrop.backends.tensorflow import InfoDropout

    x, eps = tf.constant(_rand(2, 8, 8, 3)), tf.constant(_rand(2, 4, 4, 6, seed=1))
    layer = InfoDropout(keras.layers.Conv2D(6, 3, strides=2, padding="same"), alpha_rank=2, recompute_alpha=True)
    layer(x)  # built outside the tapes
    with pytest.raises(NotImplementedError, match="recompute_grad"):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                loss = tf.reduce_sum(layer(x, training=True, noise=eps) ** 2)
            g = inner.gradient(loss, x)
            penalty = tf.reduce_sum(g * g)
        outer.gradient(penalty, layer.layer.kernel)


def test_empty_batch_trains_in_torch_and_jax():
    """A batch of 0 samples: zero-size outputs, a per-sample KL of 0 entries and zero-size gradients
    (the recomputed region sees empty inputs). Keras: the next test."""
    torch = pytest.importorskip("torch")
    from idrop.backends.torch import InfoDropout as TorchInfoDropout

    layer = TorchInfoDropout(torch.nn.Conv2d(4, 4, 3, padding=1), alpha_rank=2, recompute_alpha=True)
    x = torch.zeros(0, 4, 6, 6, requires_grad=True)
    z = layer(x)
    (z.sum() + layer.kl.sum()).backward()
    assert z.shape == (0, 4, 6, 6) and layer.kl.shape == (0,) and x.grad.shape == (0, 4, 6, 6)

    jax = pytest.importorskip("jax")
    from flax import nnx

    from idrop.backends.jax import InfoDropout as JaxInfoDropout

    conv = nnx.Conv(4, 4, (3, 3), rngs=nnx.Rngs(0))
    model = JaxInfoDropout(conv, alpha_rank=2, recompute_alpha=True, rngs=nnx.Rngs(0, dropout=1))

    def loss(model, x):
        return model(x).sum() + model.kl.sum()

    grads = nnx.grad(loss)(model, jax.numpy.zeros((0, 6, 6, 4), dtype=jax.numpy.float32))
    assert model.kl.shape == (0,)
    assert all(np.all(np.asarray(g) == 0) for g in jax.tree_util.tree_leaves(grads))


def test_empty_batch_trains_in_keras_on_tensorflow():
    tf = pytest.importorskip("tensorflow")
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the in-process check is for Keras's TensorFlow backend")
    from idrop.backends.keras import InfoDropout

    layer = InfoDropout(keras.layers.Conv2D(4, 3, padding="same"), alpha_rank=2, recompute_alpha=True, seed=0)
    layer(tf.zeros((1, 6, 6, 4)), training=True)  # build
    x = tf.zeros((0, 6, 6, 4))
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = layer(x, training=True)
        loss = tf.reduce_sum(z)
    assert z.shape == (0, 6, 6, 4) and tape.gradient(loss, x).shape == (0, 6, 6, 4)
    assert tuple(layer.kl.shape) == (0,)
