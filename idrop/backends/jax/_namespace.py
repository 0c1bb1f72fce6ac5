"""What the core runs on in JAX: the ``xp`` namespace, the dtype and input rules, the noise draws, the RNG plumbing.

- ``xp`` is ``jax.numpy`` plus the core protocol's optional ``sigmoid`` and ``relu``
  (``jax.nn.sigmoid``, XLA's logistic op; ``jax.nn.relu``, whose derivative at 0 is 0 and
  which keeps NaN a NaN).
- Half-precision arrays get their alpha, KL and noise in float32 (:func:`kl_dtype`).
- Layer inputs follow ``docs/design-notes.md`` section 2: an array (``jax.Array`` or NumPy),
  floating point, at least 1-d, in the dtype the layer computes in. Every check reads only
  shapes and dtypes, so it runs at trace time under ``jit`` as well.
- ``eps`` is drawn by :func:`draw_normal`: ``jax.random.normal`` bit for bit (see its docstring).
- A module's noise key comes from its forked RNG stream or the call's ``rngs``, as in
  ``flax.nnx.Dropout``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from idrop.core.spec import (
    check_float_dtype,
    check_input_dtype,
    check_input_rank,
    check_input_type,
    invalid,
)


class JaxNamespace:
    """``jax.numpy`` plus ``sigmoid`` and ``relu`` from ``jax.nn`` (both jitted, one dispatch each).

    Without ``sigmoid`` the core writes it as ``exp(-softplus(-a))``, three transcendental passes
    that XLA on the CPU does not fuse into one loop; the two agree to a few ulps.
    """

    sigmoid = staticmethod(jax.nn.sigmoid)
    relu = staticmethod(jax.nn.relu)  # ReLU'(0) = 0 (its custom JVP), as idrop.core._xp.relu

    def __getattr__(self, name: str) -> Any:
        return getattr(jnp, name)


xp = JaxNamespace()

# -- dtypes and input rules ---------------------------------------------------------------

HALF = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))


def kl_dtype(dtype: Any) -> np.dtype:
    """float32 for half-precision arrays (alpha, KL and noise), else ``dtype`` itself."""
    dtype = jnp.dtype(dtype)
    return jnp.dtype(jnp.float32) if dtype in HALF else dtype


def canonical(dtype: Any) -> np.dtype:
    """The dtype JAX computes in for ``dtype``: float64 is float32 unless ``jax_enable_x64`` is on."""
    return jnp.dtype(jax.dtypes.canonicalize_dtype(dtype))


def is_array(value: Any) -> bool:
    """A ``jax.Array`` (tracers included) or a NumPy array; lists, tuples and numbers are not."""
    return isinstance(value, (jax.Array, np.ndarray))


def check_array(name: str, value: Any) -> None:
    """TypeError unless ``value`` is an array (``check_input_type``)."""
    check_input_type(name, value, is_array(value))


def check_float(name: str, value: Any) -> None:
    """TypeError unless ``value`` has a floating-point dtype (``check_float_dtype``)."""
    dtype = jnp.dtype(value.dtype) if hasattr(value, "dtype") else jnp.asarray(value).dtype
    check_float_dtype(name, dtype.name, bool(jnp.issubdtype(dtype, jnp.floating)))


def check_layer_input(x: Any, compute_dtype: Any) -> None:
    """A layer's input: an array, floating point, at least 1-d, in ``compute_dtype`` (None: any float).

    Both dtypes are compared after JAX's canonicalisation, so a NumPy float64 batch is a float32
    batch while x64 is off (JAX computes it in float32), and refused by a float32 layer when it is on.
    """
    check_array("x", x)
    check_float("x", x)
    check_input_rank("x", np.shape(x))
    if compute_dtype is not None:
        check_input_dtype("x", canonical(x.dtype).name, canonical(compute_dtype).name)


# -- noise draws ----------------------------------------------------------------------------

#: (major, minor) JAX versions whose ``jax.random.normal`` :func:`_threefry_normal` was checked
#: against, bit for bit (tests/backends/test_jax_threefry.py).
THREEFRY_CHECKED = ((0, 10),)
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def need_key(key: Any) -> Any:
    """``key``, or the error for a draw without one."""
    if key is None:
        raise invalid("key", "a jax.random key when deterministic=False and noise is None", key)
    return key


def _threefry_key_data(key: jax.Array) -> jax.Array | None:
    """The two uint32 words of a Threefry-2x32 key (typed or raw), or None for any other key."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key) if str(jax.random.key_impl(key)) == "threefry2x32" else None
    raw = key.dtype == jnp.uint32 and key.shape == (2,)
    return key if raw and jax.config.jax_default_prng_impl == "threefry2x32" else None


