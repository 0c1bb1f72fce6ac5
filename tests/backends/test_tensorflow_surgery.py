"""Keras model surgery: a small CNN trained a few steps keeps its evaluation outputs through
to_info_dropout and strip_info_dropout (Sequential and functional models)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
import keras

from idrop.backends.tensorflow import InfoDropout, strip_info_dropout, to_info_dropout


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    layers = keras.layers
    net = keras.Sequential([
        keras.Input((8, 8, 1)), layers.Conv2D(4, 3), layers.BatchNormalization(), layers.ReLU(),
        layers.Conv2D(4, 3, activation="softplus"), layers.Dropout(0.2), layers.Flatten(),
        layers.Dense(16), layers.Activation("relu"), layers.Dense(3),
    ])  # fmt: skip
    x = np.random.default_rng(0).standard_normal((8, 8, 8, 1)).astype("float32")
    net.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(x, np.arange(8) % 3, epochs=3, verbose=0)
    return net, x


def test_outputs_equal_before_wrapping_after_wrapping_and_after_stripping(trained):
    net, x = trained
    want = np.asarray(net(x, training=False))
    wrapped = to_info_dropout(net, seed=1)
    kinds = [type(layer).__name__ for layer in wrapped.layers]
    block, plain = ["InfoDropout", "Identity", "Identity"], ["InfoDropout", "Dropout", "Flatten"]
    assert kinds == [*block, *plain, "InfoDropout", "Identity", "Dense"]
    np.testing.assert_allclose(wrapped(x, training=False), want, rtol=1e-6, atol=1e-6)
    stripped = strip_info_dropout(wrapped)
    assert not any(isinstance(layer, InfoDropout) for layer in stripped.layers)
    np.testing.assert_allclose(stripped(x, training=False), want, rtol=1e-6, atol=1e-6)
    before = [w.copy() for w in net.get_weights()]
    wrapped.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    wrapped.fit(x, np.arange(8) % 3, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, net.get_weights()))  # the source is untouched


def test_functional_model_options_and_errors(trained):
    net, _ = trained
    inp = keras.Input((5,))
    h = keras.layers.Dense(7, activation="relu", name="d1")(inp)
    h = keras.layers.Dense(6, activation="softplus", name="d2")(h)
    model = keras.Model(inp, keras.layers.Dense(2, name="out")(h))
    x = np.random.default_rng(1).standard_normal((3, 5)).astype("float32")
    wrapped = to_info_dropout(model, layers="d2", max_alpha=0.5)
    assert [layer.name for layer in wrapped.layers[1:]] == ["d1", "d2_info_dropout", "out"]
    assert wrapped.get_layer("d2_info_dropout").spec.max_alpha == 0.5
    np.testing.assert_allclose(wrapped(x), model(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(strip_info_dropout(wrapped)(x), model(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"such maps here: \['d1', 'd2'\]"):
        to_info_dropout(model, layers=["out"])
    with pytest.raises(ValueError, match="argument `replace`"):
        to_info_dropout(model, replace="everything")
    by_dropout = to_info_dropout(net, replace="dropout")
    assert [type(layer).__name__ for layer in by_dropout.layers][3:5] == ["InfoDropout", "Identity"]


def test_unbuilt_and_subclassed_models():
    x = np.random.default_rng(2).standard_normal((3, 5)).astype("float32")
    called = keras.Sequential([keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    called(x)  # built by a call, without keras.Input
    np.testing.assert_allclose(to_info_dropout(called)(x), called(x), rtol=1e-6, atol=1e-6)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3, activation="relu")

        def call(self, x):
            return self.dense(x)

    sub = Sub()
    sub(x)
    with pytest.raises(ValueError, match=r"argument `model`.*subclassed.*Received: model='Sub'"):
        to_info_dropout(sub)
    with pytest.raises(ValueError, match="argument `model`"):
        strip_info_dropout(sub)
