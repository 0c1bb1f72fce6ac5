"""Framework idioms of the JAX backend: NNX modes and RNG streams, transforms, training, state, errors."""

from __future__ import annotations

import functools

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
# float64 needs x64 before any array exists (array-api-extra, SciPy).
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from idrop.backends import jax as J  # noqa: E402


def test_public_names_are_frozen_and_resolve():
    assert J.__all__ == [
        "AlphaStats",
        "BinaryDropout",
        "GaussianDropout",
        "IdropWarning",
        "InfoDropout",
        "KLTerm",
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
    shared = {"AlphaStats", "IdropWarning", "MCPrediction"}  # result types and warning of idrop.core, one class
    for name in J.__all__:
        prefix = "idrop.core." if name in shared else "idrop.backends.jax."
        assert getattr(J, name).__module__.startswith(prefix)
    from idrop.backends.jax import _namespace

    assert not hasattr(J, "xp") and callable(_namespace.xp.exp)


def _linear(din=5, dout=3, seed=0, **kw):
    return nnx.Linear(din, dout, rngs=nnx.Rngs(seed), **kw)


def _layer(seed=1, **kw):
    return J.InfoDropout(_linear(), rngs=nnx.Rngs(0, dropout=seed), **kw)


X = jnp.linspace(-1.0, 1.0, 20, dtype=jnp.float32).reshape(4, 5)


# -- shapes and modes -----------------------------------------------------------


def test_shapes_linear_and_conv():
    z = (layer := _layer())(X)
    assert z.shape == (4, 3) and layer.kl[...].shape == (4,) and z.dtype == jnp.float32
    conv = J.InfoDropout(
        nnx.Conv(3, 6, (3, 3), strides=2, padding=((1, 1), (1, 1)), rngs=nnx.Rngs(0)),
        activation="softplus",
        rngs=nnx.Rngs(1),
    )
    z = conv(jnp.ones((2, 8, 8, 3), jnp.float32))
    assert z.shape == (2, 4, 4, 6) and conv.kl[...].shape == (2,)
    assert isinstance(conv.alpha_layer, nnx.Conv) and conv.alpha_layer.kernel[...].shape == (3, 3, 3, 6)
    assert conv.alpha_layer.strides == 2 and conv.alpha_layer.padding == ((1, 1), (1, 1))
    # The default alpha branch has its own weights.
    assert not np.array_equal(conv.alpha_layer.kernel[...], conv.layer.kernel[...])


def test_deterministic_is_exactly_f():
    layer = _layer(deterministic=True, eval_kl=True)
    f = jax.nn.relu(layer.layer(X))
    np.testing.assert_array_equal(layer(X), f)
    assert layer.kl[...].shape == (4,) and bool(jnp.all(layer.kl[...] >= 0))
    layer.train()
    assert not np.array_equal(layer(X), f)
    layer.eval()
    np.testing.assert_array_equal(layer(X), f)
    np.testing.assert_array_equal(nnx.view(_layer(), deterministic=True)(X), f)
    np.testing.assert_array_equal(_layer()(X, deterministic=True), f)  # call-time override


def test_rng_stream_advances_and_is_reproducible():
    a, b = _layer(seed=7), _layer(seed=7)
    za1, za2 = a(X), a(X)
    assert not np.array_equal(za1, za2)  # the stream advances
    np.testing.assert_array_equal(b(X), za1)  # same seed, same draws
    np.testing.assert_array_equal(b(X), za2)
    assert not np.array_equal(_layer(seed=8)(X), za1)


def test_call_time_rngs_and_noise():
    layer = _layer()
    key = jax.random.key(3)
    np.testing.assert_array_equal(layer(X, rngs=key), layer(X, rngs=key))
    np.testing.assert_array_equal(layer(X, rngs=nnx.Rngs(dropout=3)), layer(X, rngs=nnx.Rngs(dropout=3)))
    no_rngs = J.InfoDropout(_linear(), alpha_layer=_linear(seed=2), rngs=None)
    with pytest.raises(ValueError, match="no `rngs` argument"):
        no_rngs(X)
    eps = jnp.zeros((4, 3), jnp.float32)
    np.testing.assert_array_equal(no_rngs(X, noise=eps), jax.nn.relu(no_rngs.layer(X)))  # exp(alpha * 0) == 1
    assert no_rngs(X, rngs=key).shape == (4, 3)


def test_baseline_modules():
    f = jax.nn.relu(_linear()(X))
    for cls, kw in (
        (J.BinaryDropout, {"rate": 0.5}),
        (J.GaussianDropout, {"rate": 0.3}),
        (J.LogNormalDropout, {"alpha": 0.5}),
    ):
        m = cls(_linear(), rngs=nnx.Rngs(dropout=0), **kw)
        z1, z2 = m(X), m(X)
        assert z1.shape == (4, 3) and not np.array_equal(z1, z2)
        np.testing.assert_array_equal(m(X, deterministic=True), f)
    u = jnp.full((4, 3), 0.9, jnp.float32)
    np.testing.assert_allclose(J.BinaryDropout(_linear(), rate=0.5)(X, noise=u), 2 * f, rtol=1e-6)


def test_capture_and_kl_loss():
    outer = nnx.Sequential(_layer(seed=1), J.InfoDropout(_linear(3, 2), rngs=nnx.Rngs(0, dropout=2)))
    _, captured = nnx.capture(outer, J.KLTerm)(X)
    assert len(jax.tree.leaves(captured)) == 2
    kls = [m.kl[...] for _, m in nnx.iter_modules(outer) if isinstance(m, J.InfoDropout)]
    expected = sum(float(jnp.mean(k)) for k in kls) / 100
    np.testing.assert_allclose(J.kl_loss(outer, 100), expected, rtol=1e-6)
    assert float(J.ib_loss(jnp.float32(1.0), outer, 2.0, 100)) == 1.0  # kl_loss collected it all
    outer(X)
    kls = [m.kl[...] for _, m in nnx.iter_modules(outer) if isinstance(m, J.InfoDropout)]
    expected = sum(float(jnp.mean(k)) for k in kls) / 100
    np.testing.assert_allclose(J.ib_loss(jnp.float32(1.0), outer, 2.0, 100), 1.0 + 2 * expected, rtol=1e-6)


def test_eval_without_kl_skips_the_alpha_branch_and_drops_the_records():
    layer = _layer()
    layer(X)
    assert layer.kl[...].shape == (4,)
    f = jax.nn.relu(layer.layer(X))
    np.testing.assert_array_equal(nnx.jit(lambda m, x: m(x, deterministic=True))(layer, X), f)
    assert layer.kl.get_value() is None  # an evaluation call drops the training call's record (rule 4)
    assert float(J.kl_loss(layer, 10)) == 0.0
    nnx.jit(lambda m, x: m(x))(layer, X)
    assert layer.kl[...].shape == (4,)
    fresh = _layer()  # with nothing recorded, evaluation mutates nothing, also under plain jax transforms
    np.testing.assert_array_equal(jax.jit(lambda x: fresh(x, deterministic=True))(X), jax.nn.relu(fresh.layer(X)))


# -- the pure function under transforms -------------------------------------------


def test_pure_function_jit_grad_vmap_checkpoint():
    f = jnp.abs(X[:, :3]) + 0.1
    logits = X[:, 2:]
    key = jax.random.key(0)
    fn = functools.partial(J.info_dropout, prior="log-normal", max_alpha=0.5)
    z, kl = fn(key, f, logits, mu=0.1, sigma=1.2)
    zj, klj = jax.jit(fn)(key, f, logits, mu=0.1, sigma=1.2)
    np.testing.assert_allclose(zj, z, rtol=1e-6)
    np.testing.assert_allclose(klj, kl, rtol=1e-6)

    def objective(f, logits, mu):
        z, kl = fn(key, f, logits, mu=mu)
        return jnp.sum(z) + jnp.sum(kl)

    grads = jax.grad(objective, argnums=(0, 1, 2))(f, logits, 0.0)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    grads_ckpt = jax.grad(jax.checkpoint(objective), argnums=(0, 1, 2))(f, logits, 0.0)
    for g, gc in zip(grads, grads_ckpt):
        np.testing.assert_allclose(g, gc, rtol=1e-6)
    keys = jax.random.split(key, 4)
    zv, klv = jax.vmap(lambda k, a, b: fn(k, a, b))(keys, f, logits)
    assert zv.shape == f.shape and klv.shape == f.shape
    assert not np.array_equal(zv[0], fn(keys[1], f[:1], logits[:1])[0][0])
    np.testing.assert_allclose(zv[1], fn(keys[1], f[1], logits[1])[0], rtol=1e-6)
    # deterministic and injected noise need no key; a draw without one is a clear error.
    np.testing.assert_array_equal(J.info_dropout(None, f, logits, deterministic=True)[0], f)
    assert J.info_dropout(None, f, logits, noise=jnp.zeros_like(f))[0].shape == f.shape
    with pytest.raises(ValueError, match="argument `key`"):
        J.info_dropout(None, f, logits)
    with pytest.raises(ValueError, match="argument `key`"):
        J.binary_dropout(None, f)


def test_float64_with_x64():
    f64 = jnp.asarray(np.abs(np.asarray(X)), dtype=jnp.float64)
    z, kl = J.info_dropout(jax.random.key(0), f64, f64)
    assert z.dtype == kl.dtype == jnp.float64
    layer = J.InfoDropout(_linear(param_dtype=jnp.float64, dtype=jnp.float64), rngs=nnx.Rngs(0))
    assert layer(X.astype(jnp.float64)).dtype == jnp.float64 and layer.kl[...].dtype == jnp.float64


def test_bfloat16_is_finite_with_float32_kl():
    kw = {"dtype": jnp.bfloat16, "param_dtype": jnp.bfloat16}
    for activation in ("relu", "softplus"):
        layer = J.InfoDropout(_linear(**kw), activation=activation, rngs=nnx.Rngs(0))
        z = layer(X.astype(jnp.bfloat16))
        assert z.dtype == jnp.bfloat16 and layer.kl[...].dtype == jnp.float32
        assert bool(jnp.all(jnp.isfinite(z.astype(jnp.float32)))) and bool(jnp.all(jnp.isfinite(layer.kl[...])))
        assert layer.alpha_layer.kernel[...].dtype == jnp.bfloat16
    z, kl = J.info_dropout(jax.random.key(0), X.astype(jnp.float16), X.astype(jnp.float16), prior="log-normal")
    assert z.dtype == jnp.float16 and kl.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(kl)))


