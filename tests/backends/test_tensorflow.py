"""Keras 3 / TensorFlow idioms: shapes, training=, seeds, fit, GradientTape, XLA, mixed precision, saving, errors."""

import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytest.importorskip("torch")  # import torch before TensorFlow where both share a process (Keras' rule)
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from idrop.backends.tensorflow import (  # noqa: E402
    BinaryDropout,
    GaussianDropout,
    InfoDropout,
    LogNormalDropout,
    ib_loss,
    info_dropout,
    kl_loss,
)
from idrop.core import reference  # noqa: E402

L = keras.layers


def test_public_names_are_frozen():
    import idrop.backends.tensorflow as backend

    assert backend.__all__ == [
        "AlphaStats",
        "BetaScheduler",
        "BinaryDropout",
        "DiagnosticsCallback",
        "GaussianDropout",
        "IdropWarning",
        "InfoDropout",
        "LogNormalDropout",
        "MCPrediction",
        "alpha_from_logits",
        "alpha_map",
        "alpha_stats",
        "beta_schedule",
        "binary_dropout",
        "diagnostics",
        "export",
        "gaussian_dropout",
        "gaussian_kl",
        "ib_loss",
        "info_dropout",
        "kl_loss",
        "kl_map",
        "kl_maps",
        "lognormal_dropout",
        "mc_predict",
        "plot_kl_maps",
        "sampling",
        "noise_shapes",
        "strip_info_dropout",
        "to_info_dropout",
    ]
    assert all(callable(getattr(backend, name)) for name in backend.__all__)
    assert not hasattr(backend, "xp")  # importable from ._namespace, not public


def _rand(*shape, seed=0, dtype="float32"):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize(
    ("make", "x_shape", "z_shape"),
    [
        (lambda: L.Dense(5), (4, 7), (4, 5)),
        (lambda: L.Conv1D(6, 3, strides=2, padding="same"), (2, 10, 3), (2, 5, 6)),
        (lambda: L.Conv2D(6, 3, strides=2, padding="same"), (2, 8, 8, 3), (2, 4, 4, 6)),
        (lambda: L.Conv3D(4, 3, padding="same"), (2, 4, 4, 4, 2), (2, 4, 4, 4, 4)),
    ],
)
@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_shapes_and_kl(make, x_shape, z_shape, activation):
    layer = InfoDropout(make(), activation=activation, seed=0)
    z = layer(_rand(*x_shape), training=True)
    assert type(layer.alpha_layer) is type(layer.layer)
    assert layer.alpha_layer.kernel is not layer.layer.kernel
    assert tuple(z.shape) == z_shape == tuple(layer.compute_output_shape(x_shape))
    assert tuple(layer.kl.shape) == (x_shape[0],)
    assert np.isfinite(z).all() and np.isfinite(layer.kl).all()
    if activation == "relu":  # the log-uniform KL is >= 0 by construction (Prop. 1)
        assert (np.asarray(layer.kl) >= 0).all()


def test_eval_is_exactly_f_and_training_is_noisy():
    layer = InfoDropout(L.Dense(4, bias_initializer="ones"), seed=0)
    x = np.abs(_rand(3, 6))
    z_eval = layer(x)  # training defaults to False outside fit
    f = np.maximum(np.asarray(layer.layer(x)), 0)
    np.testing.assert_array_equal(z_eval, f)
    np.testing.assert_array_equal(layer(x, training=False), f)
    assert layer.kl is None  # eval_kl=False: no alpha branch, no KL
    assert not np.array_equal(layer(x, training=True), f)
    assert tuple(layer.kl.shape) == (3,)


