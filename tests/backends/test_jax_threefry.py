"""The unrolled Threefry copy in ``_namespace.draw_normal`` is ``jax.random.normal``, bit for bit.

The copy stays only while this pins it: several shapes, dtypes and keys (typed ``jax.random.key``,
raw ``jax.random.PRNGKey``, another key implementation), under ``jit`` and ``vmap``, and the
version guard that sends unchecked JAX versions to ``jax.random`` itself.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from idrop.backends.jax import _namespace as N  # noqa: E402

SHAPES = [(1,), (5,), (3, 7), (2, 3, 5, 7), (128, 64), (0, 3)]
KEYS = {
    "typed": lambda seed: jax.random.key(seed),
    "raw": lambda seed: jax.random.PRNGKey(seed),
    "rbg": lambda seed: jax.random.key(seed, impl="rbg"),
}
DTYPES = [jnp.float32, jnp.float16, jnp.bfloat16, jnp.float64]


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("kind", list(KEYS))
def test_draw_normal_is_jax_random_normal(kind):
    # Jitted, as the layers use it (eager, every op of the unrolled hash would be compiled on its own).
    draw = jax.jit(N.draw_normal, static_argnums=(1, 2))
    for seed, shape in enumerate(SHAPES):
        key = KEYS[kind](seed)
        _same_bits(draw(key, shape, jnp.float32), jax.random.normal(key, shape, jnp.float32))
    _same_bits(N.draw_normal(key, (3, 7), jnp.float32), jax.random.normal(key, (3, 7), jnp.float32))
    # Other dtypes go to jax.random itself.
    for dtype in DTYPES[1:]:
        _same_bits(draw(key, (3, 7), dtype), jax.random.normal(key, (3, 7), dtype))


@pytest.mark.parametrize("kind", ["typed", "raw"])
def test_the_copy_itself_is_pinned_on_this_jax(kind):
    """Not only draw_normal: the unrolled hash, for the float32 Threefry keys that take it."""
    assert jax.__version_info__[:2] in N.THREEFRY_CHECKED, (
        f"jax {jax.__version__} is not in THREEFRY_CHECKED: draw_normal uses jax.random.normal on it. "
        "If this test passes with the version added, add it."
    )
    for seed, shape in enumerate(SHAPES):
        key = KEYS[kind](seed)
        words = N._fast_path(key, shape, jnp.float32)
        if shape[0] == 0:
            words = N._threefry_key_data(key)  # the guard sends empty draws to jax.random; the copy agrees anyway
        assert words is not None
        _same_bits(N._threefry_normal(words, shape), jax.random.normal(key, shape, jnp.float32))


@pytest.mark.parametrize("kind", ["typed", "raw"])
def test_under_vmap_each_key_gets_its_own_draw(kind):
    keys = jax.vmap(KEYS[kind])(jnp.arange(3))
    got = jax.vmap(lambda k: N.draw_normal(k, (4, 6), jnp.float32))(keys)
    _same_bits(got, jax.vmap(lambda k: jax.random.normal(k, (4, 6), jnp.float32))(keys))
    assert not np.array_equal(got[0], got[1])


def test_version_guard_falls_back_to_jax_random(monkeypatch):
    key, shape = jax.random.key(3), (16, 8)
    assert N._fast_path(key, shape, jnp.float32) is not None
    monkeypatch.setattr(N, "THREEFRY_CHECKED", ())
    assert N._fast_path(key, shape, jnp.float32) is None
    calls = []
    real = jax.random.normal
    monkeypatch.setattr(jax.random, "normal", lambda *a, **k: calls.append(1) or real(*a, **k))
    _same_bits(N.draw_normal(key, shape, jnp.float32), real(key, shape, jnp.float32))
    assert calls == [1]


def test_non_partitionable_threefry_falls_back():
    key, shape = jax.random.key(4), (8, 8)
    jax.config.update("jax_threefry_partitionable", False)
    try:
        assert N._fast_path(key, shape, jnp.float32) is None
        _same_bits(N.draw_normal(key, shape, jnp.float32), jax.random.normal(key, shape, jnp.float32))
    finally:
        jax.config.update("jax_threefry_partitionable", True)
