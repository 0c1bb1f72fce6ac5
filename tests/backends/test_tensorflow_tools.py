"""Keras tools (keras.ops only): mc_predict and sampling, KL maps, alpha statistics, callbacks, schedules."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

pytest.importorskip("torch")  # import torch before TensorFlow where both share a process (Keras' rule)
pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from idrop.backends.tensorflow import (  # noqa: E402
    BetaScheduler,
    DiagnosticsCallback,
    IdropWarning,
    InfoDropout,
    alpha_map,
    alpha_stats,
    beta_schedule,
    diagnostics,
    info_dropout,
    kl_map,
    kl_maps,
    mc_predict,
    sampling,
)
from idrop.core import diagnostics as core_diag  # noqa: E402

L = keras.layers
X = np.random.default_rng(1).normal(size=(5, 6)).astype("float32")


def _net(max_alpha: float = 0.7, alpha_min: float = 1e-3, **kwargs) -> keras.Model:
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((6,)),
            InfoDropout(
                L.Dense(16),
                norm=L.BatchNormalization(),
                max_alpha=max_alpha,
                alpha_min=alpha_min,
                seed=0,
                name="drop",
                **kwargs,
            ),
            L.Dropout(0.5),
            L.Dense(4),
        ]
    )
    net(np.random.default_rng(2).normal(size=(32, 6)).astype("float32"), training=True)
    return net


def test_mc_predict_is_seeded_and_independent_of_chunking() -> None:
    net = _net()
    a = mc_predict(net, X, 9, chunk=2, seed=3)
    b = mc_predict(net, X, 9, chunk=None, seed=3)
    c = mc_predict(net, X, 9, chunk=2, seed=3)
    d = mc_predict(net, X, 9, seed=4)
    for u, v, w in zip(a, b, c):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(u, w)
    assert not np.array_equal(a.mean, d.mean)
    assert tuple(a.mean.shape) == tuple(a.std.shape) == (5, 4)
    assert tuple(a.entropy.shape) == tuple(a.mutual_information.shape) == (5,)
    np.testing.assert_allclose(np.sum(a.mean, -1), np.ones(5), rtol=1e-5, atol=1e-6)
    assert (np.asarray(a.std) > 0).any() and (np.asarray(a.mutual_information) >= 0).all()


def test_mc_predict_keeps_batch_norm_and_dropout_in_inference() -> None:
    net = _net()
    bn = net.get_layer("drop").norm
    before = [v.numpy() for v in bn.variables]
    mc_predict(net, X, 4)
    for u, v in zip(before, bn.variables):
        np.testing.assert_array_equal(u, v)
    tiny = _net(max_alpha=1e-6, alpha_min=1e-6)
    ref = keras.ops.softmax(tiny(X, training=False), -1)
    np.testing.assert_allclose(mc_predict(tiny, X, 3).mean, ref, rtol=1e-4, atol=1e-5)


def test_mc_predict_edge_inputs_and_bad_arguments() -> None:
    net = _net()
    assert tuple(mc_predict(net, X[:0], 3).mean.shape) == (0, 4)
    assert tuple(mc_predict(net, X[:1], 3).mean.shape) == (1, 4)
    for kwargs, name in [({"n_samples": 0}, "n_samples"), ({"n_samples": 2, "chunk": 0}, "chunk")]:
        with pytest.raises(ValueError, match=f"argument `{name}`"):
            mc_predict(net, X, **kwargs)
    with pytest.raises(ValueError, match="argument `seed`"):
        mc_predict(net, X, 2, seed=-1)
    with pytest.raises(TypeError, match="argument `x`"):
        mc_predict(net, X.tolist(), 2)


def test_sampling_turns_only_the_noise_on() -> None:
    net = _net()
    with sampling(net):
        a, b = net(X), net(X, training=False)
        assert not np.array_equal(a, b)
        np.testing.assert_array_equal(net.predict(X, verbose=0).shape, (5, 4))
    np.testing.assert_array_equal(net(X), net(X))
    p0 = net.predict(X, verbose=0)
    with sampling(net):
        assert not np.array_equal(net.predict(X, verbose=0), p0)  # a traced predict sees the switch
    np.testing.assert_array_equal(net.predict(X, verbose=0), p0)


def test_kl_map_is_the_noiseless_kl_of_the_layer() -> None:
    net = _net()
    layer = net.get_layer("drop")
    maps = kl_maps(net, X)
    assert list(maps) == ["drop"] and tuple(maps["drop"].shape) == (5, 16)
    h = layer.norm(layer.layer(X), training=False)
    _, expected = info_dropout(keras.ops.relu(h), layer.alpha_layer(X), **layer.spec.kl_options, training=False)
    np.testing.assert_array_equal(maps["drop"], expected)
    np.testing.assert_array_equal(kl_map(layer, X), expected)
    a = np.asarray(alpha_map(layer, X))
    assert ((a >= 1e-3) & (a <= 0.701)).all()
    with pytest.raises(TypeError, match="argument `layer`"):
        kl_map(L.Dense(2), X)
    with pytest.raises(ValueError, match="InfoDropout"):
        kl_maps(keras.Sequential([keras.Input((6,)), L.Dense(2)]), X)


def test_alpha_stats_and_diagnostics_warn_once() -> None:
    net = _net()
    layer = net.get_layer("drop")
    layer.alpha_layer.bias.assign(np.full((16,), -50.0, "float32"))  # every unit at alpha_min
    assert float(alpha_stats(net, X)["drop"].pinned_low) == 1.0
    core_diag.reset_warnings()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        logs = diagnostics(net, X, task_loss=0.01, beta=1.0, n_train=1)
        diagnostics(net, X, task_loss=0.01, beta=1.0, n_train=1)
    assert sorted(logs) == ["drop/alpha_mean", "drop/kl", "drop/pinned_high", "drop/pinned_low", "kl_share", "kl_term"]
    assert [w.category for w in seen if issubclass(w.category, IdropWarning)] == [IdropWarning, IdropWarning]
    core_diag.reset_warnings()


def _fit_net(beta: float = 1.0) -> keras.Model:
    # Zero output weights: the task loss is log(4) whatever the noise, so the loss shows beta * KL.
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((6,)),
            InfoDropout(L.Dense(8), seed=0, beta=beta, n_train=10, name="drop"),
            L.Dense(4, kernel_initializer="zeros"),
        ]
    )
    net.compile(keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return net


def test_beta_scheduler_drives_the_compiled_train_step() -> None:
    net = _fit_net()
    x, y = np.random.default_rng(0).normal(size=(8, 6)).astype("float32"), np.zeros(8, "int64")
    net.fit(x, y, batch_size=8, epochs=1, verbose=0)  # a train step traced with the fixed beta first
    kl = float(np.mean(kl_map(net.get_layer("drop"), x).numpy().sum(-1))) / 10
    schedule = beta_schedule("linear", 1.0, warmup_steps=4)
    hist = net.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[BetaScheduler(schedule)])
    # One batch per epoch; the optimizer had already taken one step, so epoch e runs at step e + 1.
    expected = [math.log(4) + schedule(e + 1) * kl for e in range(5)]
    np.testing.assert_allclose(hist.history["loss"], expected, rtol=1e-4, atol=1e-5)
    assert hist.history["beta"] == pytest.approx([schedule(e + 2) for e in range(5)])
    after = net.fit(x, y, batch_size=8, epochs=1, verbose=0)  # the layer's own beta again
    np.testing.assert_allclose(after.history["loss"], [math.log(4) + kl], rtol=1e-4, atol=1e-5)


def test_beta_scheduler_needs_a_layer_with_beta() -> None:
    net = keras.Sequential([keras.Input((6,)), InfoDropout(L.Dense(4), seed=0)])
    net.compile("sgd", "mse")
    with pytest.raises(ValueError, match="beta="):
        net.fit(X, np.zeros((5, 4), "float32"), verbose=0, callbacks=[BetaScheduler(beta_schedule("constant", 1.0))])
    with pytest.raises(TypeError, match="`schedule`"):
        BetaScheduler(0.1)


def test_diagnostics_callback_logs_each_epoch() -> None:
    net = _fit_net(beta=1e6)
    x, y = np.random.default_rng(0).normal(size=(8, 6)).astype("float32"), np.zeros(8, "int64")
    core_diag.reset_warnings()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        hist = net.fit(x, y, epochs=2, verbose=0, callbacks=[DiagnosticsCallback(x)])
    assert len(hist.history["drop/kl"]) == 2 and len(hist.history["drop/pinned_low"]) == 2
    assert [w.category for w in seen if issubclass(w.category, IdropWarning)] == [IdropWarning] and "KL term" in str(
        seen[0].message
    )
    core_diag.reset_warnings()


def test_the_tools_leave_the_kl_bookkeeping_alone() -> None:
    import tensorflow as tf

    from idrop.backends.tensorflow import kl_loss

    net = _net()
    with tf.GradientTape():
        net(X, training=True)
        expected = float(kl_loss(net, 100))
        net(X, training=True)  # a training call: its KL is pending
        mc_predict(net, X, 3)
        kl_maps(net, X)
        with sampling(net):
            net(X)
        assert float(kl_loss(net, 100)) == pytest.approx(expected, rel=1e-6)


def test_mc_predict_when_a_layer_does_not_see_the_batch_first() -> None:
    class ExtraRow(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.drop, self.out = InfoDropout(L.Dense(8), seed=0), L.Dense(4)

        def call(self, x, training=None):
            return self.out(self.drop(keras.ops.concatenate([x, x[:1]]), training=training)[:-1])

    net = ExtraRow()
    a, b = mc_predict(net, X, 6, chunk=4, seed=1), mc_predict(net, X, 6, chunk=4, seed=1)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert (np.asarray(a.std) > 0).any()
    with pytest.raises(ValueError, match="argument `x`"):
        mc_predict(net, np.array(1.0, "float32"), 2)