def test_eval_kl():
    x = np.abs(_rand(3, 6))
    plain = InfoDropout(L.Dense(4), seed=0)
    layer = InfoDropout(L.Dense(4), seed=0, eval_kl=True)
    plain(x)
    layer(x)
    layer.set_weights(plain.get_weights())
    np.testing.assert_array_equal(layer(x), plain(x))
    assert plain.kl is None and float(plain.kl_metric.count) == 0  # no KL, no metric update in evaluation
    kl_eval = np.asarray(layer.kl)
    assert tuple(kl_eval.shape) == (3,) and float(layer.kl_metric.count) > 0
    layer(x, training=True)
    np.testing.assert_allclose(layer.kl, kl_eval, rtol=1e-6)  # the KL does not depend on the noise
    assert layer.get_config()["eval_kl"] is True and plain.get_config()["eval_kl"] is False
    with pytest.raises(ValueError, match="argument `eval_kl`"):
        InfoDropout(L.Dense(4), eval_kl=1)


def test_seeds():
    f, a = np.ones((50,), "float32"), np.zeros((50,), "float32")
    gen_a, gen_b = keras.random.SeedGenerator(7), keras.random.SeedGenerator(7)
    z1, z2 = info_dropout(f, a, seed=gen_a)[0], info_dropout(f, a, seed=gen_b)[0]
    np.testing.assert_array_equal(z1, z2)  # same seed, same draws
    assert not np.array_equal(z1, info_dropout(f, a, seed=gen_a)[0])  # the generator advances
    np.testing.assert_array_equal(info_dropout(f, a, seed=3)[0], info_dropout(f, a, seed=3)[0])  # int: stateless
    x = np.abs(_rand(2, 5))
    la, lb = InfoDropout(L.Dense(8, bias_initializer="ones"), seed=1), InfoDropout(L.Dense(8), seed=1)
    la(x)
    lb(x)
    lb.set_weights(la.get_weights())
    np.testing.assert_array_equal(la(x, training=True), lb(x, training=True))
    assert not np.array_equal(la(x, training=True), lb(x, training=False))


def test_injected_noise_matches_reference_in_float64():
    layer = InfoDropout(L.Dense(3, dtype="float64"), activation="softplus", mean_one=True)
    x, eps = _rand(4, 5, dtype="float64"), _rand(4, 3, seed=1, dtype="float64")
    z = layer(x, training=True, noise=eps)
    assert z.dtype == tf.float64 and layer.kl.dtype == tf.float64 and layer.mu.dtype == "float64"
    h, a = np.asarray(layer.layer(x)), np.asarray(layer.alpha_layer(x))
    z_ref, kl_ref = reference.info_dropout(
        reference.act("softplus", h), a, noise=eps, activation="softplus", mean_one=True
    )
    np.testing.assert_allclose(z, z_ref, rtol=1e-12)
    np.testing.assert_allclose(layer.kl, kl_ref.sum(1), rtol=1e-12)


def _model(beta=None, n_train=None):
    inputs = keras.Input((10,))
    h = InfoDropout(L.Dense(16), beta=beta, n_train=n_train, seed=0, name="id1")(inputs)
    h = InfoDropout(L.Dense(16), activation="softplus", beta=beta, n_train=n_train, seed=1, name="id2")(h)
    return keras.Model(inputs, L.Dense(2)(h))


def test_fit_optimises_the_ib_loss_and_logs_the_kl():
    keras.utils.set_random_seed(0)
    model = _model(beta=1.0, n_train=64)
    x, y = _rand(64, 10), (np.arange(64) % 2)
    model(x[:4], training=True)
    assert len(model.losses) == 2  # one KL term per layer, in training calls only
    model(x[:4])
    assert model.losses == []
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    mu0 = float(model.get_layer("id2").mu)
    hist = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert {"loss", "id1_kl", "id2_kl"} <= set(hist.history)
    assert all(np.isfinite(v).all() for v in hist.history.values())
    assert float(model.get_layer("id2").mu) != mu0  # the prior is learnt
    assert "val_id1_kl" in model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y)).history


