"""JAX/Flax NNX tools: mc_predict and sampling, KL maps and alpha statistics, logging, beta schedules."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

jax = pytest.importorskip("jax")
nnx = pytest.importorskip("flax.nnx")
import jax.numpy as jnp  # noqa: E402

from idrop.backends.jax import (  # noqa: E402
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


class Net(nnx.Module):
    def __init__(self, seed: int = 0, max_alpha: float = 0.7, alpha_min: float = 1e-3) -> None:
        rngs = nnx.Rngs(seed, dropout=seed + 1)
        self.drop = InfoDropout(
            nnx.Linear(6, 16, rngs=rngs),
            norm=nnx.BatchNorm(16, rngs=rngs),
            max_alpha=max_alpha,
            alpha_min=alpha_min,
            rngs=rngs,
        )
        self.plain = nnx.Dropout(0.5, rngs=rngs)
        self.out = nnx.Linear(16, 4, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.plain(self.drop(x)))


X = jax.random.normal(jax.random.key(1), (5, 6), dtype=jnp.float32)  # float32 also when x64 is on


def test_mc_predict_is_seeded_and_independent_of_chunking() -> None:
    net = Net()
    a = mc_predict(net, X, 9, chunk=2, seed=3)
    b = mc_predict(net, X, 9, chunk=None, seed=3)
    c = mc_predict(net, X, 9, chunk=2, seed=jax.random.key(3))
    d = mc_predict(net, X, 9, seed=4)
    for u, v, w in zip(a, b, c):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(u, w)
    assert not np.array_equal(a.mean, d.mean)
    assert a.mean.shape == a.std.shape == (5, 4) and a.entropy.shape == a.mutual_information.shape == (5,)
    np.testing.assert_allclose(a.mean.sum(-1), np.ones(5), rtol=1e-5, atol=1e-6)
    assert (a.std > 0).any() and (a.mutual_information >= 0).all()


def test_mc_predict_keeps_batch_norm_and_dropout_in_eval_and_mutates_nothing() -> None:
    net = Net()
    before = nnx.state(net)
    graphdef = nnx.graphdef(net)
    mc_predict(net, X, 4)
    after = nnx.state(net)

    def plain(a: jax.Array) -> jax.Array:
        return jax.random.key_data(a) if jnp.issubdtype(a.dtype, jax.dtypes.prng_key) else a

    for u, v in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
        np.testing.assert_array_equal(plain(u), plain(v))  # RNG counts, BN statistics, KL records untouched
    assert nnx.graphdef(net) == graphdef and net.drop.deterministic is False
    tiny = Net(max_alpha=1e-6, alpha_min=1e-6)
    ref = jax.nn.softmax(nnx.view(tiny, deterministic=True, use_running_average=True)(X), -1)
    np.testing.assert_allclose(mc_predict(tiny, X, 3).mean, ref, rtol=1e-4, atol=1e-5)


def test_mc_predict_edge_inputs_and_bad_arguments() -> None:
    net = Net()
    assert mc_predict(net, X[:0], 3).mean.shape == (0, 4)
    assert mc_predict(net, X[0], 3).mean.shape == (4,)  # nnx.Linear takes one example unbatched
    for kwargs, name in [({"n_samples": 0}, "n_samples"), ({"n_samples": 2, "chunk": -1}, "chunk")]:
        with pytest.raises(ValueError, match=f"argument `{name}`"):
            mc_predict(net, X, **kwargs)
    with pytest.raises(ValueError, match="argument `seed`"):
        mc_predict(net, X, 2, seed=-1)
    with pytest.raises(TypeError, match="argument `x`"):
        mc_predict(net, [[0.0] * 6], 2)


def test_sampling_turns_only_the_noise_on() -> None:
    net = Net()
    with sampling(net):
        assert net.drop.deterministic is False and net.plain.deterministic is True
        assert net.drop.norm.use_running_average is True
        assert not np.array_equal(net(X), net(X))
    assert net.plain.deterministic is False and net.drop.norm.use_running_average is False


def test_kl_map_is_the_noiseless_kl_of_the_layer() -> None:
    net = Net()
    maps = kl_maps(net, X)
    assert list(maps) == ["drop"] and maps["drop"].shape == (5, 16)
    assert net.drop.deterministic is False and not hasattr(net.drop, "_probe")
    layer = nnx.view(net, deterministic=True, use_running_average=True).drop
    _, expected = info_dropout(
        None, layer.activation_of(X), layer.alpha_layer(X), **layer.spec.kl_options, deterministic=True
    )
    np.testing.assert_array_equal(maps["drop"], expected)
    np.testing.assert_allclose(jax.jit(kl_map)(layer, X), expected, rtol=1e-5, atol=1e-6)  # XLA fuses under jit
    a = alpha_map(layer, X)
    assert ((a >= 1e-3) & (a <= 0.701)).all()
    with pytest.raises(TypeError, match="argument `layer`"):
        kl_map(net.out, X)
    with pytest.raises(ValueError, match="InfoDropout"):
        kl_maps(net.out, X)


def test_alpha_stats_and_diagnostics_warn_once() -> None:
    net = Net()
    net.drop.alpha_layer.bias[...] = jnp.full((16,), 50.0, jnp.float32)  # every unit at the cap
    stats = alpha_stats(net, X)
    assert float(stats["drop"].pinned_high) == 1.0
    core_diag.reset_warnings()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        logs = diagnostics(net, X, task_loss=0.01, beta=1.0, n_train=1)
        diagnostics(net, X, task_loss=0.01, beta=1.0, n_train=1)
    assert sorted(logs) == ["drop/alpha_mean", "drop/kl", "drop/pinned_high", "drop/pinned_low", "kl_share", "kl_term"]
    # Alpha at the cap carries no KL (the log-uniform KL is 0 there): only the pinned warning, once.
    assert [w.category for w in seen if issubclass(w.category, IdropWarning)] == [IdropWarning] and "max_alpha" in str(
        seen[0].message
    )
    assert logs["kl_share"] < 1e-3
    core_diag.reset_warnings()


def test_beta_schedule_is_jit_safe() -> None:
    s = beta_schedule("cyclical", 1e-2, cycle_steps=10, ramp=0.5)
    steps = jnp.arange(25)
    np.testing.assert_allclose(jax.jit(jax.vmap(s))(steps), [s(int(i)) for i in steps], rtol=1e-6, atol=0)
    assert s(3).dtype == jnp.float32


def test_the_tools_leave_the_kl_bookkeeping_alone() -> None:
    from idrop.backends.jax import kl_loss

    net = Net()
    net(X)
    expected = float(kl_loss(net, 100))
    net(X)  # a training call: its KL is pending
    mc_predict(net, X, 3)
    kl_maps(net, X)
    with sampling(net):
        net(X)
    assert float(kl_loss(net, 100)) == pytest.approx(expected, rel=1e-6)
