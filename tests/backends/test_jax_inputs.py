"""Bounds and input rules (docs/design-notes.md sections 1-2): the core's messages, at trace time too."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from idrop.backends import jax as J  # noqa: E402
from idrop.core import spec as S  # noqa: E402

X = jnp.linspace(-1.0, 1.0, 20, dtype=jnp.float32).reshape(4, 5)
F = jnp.abs(X[:, :3]) + 0.1
KEY = jax.random.key(0)


def _linear(**kw):
    return nnx.Linear(5, 3, rngs=nnx.Rngs(0), **kw)


def _modules(**kw):
    return [
        J.InfoDropout(_linear(**kw), rngs=nnx.Rngs(0, dropout=1)),
        J.BinaryDropout(_linear(**kw), rngs=nnx.Rngs(dropout=1)),
        J.GaussianDropout(_linear(**kw), rngs=nnx.Rngs(dropout=1)),
        J.LogNormalDropout(_linear(**kw), rngs=nnx.Rngs(dropout=1)),
    ]


def _raises(exc_type, expected, fn):
    with pytest.raises(exc_type) as info:
        fn()
    assert str(info.value) == str(expected)


def _dtype_error(received, expected):
    with pytest.raises(TypeError) as info:
        S.check_input_dtype("x", received, expected)
    return info.value


@pytest.mark.parametrize("deterministic", [False, True])
def test_input_in_another_float_dtype_is_refused(deterministic):
    for module in _modules():
        for dtype in (jnp.float64, jnp.float16, jnp.bfloat16):
            err = _dtype_error(jnp.dtype(dtype).name, "float32")
            _raises(TypeError, err, lambda m=module, d=dtype: m(X.astype(d), deterministic=deterministic))
            # checked at trace time too
            _raises(
                TypeError,
                err,
                lambda m=module, d=dtype: nnx.jit(lambda m, x: m(x, deterministic=deterministic))(m, X.astype(d)),
            )
    layer16 = J.InfoDropout(_linear(dtype=jnp.bfloat16), rngs=nnx.Rngs(0))  # float32 parameters, bfloat16 compute
    _raises(TypeError, _dtype_error("float32", "bfloat16"), lambda: layer16(X))
    assert layer16(X.astype(jnp.bfloat16)).dtype == jnp.bfloat16


def test_numpy_arrays_are_accepted_lists_and_numbers_are_not():
    layer = J.InfoDropout(_linear(), rngs=nnx.Rngs(0))
    assert layer(np.asarray(X)).shape == (4, 3)
    for bad in (np.asarray(X).tolist(), tuple(np.asarray(X)[0]), 1.0):
        with pytest.raises(TypeError) as info:
            S.check_input_type("x", bad, False)
        for module in _modules():
            _raises(TypeError, info.value, lambda m=module, b=bad: m(b))
    with pytest.raises(TypeError) as info:
        S.check_input_type("f", [1.0], False)
    _raises(TypeError, info.value, lambda: J.info_dropout(KEY, [1.0], F[0]))
    _raises(TypeError, info.value, lambda: J.binary_dropout(KEY, [1.0]))


def test_scalar_input_is_refused():
    with pytest.raises(ValueError) as info:
        S.check_input_rank("x", ())
    for module in _modules():
        for deterministic in (False, True):
            _raises(ValueError, info.value, lambda m=module, d=deterministic: m(jnp.float32(1.0), deterministic=d))


def test_noise_of_another_shape_is_refused_even_when_it_broadcasts():
    for shape in ((1, 3), (3,), (4, 1), (5, 3)):
        with pytest.raises(ValueError) as info:
            S.check_noise_shape("noise", shape, (4, 3))
        noise = jnp.zeros(shape, jnp.float32)
        for module in _modules():
            for deterministic in (False, True):
                _raises(
                    ValueError, info.value, lambda m=module, d=deterministic, n=noise: m(X, noise=n, deterministic=d)
                )
        for fn in (
            lambda n=noise: J.info_dropout(KEY, F, F, noise=n),
            lambda n=noise: J.binary_dropout(KEY, F, noise=n),
            lambda n=noise: J.gaussian_dropout(KEY, F, noise=n),
            lambda n=noise: J.lognormal_dropout(KEY, F, noise=n),
        ):
            _raises(ValueError, info.value, fn)
    with pytest.raises(TypeError):
        J.info_dropout(KEY, F, F, noise=jnp.zeros((4, 3), jnp.int32))


def test_prior_parameters_are_one_value_per_layer():
    kw = {"prior": "log-normal"}
    for name in ("mu", "sigma"):
        with pytest.raises(ValueError) as info:
            S.check_scalar_shape(name, (3,))
        _raises(ValueError, info.value, lambda n=name: J.info_dropout(KEY, F, F, **kw, **{n: jnp.ones(3)}))
        assert J.info_dropout(KEY, F, F, **kw, **{name: jnp.ones(1)})[0].shape == (4, 3)
        assert J.info_dropout(KEY, F, F, **kw, **{name: np.float64(1.5)})[0].shape == (4, 3)
    for sigma in (0.0, -1.0):
        with pytest.raises(ValueError) as info:
            S.check_prior_scale("sigma", sigma)
        _raises(ValueError, info.value, lambda s=sigma: J.info_dropout(KEY, F, F, **kw, sigma=s))
    # A (1,)-shaped mu gets a (1,)-shaped gradient; a traced sigma is not checked for its value.
    g = jax.grad(lambda mu: jnp.sum(J.info_dropout(KEY, F, F, **kw, mu=mu)[1]))(jnp.zeros(1))
    assert g.shape == (1,) and float(g[0]) != 0.0
    kl = jax.jit(lambda s: J.info_dropout(KEY, F, F, **kw, sigma=s)[1])(jnp.float32(-1.0))
    assert kl.shape == (4, 3)


def test_unknown_keyword_arguments_are_refused():
    for cls, kw in (
        (J.InfoDropout, {"rngs": nnx.Rngs(0)}),
        (J.BinaryDropout, {}),
        (J.GaussianDropout, {}),
        (J.LogNormalDropout, {}),
    ):
        _raises(
            TypeError,
            S.unexpected_keyword(cls.__name__, "dropout_rate"),
            lambda c=cls, k=kw: c(_linear(), dropout_rate=0.1, **k),
        )


def test_flags_must_be_bools():
    for value in ("false", 1):
        with pytest.raises(ValueError) as info:
            S.check_flag("deterministic", value, allow_none=True)
        _raises(ValueError, info.value, lambda v=value: J.InfoDropout(_linear(), deterministic=v, rngs=nnx.Rngs(0)))
        _raises(ValueError, info.value, lambda v=value: J.BinaryDropout(_linear(), deterministic=v))
        layer = J.InfoDropout(_linear(), rngs=nnx.Rngs(0))
        _raises(ValueError, info.value, lambda v=value, m=layer: m(X, deterministic=v))
        with pytest.raises(ValueError) as info:
            S.check_flag("deterministic", value)
        for fn in (J.info_dropout, J.binary_dropout, J.gaussian_dropout, J.lognormal_dropout):
            args = (KEY, F, F) if fn is J.info_dropout else (KEY, F)
            _raises(ValueError, info.value, lambda f=fn, a=args, v=value: f(*a, deterministic=v))
        _raises(ValueError, info.value, lambda v=value, m=layer: nnx.view(m, deterministic=v))
        for name in ("eval_kl", "mean_one"):
            with pytest.raises(ValueError) as info:
                S.check_flag(name, value)
            _raises(
                ValueError, info.value, lambda n=name, v=value: J.InfoDropout(_linear(), rngs=nnx.Rngs(0), **{n: v})
            )
        _raises(ValueError, info.value, lambda v=value: J.LogNormalDropout(_linear(), mean_one=v))
    assert J.InfoDropout(_linear(), deterministic=np.bool_(True), rngs=nnx.Rngs(0))(X).shape == (4, 3)


def test_bounds():
    cases = [
        (lambda: J.InfoDropout(_linear(), max_alpha=1.5, rngs=nnx.Rngs(0)), lambda: S.check_max_alpha(1.5)),
        (lambda: J.InfoDropout(_linear(), alpha_min=0.0, rngs=nnx.Rngs(0)), lambda: S.check_alpha_min(0.0)),
        (lambda: J.LogNormalDropout(_linear(), alpha=1.5), lambda: S.check_alpha("alpha", 1.5)),
        (lambda: J.lognormal_dropout(KEY, F, alpha=1.5), lambda: S.check_alpha("alpha", 1.5)),
        (lambda: J.BinaryDropout(_linear(), rate=1.0), lambda: S.check_probability("rate", 1.0)),
        (lambda: J.gaussian_dropout(KEY, F, rate=-0.1), lambda: S.check_probability("rate", -0.1)),
        (lambda: J.info_dropout(KEY, F, F, max_alpha=0.0), lambda: S.check_max_alpha(0.0)),
    ]
    for ours, core in cases:
        with pytest.raises(ValueError) as info:
            core()
        _raises(ValueError, info.value, ours)
    assert J.LogNormalDropout(_linear(), alpha=0.0, rngs=nnx.Rngs(dropout=0))(X).shape == (4, 3)
    assert J.InfoDropout(_linear(), max_alpha=1.0, alpha_min=1.0, rngs=nnx.Rngs(0))(X).shape == (4, 3)
