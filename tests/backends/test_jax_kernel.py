"""The JAX custom-VJP kernel: the core's formulas (once), its gradients, second order, and the kinks."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from idrop.backends import jax as J  # noqa: E402
from idrop.backends.jax import _kernel as K  # noqa: E402
from idrop.core import InfoDropoutSpec  # noqa: E402
from idrop.core import functional as F  # noqa: E402
from idrop.core._xp import activation as act  # noqa: E402

X = jnp.linspace(-1.0, 1.0, 20, dtype=jnp.float32).reshape(4, 5)


def _normal(seed, shape=(3, 4)):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float64)


def _objectives(activation, prior, mean_one, draw):
    """``(ours, core)``: ``sum(z * zc) + 0.7 * sum(kl)`` by the kernel and by plain autodiff of the core."""
    spec = InfoDropoutSpec(activation=activation, prior=prior, mean_one=mean_one)
    zc, key = _normal(3), jax.random.key(5)
    eps = jax.random.normal(key, zc.shape, jnp.float64)

    def ours(h, a, mu, sigma, noise):
        z, kl = K.info_dropout_kernel(
            spec, activation, key, h, a, mu=mu, sigma=sigma, deterministic=False, noise=None if draw else noise
        )
        return jnp.sum(z * zc) + jnp.sum(kl * 0.7)

    def core(h, a, mu, sigma, noise):
        prior_params = {"mu": mu, "sigma": sigma} if prior == "log-normal" else {}
        z, kl = F.info_dropout(act(activation, h, xp=jnp), a, noise, spec=spec, **prior_params, xp=jnp)
        return jnp.sum(z * zc) + jnp.sum(kl * 0.7)

    return ours, core, (_normal(1), _normal(2), jnp.float64(0.2), jnp.float64(1.3), eps)


def _close(got, expected, n):
    for g, e in zip(jax.tree.leaves(got)[:n], jax.tree.leaves(expected)[:n]):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "softplus"])
@pytest.mark.parametrize("prior", ["log-uniform", "log-normal"])
@pytest.mark.parametrize("mean_one", [False, True])
def test_kernel_matches_autodiff_of_the_core(activation, prior, mean_one):
    n = 4 if prior == "log-normal" else 2
    for draw in (True, False):
        ours, core, args = _objectives(activation, prior, mean_one, draw)
        expected = jax.grad(core, argnums=(0, 1, 2, 3))(*args)
        for fn in (ours, jax.jit(ours), jax.checkpoint(ours)):
            _close(jax.grad(fn, argnums=(0, 1, 2, 3))(*args), expected, n)


@pytest.mark.parametrize(
    ("activation", "prior", "mean_one"), [("softplus", "log-normal", True), ("relu", "log-uniform", False)]
)
def test_second_order_matches_autodiff_of_the_core(activation, prior, mean_one):
    """grad of grad (a gradient penalty), jax.hessian and jvp of grad, float64, drawn and injected noise."""
    argnums = (0, 1, 2, 3) if prior == "log-normal" else (0, 1)
    for draw in (True, False):
        ours, core, args = _objectives(activation, prior, mean_one, draw)
        wrt = argnums if draw else (*argnums, 4)  # injected noise is differentiated too

        def penalty(fn):
            return lambda *p: sum(jnp.sum(g**2) for g in jax.grad(fn, argnums=(0, 1))(*p))

        _close(jax.grad(penalty(ours), argnums=wrt)(*args), jax.grad(penalty(core), argnums=wrt)(*args), len(wrt))
        if draw:
            hess = [jax.hessian(fn, argnums=(0, 1))(*args) for fn in (ours, core)]
            _close(*hess, 4)
        else:
            v = _normal(7)
            jvps = [
                jax.jvp(lambda h, fn=fn, p=args: jax.grad(fn)(h, *p[1:]), (args[0],), (v,))[1] for fn in (ours, core)
            ]
            _close(*jvps, 1)


def test_layer_gradient_penalty_matches_the_core():
    """nnx.grad of a penalty on nnx.grad with respect to the input, against the same map written by hand."""
    kw = {"param_dtype": jnp.float64, "dtype": jnp.float64, "rngs": nnx.Rngs(0)}
    layer = J.InfoDropout(nnx.Linear(5, 3, **kw), activation="softplus", rngs=nnx.Rngs(1))
    x, key = _normal(4, (4, 5)), jax.random.key(9)
    spec = layer.spec

    def ours(m):
        gx = nnx.grad(lambda m, x: jnp.sum(m(x, rngs=key) ** 2) + J.kl_loss(m, 3), argnums=1)(m, x)
        return jnp.sum(gx**2)

    def core(p):
        def loss(x):
            h = x @ p["kernel"] + p["bias"]
            a = x @ p["alpha_kernel"] + p["alpha_bias"]
            eps = jax.random.normal(key, h.shape, jnp.float64)
            sigma = jnp.exp(p["log_sigma"])
            z, kl = F.info_dropout(act("softplus", h, xp=jnp), a, eps, spec=spec, mu=p["mu"], sigma=sigma, xp=jnp)
            return jnp.sum(z**2) + jnp.mean(jnp.sum(kl, axis=1)) / 3

        return jnp.sum(jax.grad(loss)(x) ** 2)

    g = nnx.grad(ours)(layer)
    p = {
        "kernel": layer.layer.kernel[...],
        "bias": layer.layer.bias[...],
        "alpha_kernel": layer.alpha_layer.kernel[...],
        "alpha_bias": layer.alpha_layer.bias[...],
        "mu": layer.mu[...],
        "log_sigma": layer.log_sigma[...],
    }
    e = jax.grad(core)(p)
    pairs = [
        (g.layer.kernel[...], e["kernel"]),
        (g.layer.bias[...], e["bias"]),
        (g.alpha_layer.kernel[...], e["alpha_kernel"]),
        (g.alpha_layer.bias[...], e["alpha_bias"]),
        (g.mu[...], e["mu"]),
        (g.log_sigma[...], e["log_sigma"]),
    ]
    for got, expected in pairs:
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_kernel_noise_cotangent_and_layer_under_checkpoint():
    f = jnp.abs(X[:, :3]).astype(jnp.float64) + 0.1
    logits = X[:, 2:].astype(jnp.float64)
    eps = jax.random.normal(jax.random.key(0), f.shape, jnp.float64)
    g = jax.grad(lambda e: jnp.sum(J.info_dropout(None, f, logits, noise=e, mean_one=True)[0]))(eps)
    alpha = J.alpha_from_logits(logits)
    np.testing.assert_allclose(g, f * jnp.exp(alpha * eps - alpha**2 / 2) * alpha, rtol=1e-12)

    layer = J.InfoDropout(nnx.Linear(5, 3, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(0, dropout=1))
    loss = lambda m, x: jnp.sum(m(x, rngs=jax.random.key(2))) + J.kl_loss(m, 10)  # noqa: E731
    g1 = nnx.grad(loss)(layer, X)
    g2 = nnx.grad(nnx.remat(loss))(layer, X)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


# -- formulas once -----------------------------------------------------------------


def test_the_kernel_spells_no_formula_of_its_own():
    """Noise, alpha, KL and the derivatives come from idrop.core: no transcendental call in _kernel.py."""
    calls = {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for node in ast.walk(ast.parse(inspect.getsource(K)))
        if isinstance(node, ast.Call)
    }
    assert not calls & {"exp", "expm1", "log", "log1p", "logaddexp", "sigmoid", "maximum", "where", "relu"}


# -- kinks: ReLU'(0) = 0 and the log floor, in training and evaluation --------------


def _zero_linear(**kw):
    layer = nnx.Linear(5, 3, rngs=nnx.Rngs(0), **kw)
    layer.kernel[...] = jnp.zeros_like(layer.kernel[...])
    layer.bias[...] = jnp.zeros_like(layer.bias[...])
    return layer


@pytest.mark.parametrize("mode", ["train", "eval", "eval_kl"])
def test_relu_derivative_at_zero_is_zero(mode):
    """h == 0 exactly (zero weights), zero injected noise, loss z.sum(): the bias gradient is exactly 0."""
    layer = J.InfoDropout(_zero_linear(), eval_kl=mode == "eval_kl", rngs=nnx.Rngs(1))
    noise = jnp.zeros((4, 3), jnp.float32)
    deterministic = mode != "train"
    grads = nnx.grad(lambda m: jnp.sum(m(X, noise=noise, deterministic=deterministic)))(layer)
    np.testing.assert_array_equal(grads.layer.bias[...], np.zeros(3, np.float32))
    np.testing.assert_array_equal(grads.layer.kernel[...], np.zeros((5, 3), np.float32))
    base = J.BinaryDropout(_zero_linear(), rate=0.5)
    g = nnx.grad(lambda m: jnp.sum(m(X, deterministic=True)))(base)
    np.testing.assert_array_equal(g.layer.bias[...], np.zeros(3, np.float32))


@pytest.mark.parametrize("deterministic", [False, True])
def test_log_floor_passes_no_gradient(deterministic):
    """f = softplus(-30) is far below the 1e-4 floor: the log-normal KL sends nothing back to the layer."""
    lin = _zero_linear(param_dtype=jnp.float64)
    lin.bias[...] = jnp.full((3,), -30.0)
    layer = J.InfoDropout(lin, activation="softplus", eval_kl=True, rngs=nnx.Rngs(1))
    x = X.astype(jnp.float64)
    noise = jnp.zeros((4, 3), jnp.float64)

    def loss(m):
        m(x, noise=noise, deterministic=deterministic)
        return J.kl_loss(m, 1)

    grads = nnx.grad(loss)(layer)
    np.testing.assert_array_equal(grads.layer.bias[...], np.zeros(3))
    np.testing.assert_array_equal(grads.layer.kernel[...], np.zeros((5, 3)))
    assert float(jnp.abs(grads.mu[...])) > 0  # the KL itself is differentiated


def test_non_finite_inputs_stay_non_finite():
    layer = J.InfoDropout(nnx.Linear(5, 3, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
    x = X.at[0, 0].set(jnp.nan)
    for deterministic in (True, False):  # the training call last: it leaves its KL on .kl
        z = layer(x, deterministic=deterministic)
        assert bool(jnp.all(jnp.isnan(z[0]))) and bool(jnp.all(jnp.isfinite(z[1:])))
    assert bool(jnp.isnan(layer.kl[...][0]))


# -- forward mode (custom_jvp) and what reverse mode keeps --------------------------


@pytest.mark.parametrize(
    ("activation", "prior", "mean_one"), [("softplus", "log-normal", True), ("relu", "log-uniform", False)]
)
def test_forward_mode_matches_autodiff_of_the_core(activation, prior, mean_one):
    """jax.jvp over every input and jax.jacfwd (also under jit, and of a vmapped call), drawn and injected noise."""
    for draw in (True, False):
        ours, core, args = _objectives(activation, prior, mean_one, draw)
        tangents = tuple(_normal(20 + i, jnp.shape(a)) for i, a in enumerate(args))
        if draw:  # the kernel draws eps from its key: the core's noise argument must not move
            tangents = (*tangents[:4], jnp.zeros_like(args[4]))
        _close(jax.jvp(ours, args, tangents), jax.jvp(core, args, tangents), 2)
        for fn in (ours, jax.jit(ours)):
            _close(jax.jacfwd(fn, argnums=(0, 1))(*args), jax.jacfwd(core, argnums=(0, 1))(*args), 2)
        batched = [
            jax.vmap(lambda h, fn=fn, p=args: fn(h, *p[1:]))(jnp.stack([args[0], -args[0]])) for fn in (ours, core)
        ]
        _close(*batched, 1)


def test_reverse_mode_keeps_only_the_inputs_and_the_key():
    """The tangent rule runs under jax.checkpoint: grad saves h, the logits and the key, no intermediate."""
    from jax._src.ad_checkpoint import saved_residuals  # private (jax 0.10): what print_saved_residuals prints

    spec = InfoDropoutSpec()

    def loss(h, a):
        z, kl = K.info_dropout_kernel(
            spec, "relu", jax.random.key(0), h, a, mu=None, sigma=None, deterministic=False, noise=None
        )
        return jnp.sum(z) + jnp.sum(kl)

    shapes = [tuple(aval.shape) for aval, _ in saved_residuals(loss, _normal(1), _normal(2))]
    assert sorted(shapes) == [(), (3, 4), (3, 4)]
