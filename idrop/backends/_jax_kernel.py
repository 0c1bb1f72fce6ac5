"""The JAX training kernel: Information Dropout's element-wise chain as one ``jax.custom_vjp``.

The forward pass is :func:`idrop.core.functional.info_dropout` (after the activation,
when one is folded in), so the numbers are the core's; the backward pass is
:func:`idrop.core.vjp.info_dropout_vjp`. Automatic differentiation would keep every
intermediate of the chain (sigmoid, alpha, the exponent, the noise, ``log f``...) for
the backward pass; this kernel keeps only the activation ``f``, the alpha logits and
the PRNG key: ``jax.random`` is counter-based, so ``eps`` is drawn again, bit for bit,
in the backward pass (injected ``noise=`` is kept instead). With the activation folded
in, the pre-activation ``h`` is not kept either: ``relu'(h) = [f > 0]`` and
``softplus'(h) = sigmoid(h) = -expm1(-f)``.

Works under ``jit``, ``grad``, ``vmap`` and ``checkpoint`` (no forward-mode AD: a
``custom_vjp`` has none). At ``h == 0`` exactly the ReLU derivative is 0 (autodiff of
``maximum(h, 0)`` gives 1/2 there), as in the torch kernel. The cotangent of injected
``noise`` is exact; that of ``mu``/``sigma`` is summed over the units they broadcast to.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from idrop.core import functional as _functional
from idrop.core._xp import activation as _activation
from idrop.core.spec import InfoDropoutSpec
from idrop.core.vjp import info_dropout_vjp


class JaxNamespace:
    """``jax.numpy`` plus the core protocol's optional ``sigmoid`` (``jax.nn.sigmoid``, XLA's logistic op)
    and ``relu``.

    Without it the core writes sigmoid as ``exp(-softplus(-a))``, three transcendental passes
    that XLA on the CPU does not fuse into one loop; the two agree to a few ulps.
    """

    sigmoid = staticmethod(jax.nn.sigmoid)
    # max(a, 0) with maximum's tie gradient (1/2), one dispatch when called op by op (inlined under jit).
    relu = staticmethod(jax.jit(lambda a: jnp.maximum(a, jnp.zeros((), a.dtype))))

    def __getattr__(self, name: str) -> Any:
        return getattr(jnp, name)


XP = JaxNamespace()


class Config(NamedTuple):
    """The static options of one kernel call (hashable: ``nondiff_argnums``)."""

    spec: InfoDropoutSpec
    activation: str | None  # folded activation, or None when the input is f itself
    training: bool
    draw: bool  # the noise argument is a PRNG key (eps drawn here) rather than eps
    kl_dtype: Any  # numpy dtype of alpha, the KL and eps; None: f's dtype


_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _threefry_fast_path(key: Any, shape: tuple[int, ...], dtype: Any) -> bool:
    return (
        jnp.dtype(dtype) == jnp.float32
        and math.prod(shape) < 2**32
        and len(shape) > 0
        and jax.config.jax_threefry_partitionable
        and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        and str(jax.random.key_impl(key)) == "threefry2x32"
    )


def _threefry_normal(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``jax.random.normal(key, shape, float32)`` bit for bit, as element-wise ops XLA can fuse.

    ``jax.random`` lowers Threefry-2x32 on the CPU as a rolled loop whose two ``uint32``
    arrays (and the normal's intermediates) XLA must materialise; the same hash unrolled
    fuses into its consumers. Same counters (the flat index), rounds, key schedule,
    bits-to-uniform and inverse-erf transform as ``jax.random`` (partitionable Threefry).
    """
    k = jax.random.key_data(key)
    k1, k2 = k[..., 0], k[..., 1]
    k3 = k1 ^ k2 ^ jnp.uint32(0x1BD11BDA)
    ks = (k1, k2, k3)
    x0 = jnp.zeros(shape, jnp.uint32) + k1  # high word of the counter is 0
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


