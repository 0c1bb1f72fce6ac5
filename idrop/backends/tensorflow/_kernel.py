"""The fused training kernel of :class:`idrop.backends.tensorflow.InfoDropout`'s element-wise chain.

``activation -> alpha -> noise -> z`` and the per-sample KL as one ``tf.custom_gradient``:
the forward pass is :func:`idrop.core.functional.info_dropout`, the backward pass
:func:`idrop.core.vjp.info_dropout_vjp` and :func:`idrop.core.vjp.activation_vjp`, both on
the adapter's namespace :data:`._namespace.xp`, so the tape keeps only the pre-activation
``h``, the alpha logits and the noise ``eps`` instead of every intermediate of the chain.

The noise is drawn in the forward body from a seed (or given) and kept, not
regenerated from the seed in the backward body: a second Philox draw costs as much
as the rest of the chain on the CPU. Under ``jit_compile`` the two bodies fuse into the
surrounding XLA program; otherwise tensors of :data:`XLA_MIN_SIZE` elements or more
run each body as one small XLA program (one fused loop instead of ~40 kernel
launches), smaller ones op by op (no compilation per shape for small inputs).

Higher-order derivatives (a gradient penalty, a Hessian-vector product): when a tape records
the backward pass itself, the backward formulas run as plain ops on the kernel's live inputs,
so the recording tape differentiates them; otherwise they run on gradient-stopped copies,
which keeps the first-order path as lean as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from idrop.backends.tensorflow._namespace import recording, xp
from idrop.core import functional as _functional
from idrop.core._xp import activation as _activation
from idrop.core.loss import per_sample_kl as _per_sample_kl
from idrop.core.spec import InfoDropoutSpec
from idrop.core.vjp import activation_vjp, info_dropout_vjp

#: Elements from which an un-jitted caller runs the chain as its own XLA program.
XLA_MIN_SIZE = 1 << 15


def _build(spec: InfoDropoutSpec, kl_dtype: str, batched: bool) -> Callable[..., Any]:
    """The kernel ``(h, a, noise[, mu, sigma]) -> (z, per-sample kl)`` for one spec and KL dtype."""
    lognormal = spec.prior == "log-normal"

    def forward(h: Any, a: Any, noise: Any, *prior: Any) -> tuple[Any, Any, Any]:
        if noise.dtype.is_integer:  # a seed: draw here (inside the XLA program when there is one)
            eps = tf.random.stateless_normal(tf.shape(h), seed=noise, dtype=kl_dtype, alg="philox")
        else:
            eps = tf.cast(noise, kl_dtype)
        f = _activation(spec.activation, h, xp=xp)
        if a.dtype != f.dtype:
            a = tf.cast(a, f.dtype)
        mu, sigma = prior if lognormal else (0.0, 1.0)
        half = kl_dtype != f.dtype.name
        z, kl = _functional.info_dropout(
            f, a, eps, spec=spec, mu=mu, sigma=sigma, kl_dtype=kl_dtype if half else None, xp=xp
        )
        return z, _per_sample_kl(kl, batched=batched, xp=xp), eps

    def backward(h: Any, a: Any, eps: Any, gz: Any, gkl: Any, *prior: Any) -> tuple[Any, ...]:
        h32 = tf.cast(h, kl_dtype)
        f = _activation(spec.activation, h32, xp=xp)
        gkl = tf.cast(gkl, kl_dtype)
        if batched:  # one cotangent per sample, over that sample's units
            gkl = tf.reshape(gkl, [-1] + [1] * (h.shape.rank - 1))
        mu, sigma = prior if lognormal else (0.0, 1.0)
        g = info_dropout_vjp(
            f, tf.cast(a, kl_dtype), eps, tf.cast(gz, kl_dtype), gkl, spec=spec, mu=mu, sigma=sigma, xp=xp
        )
        g_h = tf.cast(activation_vjp(spec.activation, h32, g.f, xp=xp), h.dtype)
        out: tuple[Any, ...] = (g_h, tf.cast(g.alpha_logits, a.dtype))
        if lognormal:
            out += (tf.reduce_sum(g.mu), tf.reduce_sum(g.sigma))
        return out

    xla_forward = tf.function(forward, jit_compile=True, reduce_retracing=True, autograph=False)
    xla_backward = tf.function(backward, jit_compile=True, reduce_retracing=True, autograph=False)

    @tf.custom_gradient
    def kernel(h: Any, a: Any, noise: Any, *prior: Any) -> Any:
        n = h.shape.num_elements()
        xla = n is None or n >= XLA_MIN_SIZE
        live = (h, a, *prior)
        # stop_gradient: the eager tape must not record (and keep) the forward's intermediates.
        h0, a0, noise0, *prior0 = (tf.stop_gradient(t) for t in (h, a, noise, *prior))
        z, kl, eps = (xla_forward if xla else forward)(h0, a0, noise0, *prior0)
        # Only shapes and dtypes for the missing cotangents: closing over z or kl would keep them alive.
        z_like, kl_like = (tf.shape(z), z.dtype), (tf.shape(kl), kl.dtype)

        def grad(gz: Any, gkl: Any) -> tuple[Any, ...]:
            gz = tf.zeros(*z_like) if gz is None else gz
            gkl = tf.zeros(*kl_like) if gkl is None else gkl
            if recording():  # a tape differentiates this backward pass: plain ops on the live inputs
                h1, a1, *prior1 = live
                g = backward(h1, a1, eps, gz, gkl, *prior1)
            else:
                g = (xla_backward if xla else backward)(h0, a0, eps, gz, gkl, *prior0)
            return (g[0], g[1], None, *g[2:])

        return (z, kl), grad

    return kernel


_KERNELS: dict[tuple[InfoDropoutSpec, str, int], Callable[..., Any]] = {}


def info_dropout_kernel(spec: InfoDropoutSpec, kl_dtype: str, rank: int) -> Callable[..., Any]:
    """The (cached) kernel ``(h, a, noise[, mu, sigma]) -> (z, kl)`` of ``spec`` (activation included).

    ``h`` is the pre-activation, of ``rank`` dimensions (1: one sample without a batch axis,
    whose KL is 0-d); ``noise`` the standard normals ``eps`` (any float dtype) or an
    ``int32[2]`` seed of ``tf.random.stateless_normal(alg="philox")``, drawn in ``kl_dtype``;
    ``mu``/``sigma`` scalar tensors for the log-normal prior only; ``kl`` is per sample, in ``kl_dtype``.
    """
    key = (spec, kl_dtype, rank)  # one per rank: reduce_retracing would otherwise forget the rank
    if key not in _KERNELS:
        _KERNELS[key] = _build(spec, kl_dtype, batched=rank > 1)
    return _KERNELS[key]