# -- training and state -----------------------------------------------------------


class _Net(nnx.Module):
    def __init__(self, rngs):
        self.hidden = J.InfoDropout(nnx.Linear(5, 16, rngs=rngs), activation="softplus", rngs=rngs)
        self.out = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(self.hidden(x))


def _train(model, steps=40):
    import optax

    x = jax.random.normal(jax.random.key(1), (32, 5), jnp.float32)
    y = jnp.sum(x[:, :2], axis=1, keepdims=True)
    opt = nnx.Optimizer(model, optax.adam(3e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt):
        def loss_fn(model):
            task = jnp.mean(jnp.square(model(x) - y))
            return J.ib_loss(task, model, beta=1e-3, n_train=32)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    return [float(step(model, opt)) for _ in range(steps)]


def test_nnx_jit_optax_step_reduces_loss_and_state_round_trips():
    model = _Net(nnx.Rngs(0, dropout=1))
    losses = _train(model)
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    h = model.hidden
    assert float(h.mu[...]) != 0.0 and float(h.log_sigma[...]) != 0.0  # the prior was learned
    assert h.kl.get_value() is None and h.kl_pending.get_value() is None  # ib_loss collected every step

    x = jnp.ones((3, 5), jnp.float32)
    graphdef, state = nnx.split(model)
    clone = nnx.merge(graphdef, jax.tree.map(jnp.array, state))
    np.testing.assert_array_equal(clone(x), model(x))  # same params and the same RNG counter
    np.testing.assert_array_equal(clone.hidden.sigma, h.sigma)

    # A fresh model restored from the saved parameters and RNG state (not the KL intermediate).
    saved = nnx.state(model, nnx.Not(J.KLTerm))
    fresh = _Net(nnx.Rngs(5, dropout=9))
    nnx.update(fresh, saved)
    np.testing.assert_array_equal(fresh(x), model(x))
    np.testing.assert_array_equal(fresh.hidden(x, deterministic=True), model.hidden(x, deterministic=True))


def test_orbax_round_trip(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    model = _Net(nnx.Rngs(0, dropout=1))
    model.hidden.mu[...] = jnp.float32(0.25)
    state = nnx.state(model, nnx.Param)
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(tmp_path / "ckpt", state)
    abstract = nnx.state(nnx.eval_shape(lambda: _Net(nnx.Rngs(3))), nnx.Param)
    with ocp.StandardCheckpointer() as ckpt:
        restored = ckpt.restore(tmp_path / "ckpt", abstract)
    fresh = _Net(nnx.Rngs(3))
    nnx.update(fresh, restored)
    x = jnp.ones((2, 5), jnp.float32)
    np.testing.assert_array_equal(nnx.view(fresh, deterministic=True)(x), nnx.view(model, deterministic=True)(x))
    assert float(fresh.hidden.mu[...]) == 0.25


# -- errors: the same classes and messages as torch -------------------------------


def _error(fn):
    try:
        fn()
    except Exception as err:  # the two backends' exceptions are compared
        return err
    raise AssertionError("no error raised")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_alpha": 0.0},
        {"max_alpha": "big"},
        {"alpha_min": -1e-3},
        {"activation": "tanh"},
        {"prior": "gaussian"},
        {"zero_units": "drop"},
        {"mean_one": 1},
    ],
)
def test_construct_errors_match_torch(kwargs):
    torch_backend = pytest.importorskip("idrop.backends.torch")
    import torch

    e_jax = _error(lambda: J.InfoDropout(_linear(4, 3), **kwargs, rngs=nnx.Rngs(0)))
    e_torch = _error(lambda: torch_backend.InfoDropout(torch.nn.Linear(4, 3), **kwargs))
    assert type(e_jax) is type(e_torch) and str(e_jax) == str(e_torch)