def draw_normal(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """``jax.random.normal(key, shape, dtype)``; float32 Threefry draws by :func:`_threefry_normal`."""
    if _threefry_fast_path(key, shape, dtype):
        return _threefry_normal(key, shape)
    return jax.random.normal(key, shape, dtype=dtype)


def _eps(cfg: Config, f: jax.Array, noise: Any) -> jax.Array | None:
    if not cfg.training:
        return None
    if cfg.draw:
        return draw_normal(noise, f.shape, cfg.kl_dtype or f.dtype)
    return noise


def _forward(cfg: Config, h: jax.Array, a: jax.Array, noise: Any, mu: Any, sigma: Any) -> tuple[Any, jax.Array]:
    f = h if cfg.activation is None else _activation(cfg.activation, h, xp=XP)
    prior = {} if mu is None else {"mu": mu, "sigma": sigma}
    z, kl = _functional.info_dropout(
        f,
        a,
        _eps(cfg, f, noise),
        spec=cfg.spec,
        **prior,
        training=cfg.training,
        kl_dtype=None if cfg.kl_dtype in (None, f.dtype) else cfg.kl_dtype,
        xp=XP,
    )
    return (z, kl), f


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def info_dropout_chain(cfg: Config, h: jax.Array, a: jax.Array, noise: Any, mu: Any, sigma: Any) -> tuple[Any, Any]:
    """``(z, kl)`` of :func:`idrop.core.functional.info_dropout` applied to ``act(h)`` (``h`` when no activation).

    ``noise``: a PRNG key (``cfg.draw``), ``eps`` in ``cfg.kl_dtype``, or None (evaluation).
    ``mu``/``sigma``: arrays in ``cfg.kl_dtype`` for the log-normal prior, else None.
    """
    return _forward(cfg, h, a, noise, mu, sigma)[0]


def _fwd(cfg: Config, h: jax.Array, a: jax.Array, noise: Any, mu: Any, sigma: Any) -> tuple[Any, tuple]:
    out, f = _forward(cfg, h, a, noise, mu, sigma)
    return out, (f, a, noise, mu, sigma)


def _sum_to(g: jax.Array, like: jax.Array) -> jax.Array:
    """Sum the per-unit ``g`` down to the shape of ``like`` (which broadcast to it)."""
    shape = jnp.shape(like)
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    return jnp.sum(g, axis=axes).reshape(shape).astype(like.dtype)


def _bwd(cfg: Config, res: tuple, cts: tuple) -> tuple:
    f, a, noise, mu, sigma = res
    z_cot, kl_cot = cts
    eps = _eps(cfg, f, noise)
    cdt = jnp.dtype(cfg.kl_dtype or f.dtype)
    fc, ac, zc = f.astype(cdt), a.astype(cdt), z_cot.astype(cdt)
    prior = {} if mu is None else {"mu": mu, "sigma": sigma}
    g = info_dropout_vjp(fc, ac, eps, zc, kl_cot, spec=cfg.spec, **prior, training=cfg.training, xp=XP)
    g_h = g.f
    if cfg.activation == "relu":
        g_h = jnp.where(fc > 0, g_h, jnp.zeros_like(g_h))
    elif cfg.activation == "softplus":
        g_h = g_h * -jnp.expm1(-fc)
    g_noise = None
    if cfg.training and not cfg.draw:  # d z / d eps = z * alpha (both noise forms)
        alpha = _functional.alpha_from_logits(ac, max_alpha=cfg.spec.max_alpha, alpha_min=cfg.spec.alpha_min, xp=XP)
        z = fc * jnp.exp(alpha * eps - (0.5 * alpha * alpha if cfg.spec.mean_one else 0.0))
        g_noise = (zc * z * alpha).astype(noise.dtype)
    g_mu = None if mu is None else _sum_to(g.mu, mu)
    g_sigma = None if sigma is None else _sum_to(g.sigma, sigma)
    return g_h.astype(f.dtype), g.alpha_logits.astype(a.dtype), g_noise, g_mu, g_sigma


# Each rule as one jitted function: called op by op (outside any jit) the chain is one compiled
# dispatch instead of ~40; inside a jit the inner jit is inlined, so nothing changes there.
info_dropout_chain.defvjp(jax.jit(_fwd, static_argnums=0), jax.jit(_bwd, static_argnums=0))