def _fast_path(key: Any, shape: tuple[int, ...], dtype: Any) -> jax.Array | None:
    """The key's words when :func:`_threefry_normal` gives ``jax.random.normal``'s bits, else None."""
    if (
        jax.__version_info__[:2] not in THREEFRY_CHECKED
        or jnp.dtype(dtype) != jnp.float32
        or not 0 < len(shape)
        or math.prod(shape) >= 2**32
        or not jax.config.jax_threefry_partitionable
        or not isinstance(key, jax.Array)
    ):
        return None
    return _threefry_key_data(key)


def _threefry_normal(k: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Float32 standard normals from the key words ``k``, as element-wise ops XLA can fuse.

    Same counters (the flat index; high word 0), rounds, key schedule, bits-to-uniform and
    inverse-erf transform as ``jax.random.normal`` with partitionable Threefry-2x32
    (``jax._src.prng.threefry_2x32``, ``jax._src.random._normal_real``, jax 0.10).
    """
    k1, k2 = k[..., 0], k[..., 1]
    ks = (k1, k2, k1 ^ k2 ^ jnp.uint32(0x1BD11BDA))
    x0 = jnp.zeros(shape, jnp.uint32) + k1
    x1 = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape) + k2
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = (x1 << jnp.uint32(r)) | (x1 >> jnp.uint32(32 - r))
            x1 = x0 ^ x1
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
    bits = x0 ^ x1
    one = jnp.uint32(np.array(1.0, np.float32).view(np.uint32))
    floats = jax.lax.bitcast_convert_type((bits >> jnp.uint32(9)) | one, jnp.float32) - jnp.float32(1.0)
    lo = np.nextafter(np.float32(-1.0), np.float32(0.0))
    u = jnp.maximum(lo, floats * (np.float32(1.0) - lo) + lo)
    return np.float32(np.sqrt(2)) * jax.lax.erf_inv(u)


def draw_normal(key: Any, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """``jax.random.normal(key, shape, dtype)``, bit for bit.

    ``jax.random`` lowers Threefry-2x32 on the CPU as a rolled loop whose two ``uint32`` arrays
    (and the normal's intermediates) XLA materialises; the custom-JVP kernel draws ``eps`` again
    in its backward pass, so for float32 draws from a Threefry key (typed ``jax.random.key`` or
    raw ``jax.random.PRNGKey``) this computes the same hash unrolled (:func:`_threefry_normal`),
    which XLA fuses into the kernel. That copy was checked bit for bit against
    ``jax.random.normal`` of jax 0.10 (:data:`THREEFRY_CHECKED`; tests/backends/test_jax_threefry.py
    pins it). On any other JAX version, or without partitionable Threefry, or for other
    dtypes and key implementations, this calls ``jax.random.normal`` itself: the same bits,
    at the cost of the rolled loop (more memory traffic per draw) -- never different noise.
    """
    words = _fast_path(key, tuple(shape), dtype)
    if words is None:
        return jax.random.normal(key, shape, dtype=dtype)
    return _threefry_normal(words, tuple(shape))


def draw_uniform(key: Any, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """Standard-uniform draws on ``[0, 1)`` (binary dropout keeps a unit where ``u >= rate``)."""
    return jax.random.uniform(key, shape, dtype=dtype)


# -- RNG plumbing of the modules (as flax.nnx.Dropout has it) -------------------------------


def own_stream(rngs: Any, rng_collection: str) -> Any:
    """The module's own RNG stream: a fork of ``rngs[rng_collection]``, as ``nnx.Dropout`` stores it."""
    if isinstance(rngs, nnx.Rngs):
        return rngs[rng_collection].fork()
    if isinstance(rngs, nnx.RngStream):
        return rngs.fork()
    if rngs is None:
        return nnx.data(None)
    raise TypeError(f"rngs must be a Rngs, RngStream or None, but got {type(rngs)}.")


def call_key(call_rngs: Any, own: Any, rng_collection: str, owner: str) -> Any:
    """A fresh key from the call's ``rngs`` (Rngs, RngStream or key), else from the module's stream."""
    rngs = call_rngs if call_rngs is not None else own
    if rngs is None:
        raise ValueError(
            f"`deterministic` is False, but no `rngs` argument was provided to {owner} "
            "as either a __call__ argument or class attribute."
        )
    if isinstance(rngs, nnx.Rngs):
        return rngs[rng_collection]()
    if isinstance(rngs, nnx.RngStream):
        return rngs()
    if isinstance(rngs, jax.Array):
        return rngs
    raise TypeError(f"rngs must be a Rngs, RngStream or jax.Array, but got {type(rngs)}.")