def test_call_errors_match_torch():
    torch_backend = pytest.importorskip("idrop.backends.torch")
    import torch

    pairs = [
        (
            lambda: _layer()(jnp.ones((2, 5), jnp.int32)),
            lambda: torch_backend.InfoDropout(torch.nn.Linear(5, 3))(torch.ones(2, 5, dtype=torch.int32)),
        ),
        (
            lambda: J.InfoDropout(_linear(), alpha_layer=_linear(5, 4), rngs=nnx.Rngs(0))(X),
            lambda: torch_backend.InfoDropout(torch.nn.Linear(5, 3), alpha_layer=torch.nn.Linear(5, 4))(
                torch.ones(4, 5)
            ),
        ),
        (
            lambda: J.kl_loss(_layer(), n_train=0),
            lambda: torch_backend.kl_loss(torch_backend.InfoDropout(torch.nn.Linear(5, 3)), n_train=0),
        ),
        (
            lambda: J.ib_loss(jnp.zeros(()), _layer(), beta=-1.0, n_train=10),
            lambda: torch_backend.ib_loss(torch.zeros(()), torch_backend.InfoDropout(torch.nn.Linear(5, 3)), -1.0, 10),
        ),
        (lambda: J.binary_dropout(None, X, rate=1.0), lambda: torch_backend.binary_dropout(torch.ones(2), rate=1.0)),
        (
            lambda: J.info_dropout(None, X, X[:, :2]),
            lambda: torch_backend.info_dropout(torch.ones(4, 5), torch.ones(4, 2)),
        ),
    ]
    for fn_jax, fn_torch in pairs:
        e_jax, e_torch = _error(fn_jax), _error(fn_torch)
        assert type(e_jax) is type(e_torch) and str(e_jax) == str(e_torch)