def test_gradient_tape_loop_with_ib_loss():
    keras.utils.set_random_seed(0)
    model = _model()
    x, y = _rand(64, 10), (np.arange(64) % 2)
    opt, ce = keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = ib_loss(ce(y, model(x, training=True)), model, beta=1.0, n_train=64)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    losses = [float(step()) for _ in range(40)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    model(x, training=True)
    assert float(kl_loss(model, 64)) > 0 and float(model.get_layer("id2").sigma) > 0


def test_kl_loss_sums_layers():
    model = keras.Sequential([InfoDropout(L.Dense(4), eval_kl=True), InfoDropout(L.Dense(4), eval_kl=True)])
    model(_rand(3, 4))
    want = (np.mean(model.layers[0].kl) + np.mean(model.layers[1].kl)) / 100
    np.testing.assert_allclose(kl_loss(model, 100), want, rtol=1e-6)
    model(_rand(3, 4))  # kl_loss collected the records: a new forward for ib_loss
    np.testing.assert_allclose(ib_loss(2.0, model, 0.5, 100), 2.0 + 0.5 * want, rtol=1e-6)


def test_xla_matches_eager():
    layer = InfoDropout(L.Conv2D(4, 3), activation="softplus", seed=0)
    x, eps = _rand(2, 6, 6, 3), _rand(2, 4, 4, 4, seed=1)
    eager = layer(x, training=True, noise=eps)
    eager_kl = np.asarray(layer.kl)
    compiled = tf.function(lambda x, eps: (layer(x, training=True, noise=eps), layer.kl), jit_compile=True)
    z, kl = compiled(x, eps)
    np.testing.assert_allclose(z, eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kl, eager_kl, rtol=1e-5, atol=1e-5)
    sample = tf.function(lambda x: layer(x, training=True), jit_compile=True)  # sampling under XLA
    a, b = sample(x), sample(x)
    assert np.isfinite(a).all() and not np.array_equal(a, b)


def test_mixed_float16_keeps_kl_in_float32():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = InfoDropout(L.Dense(8), activation="softplus", beta=1.0, n_train=10)
        z = layer(_rand(4, 16) * 100, training=True)  # large inputs: no overflow, no NaN
    finally:
        keras.config.set_dtype_policy("float32")
    assert z.dtype == tf.float16 and layer.kl.dtype == tf.float32 and layer.mu.dtype == "float32"
    assert np.isfinite(z).all() and np.isfinite(layer.kl).all()
    assert layer.losses[0].dtype == tf.float32


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_layer(dtype):
    layer = InfoDropout(L.Dense(8, dtype=dtype))
    z = layer(tf.cast(_rand(2, 8), dtype), training=True)  # an input in the layer's dtype (float32 is refused)
    assert z.dtype == dtype and layer.kl.dtype == tf.float32


def test_save_and_load_keras_file(tmp_path):
    inputs = keras.Input((6, 6, 3))
    h = InfoDropout(L.Conv2D(4, 3), activation="softplus", norm=L.BatchNormalization(), name="id", seed=3)(inputs)
    h = LogNormalDropout(L.Conv2D(4, 1), alpha=0.2, name="ln")(h)
    h = GaussianDropout(L.Conv2D(4, 1), activation="softplus", rate=0.1, name="gd")(h)
    model = keras.Model(inputs, BinaryDropout(L.Dense(2), rate=0.3, name="bd")(L.Flatten()(h)))
    layer = model.get_layer("id")
    layer.mu.assign(0.3)
    layer.log_sigma.assign(0.2)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    twin = loaded.get_layer("id")
    assert float(twin.mu) == pytest.approx(0.3) and float(twin.sigma) == pytest.approx(np.exp(0.2))
    assert twin.norm is not None and twin.alpha_layer.kernel is not twin.layer.kernel
    x, eps = _rand(2, 6, 6, 3), _rand(2, 4, 4, 4, seed=1)
    np.testing.assert_array_equal(loaded(x), model(x))
    np.testing.assert_array_equal(twin(x, training=True, noise=eps), layer(x, training=True, noise=eps))
    np.testing.assert_array_equal(twin.kl, layer.kl)
    for name in ("id", "ln", "gd", "bd"):  # tuples become lists in JSON
        assert json.loads(json.dumps(loaded.get_layer(name).get_config())) == json.loads(
            json.dumps(model.get_layer(name).get_config())
        )


@pytest.mark.parametrize("cls", [InfoDropout, BinaryDropout, GaussianDropout, LogNormalDropout])
def test_layers_are_keras_wrappers(cls):
    layer = cls(L.Dense(3, name="inner"), name="outer", trainable=False, dtype="float64")
    assert isinstance(layer, keras.layers.Wrapper) and layer.layer.name == "inner"
    config = layer.get_config()
    assert config["layer"]["class_name"] == "Dense" and config["trainable"] is False
    clone = cls.from_config(config)
    assert clone.layer.name == "inner" and clone.name == "outer" and clone.compute_dtype == "float64"
    assert not clone.trainable
    assert tuple(clone(tf.ones((2, 4), "float64")).shape) == (2, 3) and clone.layer.built


@pytest.mark.parametrize("cls", [InfoDropout, BinaryDropout, GaussianDropout, LogNormalDropout])
def test_a_layer_with_its_own_activation_is_refused(cls):
    """Dense(relu) wrapped with softplus computed softplus(relu(h)); now it is refused."""
    with pytest.raises(ValueError, match="argument `layer`") as info:
        cls(L.Dense(3, activation="relu"), activation="softplus")
    assert "Received: layer=Dense with activation='relu'" in str(info.value)
    assert cls(L.Dense(3, activation="linear")).layer.activation is keras.activations.linear


@pytest.mark.parametrize("cls", [InfoDropout, BinaryDropout, GaussianDropout, LogNormalDropout])
def test_unknown_keyword_arguments(cls):
    for name in ("max_alpah", "autocast", "kernel_size"):
        with pytest.raises(TypeError) as info:
            cls(L.Dense(3), **{name: 1})
        assert str(info.value) == f"{cls.__name__}() got an unexpected keyword argument '{name}'"
    layer = cls(L.Dense(3), name="n", dtype="float64", trainable=False, activity_regularizer="l2")
    assert (layer.name, layer.compute_dtype, layer.trainable) == ("n", "float64", False)


@pytest.mark.parametrize(
    "make",
    [
        lambda: InfoDropout(
            L.Dense(3),
            activation="softplus",
            max_alpha=0.5,
            alpha_min=0.01,
            mean_one=True,
            norm=L.LayerNormalization(),
            beta=0.1,
            n_train=50,
            seed=4,
        ),
        lambda: InfoDropout(L.Dense(3), zero_units="mask", alpha_layer=L.Dense(3, use_bias=False)),
        lambda: BinaryDropout(L.Dense(3), rate=0.2, seed=1),
        lambda: GaussianDropout(L.Dense(3), activation="softplus", rate=0.4),
        lambda: LogNormalDropout(L.Dense(3), alpha=0.3, mean_one=True),
    ],
)
def test_get_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    x = _rand(2, 5)
    layer(x)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x), layer(x), rtol=1e-6)
    assert keras.saving.get_registered_name(type(layer)) == f"idrop>{type(layer).__name__}"


