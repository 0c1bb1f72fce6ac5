"""Derivatives through the TF fused kernel equal plain autodiff of the core (float64), to second order.

First order: the kernel's closed-form backward against autodiff, and the kinks (ReLU'(0) = 0,
the log floor, softplus'(0) = 1/2). Second order: a gradient penalty and a Hessian-vector
product record the kernel's backward pass on an outer tape; the kernel must then differentiate
its backward formulas, not a gradient-stopped copy.
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


def _autodiff_step(layer, x, eps, cz):
    """Gradients of sum(z * cz) + sum(kl) by autodiff of the functional op (the pre-kernel layer)."""
    with tf.GradientTape() as tape:
        z, kl = _autodiff(layer, x, eps)
        loss = tf.reduce_sum(z * cz) + tf.reduce_sum(kl)
    return z, tape.gradient(loss, layer.trainable_variables)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize(
    ("make", "x_shape", "z_shape"),
    [
        (lambda: L.Dense(3, dtype="float64"), (4, 5), (4, 3)),  # op by op
        (lambda: L.Dense(300, dtype="float64"), (128, 5), (128, 300)),  # its own XLA program
        (lambda: L.Conv2D(64, 3, strides=2, padding="same", dtype="float64"), (8, 16, 16, 3), (8, 8, 8, 64)),
    ],
)
@pytest.mark.parametrize(
    "options",
    [
        {"activation": "relu"},
        {"activation": "relu", "zero_units": "mask", "mean_one": True},
        {"activation": "softplus", "mean_one": True},
        {"activation": "relu", "prior": "log-normal"},
    ],
)
def test_custom_gradient_matches_autodiff(make, x_shape, z_shape, options, jit):
    layer = InfoDropout(make(), dtype="float64", **options)
    layer.build(x_shape)
    if layer.spec.prior == "log-normal":
        layer.mu.assign(0.3)
        layer.log_sigma.assign(-0.2)
    x, eps, cz = (_rand(*shape, seed=i) for i, shape in enumerate([x_shape, z_shape, z_shape]))

    def step(x, eps):
        with tf.GradientTape() as tape:
            z = layer(x, training=True, noise=eps)
            loss = tf.reduce_sum(z * cz) + tf.reduce_sum(layer.kl)
        return z, tape.gradient(loss, layer.trainable_variables)

    z, grads = (tf.function(step, jit_compile=True) if jit else step)(x, eps)
    z_want, grads_want = _autodiff_step(layer, x, eps, cz)
    np.testing.assert_allclose(z, z_want, rtol=1e-12, atol=1e-12)
    for v, g, want in zip(layer.trainable_variables, grads, grads_want):
        np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-10, err_msg=v.path)


@pytest.mark.parametrize("units", [2, 300])  # op by op, and inside the kernel's own XLA program
def test_relu_gradient_at_zero_is_zero(units):
    """ReLU'(0) = 0 in training and evaluation (DESIGN.md section 1), as tf.nn.relu has it."""
    layer = InfoDropout(L.Dense(units, kernel_initializer="zeros", dtype="float64"), seed=0, eval_kl=True)
    x = tf.ones((128, 3), "float64")  # h == 0 exactly
    for training in (True, False):
        with tf.GradientTape() as tape:
            z = layer(x, training=training, noise=tf.zeros((128, units), "float64"))
            loss = tf.reduce_sum(z)
        np.testing.assert_array_equal(tape.gradient(loss, layer.layer.bias), np.zeros(units))


def test_the_log_floor_passes_no_gradient():
    """f = softplus(-30) is below the 1e-4 floor: the log-normal KL does not depend on h there."""
    dense = L.Dense(3, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(-30.0), dtype="float64")
    layer = InfoDropout(dense, activation="softplus", eval_kl=True)
    x = tf.ones((2, 4), "float64")
    for training in (True, False):
        with tf.GradientTape() as tape:
            layer(x, training=training, noise=tf.zeros((2, 3), "float64"))
            kl = tf.reduce_sum(layer.kl)
        np.testing.assert_array_equal(tape.gradient(kl, layer.layer.bias), np.zeros(3))


def test_softplus_slope_at_zero_is_one_half():
    """logaddexp's tie: softplus'(0) = sigmoid(0) = 1/2 (tf.maximum + tf.abs would give 1)."""
    from idrop.core._xp import softplus

    h = tf.constant([0.0, -1.0, 2.0], "float64")
    with tf.GradientTape() as tape:
        tape.watch(h)
        y = softplus(h, xp=xp)
    np.testing.assert_allclose(y, np.logaddexp(h.numpy(), 0), rtol=1e-15)
    np.testing.assert_allclose(tape.gradient(y, h), 1 / (1 + np.exp(-h.numpy())), rtol=1e-15)


def test_namespace_is_over_tensors():
    t = tf.constant([1.0, 2.0], "float64")
    for like in (xp.zeros_like(t), xp.ones_like(t)):
        assert isinstance(like, tf.Tensor) and like.dtype == tf.float64 and like.shape == (2,)
