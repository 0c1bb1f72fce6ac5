"""JAX export: the evaluation and sampling graphs through jax.export serialise/deserialise give the
module's own outputs to float32 rounding."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from idrop.backends.jax import InfoDropout, export, noise_shapes  # noqa: E402


def _flatten(x):
    return x.reshape(x.shape[0], -1)


def test_both_graphs_match_the_module(tmp_path):
    r = nnx.Rngs(0)
    model = nnx.Sequential(
        InfoDropout(nnx.Conv(1, 4, (3, 3), padding="VALID", rngs=r), norm=nnx.BatchNorm(4, rngs=r), rngs=r),
        _flatten,
        InfoDropout(nnx.Linear(144, 8, rngs=r), activation="softplus", rngs=r),
        nnx.Linear(8, 3, rngs=r),
    )
    model.layers[0].norm.mean[...] += 0.3  # running statistics that differ from a batch's own
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 1), dtype=jnp.float32)
    shapes = noise_shapes(model, x)
    assert shapes == [(2, 6, 6, 4), (2, 8)]
    eps = [jax.random.normal(jax.random.key(i), s, dtype=jnp.float32) for i, s in enumerate(shapes)]
    before = nnx.state(model)
    ref = nnx.clone(model)
    ref.eval()
    want_eval = ref(x)
    l0, _, l2, l3 = ref.layers
    want_sampling = l3(l2(_flatten(l0(x, noise=eps[0], deterministic=False)), noise=eps[1], deterministic=False))
    for sampling, want, inputs in ((False, want_eval, [x]), (True, want_sampling, [x, *eps])):
        path = tmp_path / f"graph_{sampling}.jax"
        export(model, path, x, sampling=sampling)
        loaded = jax.export.deserialize(path.read_bytes())
        np.testing.assert_allclose(loaded.call(*inputs), want, rtol=1e-5, atol=1e-6)
    assert model.layers[0].deterministic is False and isinstance(model.layers[0], InfoDropout)  # untouched
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), before, nnx.state(model)))
    export(model, tmp_path / "dyn.jax", x, sampling=True, dynamic_batch=True)  # exported at batch 2, called at 5
    x5 = jax.random.normal(jax.random.key(2), (5, 8, 8, 1), dtype=jnp.float32)
    eps5 = [jax.random.normal(jax.random.key(i), (5, *s[1:]), dtype=jnp.float32) for i, s in enumerate(shapes)]
    want5 = l3(l2(_flatten(l0(x5, noise=eps5[0], deterministic=False)), noise=eps5[1], deterministic=False))
    got5 = jax.export.deserialize((tmp_path / "dyn.jax").read_bytes()).call(x5, *eps5)
    np.testing.assert_allclose(got5, want5, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="Invalid value received for argument `format`"):
        export(model, tmp_path / "m.onnx", x, format="onnx")


def test_sampling_export_of_a_layer_recording_its_kl_in_evaluation(tmp_path):
    """A layer built with eval_kl=True records its KL in the evaluation calls that find the noise shapes:
    they run on a copy merged inside the trace (Flax refused the update of a module from outside it)."""
    r = nnx.Rngs(0)
    model = nnx.Sequential(InfoDropout(nnx.Linear(4, 3, rngs=r), eval_kl=True, rngs=r), nnx.Linear(3, 2, rngs=r))
    x = jnp.ones((2, 4), jnp.float32)
    before = nnx.state(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert noise_shapes(model, x) == [(2, 3)]
        export(model, tmp_path / "s.jax", x, sampling=True)
    assert [str(w.message) for w in caught] == []
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), before, nnx.state(model)))  # untouched
    eps = jax.random.normal(jax.random.key(1), (2, 3), dtype=jnp.float32)
    ref = nnx.clone(model)
    want = ref.layers[1](ref.layers[0](x, noise=eps, deterministic=False))
    got = jax.export.deserialize((tmp_path / "s.jax").read_bytes()).call(x, eps)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