@pytest.mark.parametrize("cls", [BinaryDropout, GaussianDropout, LogNormalDropout])
def test_baselines_share_the_interface(cls):
    layer = cls(L.Dense(4), seed=0)
    x = _rand(3, 5)
    assert tuple(layer(x, training=True).shape) == (3, 4) and layer.kl is None
    np.testing.assert_array_equal(layer(x), np.maximum(np.asarray(layer.layer(x)), 0))


def test_binary_dropout_injected_uniforms():
    layer = BinaryDropout(L.Dense(2, kernel_initializer="identity"), rate=0.5)
    z = layer(np.array([[1.0, 2.0]], "float32"), training=True, noise=np.array([[0.2, 0.7]], "float32"))
    np.testing.assert_allclose(z, [[0.0, 4.0]])


def test_other_layers_need_an_alpha_layer():
    with pytest.raises(ValueError, match="argument `alpha_layer`"):
        InfoDropout(keras.Sequential([L.Dense(3)]))
    layer = InfoDropout(keras.Sequential([L.Dense(3)]), alpha_layer=L.Dense(3))
    assert tuple(layer(_rand(2, 3)).shape) == (2, 3)


def _error(fn):
    try:
        fn()
    except Exception as err:
        return err
    raise AssertionError("no error raised")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_alpha": 0},
        {"alpha_min": -1.0},
        {"activation": "tanh"},
        {"prior": "gaussian"},
        {"max_alpha": "big"},
        {"zero_units": "all"},
        {"mean_one": 1},
    ],
)
def test_construction_errors_match_torch(kwargs):
    import torch

    from idrop.backends import torch as tb

    mine = _error(lambda: InfoDropout(L.Dense(3), **kwargs))
    theirs = _error(lambda: tb.InfoDropout(torch.nn.Linear(4, 3), **kwargs))
    assert type(mine) is type(theirs) and str(mine) == str(theirs)


