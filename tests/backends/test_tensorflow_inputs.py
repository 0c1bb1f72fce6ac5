"""Keras layers and TF functional ops: the input rules and bounds of docs/design-notes.md sections 1-2.

Every error must be the core's (idrop.core.spec), so the class and message are the same as in
the other backends; the expected errors are built here from the same helpers.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from idrop.backends.tensorflow import (  # noqa: E402
    BinaryDropout,
    GaussianDropout,
    InfoDropout,
    LogNormalDropout,
    binary_dropout,
    gaussian_dropout,
    ib_loss,
    info_dropout,
    kl_loss,
    lognormal_dropout,
)
from idrop.core import spec  # noqa: E402

L = keras.layers
LAYERS = [InfoDropout, BinaryDropout, GaussianDropout, LogNormalDropout]


def _error(fn):
    try:
        fn()
    except Exception as err:
        return err
    raise AssertionError("no error raised")


def _same(mine, want):
    err = _error(mine)
    assert type(err) is type(want) and str(err) == str(want), (err, want)


@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize(
    ("layer_dtype", "x_dtype"), [("float32", "float64"), ("float32", "float16"), ("float64", "float32")]
)
def test_an_input_of_another_float_dtype_is_refused(cls, layer_dtype, x_dtype):
    """Keras cast it silently; now the TypeError of every backend (for tensors and NumPy arrays)."""
    layer = cls(L.Dense(3, dtype=layer_dtype))
    want = _error(lambda: spec.check_input_dtype("x", x_dtype, layer_dtype))
    _same(lambda: layer(tf.ones((2, 4), x_dtype), training=True), want)
    _same(lambda: layer(np.ones((2, 4), x_dtype)), want)
    _same(lambda: keras.Sequential([keras.Input((4,), dtype=x_dtype), layer]), want)  # symbolic inputs too
    assert layer(np.ones((2, 4), layer_dtype), training=True).dtype == layer_dtype


def test_mixed_precision_still_autocasts_float32_inputs():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layers = [cls(L.Dense(3)) for cls in LAYERS]
    finally:
        keras.config.set_dtype_policy("float32")
    for layer in layers:
        for dtype in ("float32", "float16"):  # the variable dtype, and the compute dtype
            assert layer(tf.ones((2, 4), dtype), training=True).dtype == tf.float16
        _same(
            lambda layer=layer: layer(tf.ones((2, 4), "float64")),
            _error(lambda: spec.check_input_dtype("x", "float64", "float16")),
        )


@pytest.mark.parametrize("cls", LAYERS)
def test_scalars_and_python_sequences_are_refused(cls):
    layer = cls(L.Dense(3))
    _same(lambda: layer(tf.constant(1.0)), _error(lambda: spec.check_input_rank("x", ())))
    _same(lambda: layer(np.float32(1.0)), _error(lambda: spec.check_input_rank("x", ())))
    for bad in ([[1.0, 2.0]], ((1.0, 2.0),), 1.0):
        _same(lambda bad=bad: layer(bad), _error(lambda bad=bad: spec.check_input_type("x", bad, False)))


def test_wrong_noise_shapes_are_refused():
    """A broadcastable noise would share one draw between units: refused, in layers and functional ops."""
    x, f = tf.ones((4, 5)), tf.ones((4, 3))
    for noise in (tf.zeros((4, 1)), tf.zeros((3,)), np.zeros((4, 3, 1), "float32")):
        want = _error(lambda noise=noise: spec.check_noise_shape("noise", np.shape(noise), (4, 3)))
        for cls in LAYERS:
            _same(lambda cls=cls, noise=noise: cls(L.Dense(3))(x, training=True, noise=noise), want)
        for op in (binary_dropout, gaussian_dropout, lognormal_dropout):
            _same(lambda op=op, noise=noise: op(f, noise=noise), want)
        _same(lambda noise=noise: info_dropout(f, f, noise=noise), want)


def test_prior_parameters_are_one_positive_scalar():
    f = tf.ones((2, 3))
    kw = {"prior": "log-normal", "noise": tf.zeros((2, 3))}
    for sigma in (0.0, -1.0, np.float64(0.0)):
        _same(
            lambda s=sigma: info_dropout(f, f, sigma=s, **kw),
            _error(lambda s=sigma: spec.check_prior_scale("sigma", s)),
        )
    for name in ("mu", "sigma"):
        bad = {name: tf.ones((3,))}  # per-unit: would silently broadcast
        _same(
            lambda bad=bad: info_dropout(f, f, **bad, **kw),
            _error(lambda name=name: spec.check_scalar_shape(name, (3,))),
        )
    _, kl = info_dropout(f, f, mu=tf.zeros((1,)), sigma=np.float32(2.0), **kw)
    assert kl.shape == (2, 3) and np.isfinite(kl).all()


def test_flags_are_bools():
    x, f = tf.ones((2, 4)), tf.ones((2, 3))
    want = _error(lambda: spec.check_flag("training", "false", allow_none=True))
    for cls in LAYERS:
        layer = cls(L.Dense(3))
        _same(lambda layer=layer: layer(x, training="false"), want)
        _same(lambda layer=layer: layer(x, "false"), want)
        assert layer(x, training=None).shape == (2, 3) and layer(x, training=np.bool_(True)).shape == (2, 3)
    want = _error(lambda: spec.check_flag("training", "false"))
    for op in (binary_dropout, gaussian_dropout, lognormal_dropout):
        _same(lambda op=op: op(f, training="false"), want)
    _same(lambda: info_dropout(f, f, training="false"), want)
    for name, make in [
        ("eval_kl", lambda v: InfoDropout(L.Dense(3), eval_kl=v)),
        ("mean_one", lambda v: InfoDropout(L.Dense(3), mean_one=v)),
        ("mean_one", lambda v: LogNormalDropout(L.Dense(3), mean_one=v)),
        ("mean_one", lambda v: lognormal_dropout(f, mean_one=v)),
    ]:
        _same(lambda make=make: make("false"), _error(lambda name=name: spec.check_flag(name, "false")))
        make(np.bool_(True))


def test_bounds():
    cases = [
        (lambda: InfoDropout(L.Dense(3), max_alpha=1.5), lambda: spec.check_max_alpha(1.5)),
        (lambda: InfoDropout(L.Dense(3), alpha_min=0.0), lambda: spec.check_alpha_min(0.0)),
        (lambda: LogNormalDropout(L.Dense(3), alpha=1.5), lambda: spec.check_alpha("alpha", 1.5)),
        (lambda: lognormal_dropout(tf.ones((2,)), alpha=-0.1), lambda: spec.check_alpha("alpha", -0.1)),
        (lambda: BinaryDropout(L.Dense(3), rate=1.0), lambda: spec.check_probability("rate", 1.0)),
        (lambda: gaussian_dropout(tf.ones((2,)), rate=-0.5), lambda: spec.check_probability("rate", -0.5)),
        (lambda: InfoDropout(L.Dense(3), beta=1.0, n_train=0), lambda: spec.check_n_train(0)),
        (lambda: kl_loss(InfoDropout(L.Dense(3)), n_train=2.5), lambda: spec.check_n_train(2.5)),
        (lambda: ib_loss(0.0, InfoDropout(L.Dense(3)), beta=-1.0, n_train=10), lambda: spec.check_beta(-1.0)),
    ]
    for mine, want in cases:
        _same(mine, _error(want))
    model = InfoDropout(L.Dense(3), beta=np.float32(0.5), n_train=np.int64(10))
    model(tf.ones((2, 4)), training=True)
    assert model.n_train == 10 and float(kl_loss(model, np.int64(60_000))) >= 0
    assert LogNormalDropout(L.Dense(3), alpha=0.0)(tf.ones((2, 4)), training=True).shape == (2, 3)  # 0: identity


@pytest.mark.parametrize("training", [True, False])
def test_non_finite_inputs_stay_non_finite(training):
    layer = InfoDropout(L.Dense(3, kernel_initializer="ones"), activation="softplus", eval_kl=True)
    x = np.ones((2, 4), "float32")
    x[0, 0] = np.nan
    z = np.asarray(layer(x, training=training))
    assert np.isnan(z[0]).all() and np.isfinite(z[1]).all()
    assert np.isnan(np.asarray(layer.kl)[0]) and np.isfinite(np.asarray(layer.kl)[1])
