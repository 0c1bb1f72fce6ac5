"""Second-order derivatives through the TF fused kernel equal plain autodiff of the core (float64).

A gradient penalty and a Hessian-vector product record the kernel's backward pass on an outer
tape; the kernel must then differentiate its backward formulas, not a gradient-stopped copy.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from idrop.backends.tensorflow import InfoDropout, info_dropout  # noqa: E402
from idrop.backends.tensorflow._namespace import xp  # noqa: E402
from idrop.core._xp import activation  # noqa: E402

L = keras.layers


def _rand(*shape, seed=0):
    return tf.constant(np.random.default_rng(seed).standard_normal(shape))


def _autodiff(layer, x, eps):
    """``(z, per-sample kl)`` from the maps and the functional op: plain autodiff, no custom gradient."""
    s = layer.spec
    h, a = layer.layer(x), layer.alpha_layer(x)
    kw = {"mu": layer.mu, "sigma": layer.sigma} if s.prior == "log-normal" else {}
    z, kl = info_dropout(activation(s.activation, h, xp=xp), a, **s.kl_options, noise=eps, **kw)
    return z, tf.reduce_sum(kl, axis=list(range(1, kl.shape.rank)))


def _kernel(layer, x, eps):
    return layer(x, training=True, noise=eps), layer.kl


def _gradient_penalty(forward, layer, x, eps, cz):
    """d/dweights of |d loss / dx|^2, the WGAN-GP / input-gradient-regulariser pattern."""
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            z, kl = forward(layer, x, eps)
            loss = tf.reduce_sum(z * cz) + tf.reduce_sum(kl)
        penalty = tf.reduce_sum(tf.square(inner.gradient(loss, x)))
    return outer.gradient(penalty, layer.trainable_variables)


def _hvp(forward, layer, x, eps, cz):
    """The Hessian of the loss in the weights times a fixed vector, by double backward."""
    variables = layer.trainable_variables
    vs = [_rand(*v.shape, seed=10 + i) for i, v in enumerate(variables)]
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            z, kl = forward(layer, x, eps)
            loss = tf.reduce_sum(z * cz) + tf.reduce_sum(kl)
        grads = inner.gradient(loss, variables)
        gv = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(grads, vs)])
    return outer.gradient(gv, variables)


@pytest.mark.parametrize("units", [3, 300])  # op by op, and the kernel's own XLA program
@pytest.mark.parametrize(
    "options",
    [
        {"activation": "softplus", "mean_one": True},
        {"activation": "relu", "zero_units": "mask"},
        {"activation": "softplus", "prior": "log-uniform"},
        {"activation": "relu", "prior": "log-normal"},
    ],
)
@pytest.mark.parametrize("second_order", [_gradient_penalty, _hvp])
def test_second_order_matches_plain_autodiff(units, options, second_order):
    layer = InfoDropout(L.Dense(units, dtype="float64"), **options)
    layer.build((128, 5))
    if layer.spec.prior == "log-normal":
        layer.mu.assign(0.3)
        layer.log_sigma.assign(-0.2)
    x, eps, cz = _rand(128, 5), _rand(128, units, seed=1), _rand(128, units, seed=2)
    got = second_order(_kernel, layer, x, eps, cz)
    want = second_order(_autodiff, layer, x, eps, cz)
    for v, g, w in zip(layer.trainable_variables, got, want):
        assert g is not None and w is not None, v.path
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-11, err_msg=v.path)


def test_second_order_inside_tf_function():
    layer = InfoDropout(L.Conv2D(4, 3, dtype="float64"), activation="softplus")
    layer.build((2, 6, 6, 3))
    x, eps, cz = _rand(2, 6, 6, 3), _rand(2, 4, 4, 4, seed=1), _rand(2, 4, 4, 4, seed=2)
    got = tf.function(lambda: _gradient_penalty(_kernel, layer, x, eps, cz))()
    want = _gradient_penalty(_autodiff, layer, x, eps, cz)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-11)


def test_forward_mode_matches_plain_autodiff():
    """tf.autodiff.ForwardAccumulator transposes the custom gradient: it needs the differentiable backward too."""
    layer = InfoDropout(L.Dense(3, dtype="float64"), activation="softplus")
    layer.build((4, 5))
    x, eps, tangent = _rand(4, 5), _rand(4, 3, seed=1), _rand(4, 5, seed=3)
    jvps = []
    for forward in (_kernel, _autodiff):
        with tf.autodiff.ForwardAccumulator(x, tangent) as acc:
            z, kl = forward(layer, x, eps)
        jvps.append((acc.jvp(z), acc.jvp(kl)))
    for got, want in zip(*jvps):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