def test_call_errors_match_torch():
    import torch

    from idrop.backends import torch as tb

    pairs = [
        (
            lambda: InfoDropout(L.Dense(3))(tf.ones((2, 4), tf.int32)),
            lambda: tb.InfoDropout(torch.nn.Linear(4, 3))(torch.ones(2, 4, dtype=torch.int32)),
        ),
        (
            lambda: InfoDropout(L.Dense(3), alpha_layer=L.Dense(5))(tf.ones((2, 4))),
            lambda: tb.InfoDropout(torch.nn.Linear(4, 3), alpha_layer=torch.nn.Linear(4, 5))(torch.ones(2, 4)),
        ),
        (
            lambda: info_dropout(tf.ones((2, 3), tf.int64), tf.ones((2, 3))),
            lambda: tb.info_dropout(torch.ones(2, 3, dtype=torch.int64), torch.ones(2, 3)),
        ),
        (
            lambda: info_dropout(tf.ones((2, 3)), tf.ones((2, 4))),
            lambda: tb.info_dropout(torch.ones(2, 3), torch.ones(2, 4)),
        ),
        (
            lambda: kl_loss(InfoDropout(L.Dense(3)), n_train=0),
            lambda: tb.kl_loss(tb.InfoDropout(torch.nn.Linear(4, 3)), n_train=0),
        ),
        (
            lambda: ib_loss(0.0, InfoDropout(L.Dense(3)), beta=-1.0, n_train=10),
            lambda: tb.ib_loss(torch.zeros(()), tb.InfoDropout(torch.nn.Linear(4, 3)), beta=-1.0, n_train=10),
        ),
        (lambda: BinaryDropout(L.Dense(3), rate=1.0), lambda: tb.BinaryDropout(torch.nn.Linear(4, 3), rate=1.0)),
    ]
    for mine, theirs in pairs:
        a, b = _error(mine), _error(theirs)
        assert type(a) is type(b) and str(a) == str(b), (a, b)
    with pytest.raises(ValueError, match="argument `n_train`"):
        InfoDropout(L.Dense(3), beta=1.0)  # beta without the training-set size


@pytest.mark.parametrize("units", [3, 300])  # op by op, and inside the kernel's own XLA program
def test_layer_noise_is_reproducible_from_the_seed(units):
    x = np.abs(_rand(128, 5))
    la, lb, lc = (InfoDropout(L.Dense(units), activation="softplus", seed=s) for s in (1, 1, 2))
    for m in (la, lb, lc):
        m(x)
    lb.set_weights(la.get_weights())
    lc.set_weights(la.get_weights())
    za, zb, zc = (m(x, training=True) for m in (la, lb, lc))
    np.testing.assert_array_equal(za, zb)
    assert not np.array_equal(za, zc) and not np.array_equal(za, la(x, training=True))
    ratio = np.log(np.asarray(za) / np.asarray(la(x)))  # alpha * eps: zero mean, about unit-scale draws
    assert abs(ratio.mean()) < 0.05 and 0.05 < ratio.std() < 1.0
