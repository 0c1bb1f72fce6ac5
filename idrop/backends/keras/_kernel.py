"""The fused training kernel of :class:`idrop.backends.keras.InfoDropout`, per Keras backend.

``info_dropout_kernel(spec, kl_dtype, rank)`` returns ``(h, a, noise[, mu, sigma]) -> (z, per-sample kl)``
for the element-wise chain ``activation -> alpha -> noise -> z`` and the KL, and ``kernel_noise``
what ``noise`` is when the layer draws it:

- **tensorflow**: :func:`idrop.backends.tensorflow._kernel.info_dropout_kernel`, the
  ``tf.custom_gradient`` kernel (noise: the ``int32[2]`` Philox seed, drawn inside it);
- **jax**: ``keras.ops.custom_gradient`` (``jax.custom_gradient``) over the core's forward
  (:func:`idrop.core.functional.info_dropout`) and backward (:func:`idrop.core.vjp.info_dropout_vjp`,
  :func:`idrop.core.vjp.activation_vjp`) on :data:`._namespace.xp`, so the residuals are ``h``, the
  logits and ``eps`` instead of every intermediate of the chain; its backward is plain ``jnp`` and
  differentiable again;
- **torch**: :func:`idrop.backends.torch._kernel.info_dropout_kernel`, the torch adapter's
  ``torch.autograd.Function`` (in-place lean path, conformance-tested). Keras's own
  ``ops.custom_gradient`` on torch takes a single output (``CustomGradientFunction.backward(ctx,
  grad_output)``, Keras 3.15), and the kernel has two (``z`` and the KL).

On JAX and torch the noise is ``eps`` itself, drawn by ``keras.random.normal`` with the layer's
``SeedGenerator`` in float32 at least.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keras import ops

from idrop.backends.keras._namespace import BACKEND, draw_normal, xp
from idrop.core import functional as _functional
from idrop.core._xp import activation as _activation
from idrop.core.loss import per_sample_kl as _per_sample_kl
from idrop.core.spec import InfoDropoutSpec
from idrop.core.vjp import activation_vjp, info_dropout_vjp


def _jax_kernel(spec: InfoDropoutSpec, kl_dtype: str, rank: int) -> Callable[..., Any]:
    lognormal, batched = spec.prior == "log-normal", rank > 1

    @ops.custom_gradient
    def kernel(h: Any, a: Any, eps: Any, *prior: Any) -> Any:
        mu, sigma = prior if lognormal else (0.0, 1.0)
        f = _activation(spec.activation, h, xp=xp)
        half = kl_dtype != ops.dtype(f)
        z, kl = _functional.info_dropout(
            f, ops.cast(a, ops.dtype(f)), eps, spec=spec, mu=mu, sigma=sigma,
            kl_dtype=kl_dtype if half else None, xp=xp,
        )  # fmt: skip
        kl = _per_sample_kl(kl, batched=batched, xp=xp)

        def grad(*upstream: Any) -> tuple[Any, ...]:
            gz, gkl = upstream[0] if len(upstream) == 1 else upstream
            h32 = ops.cast(h, kl_dtype)
            f32 = _activation(spec.activation, h32, xp=xp)
            gkl = ops.cast(gkl, kl_dtype)
            if batched:  # one cotangent per sample, over that sample's units
                gkl = ops.reshape(gkl, (-1,) + (1,) * (len(h.shape) - 1))
            g = info_dropout_vjp(
                f32, ops.cast(a, kl_dtype), eps, ops.cast(gz, kl_dtype), gkl, spec=spec, mu=mu, sigma=sigma, xp=xp
            )
            g_h = ops.cast(activation_vjp(spec.activation, h32, g.f, xp=xp), h.dtype)
            out: tuple[Any, ...] = (g_h, ops.cast(g.alpha_logits, a.dtype), ops.zeros_like(eps))
            if lognormal:
                out += (ops.cast(ops.sum(g.mu), prior[0].dtype), ops.cast(ops.sum(g.sigma), prior[1].dtype))
            return out

        return (z, kl), grad

    return kernel


def _torch_kernel(spec: InfoDropoutSpec, kl_dtype: str, rank: int) -> Callable[..., Any]:
    from idrop.backends.torch._kernel import info_dropout_kernel as torch_kernel

    def kernel(h: Any, a: Any, eps: Any, *prior: Any) -> Any:
        mu, sigma = prior if prior else (None, None)
        return torch_kernel(
            h, a, spec=spec, activation=spec.activation, reduce=True, batched=rank > 1,
            mu=mu, sigma=sigma, noise=eps, generator=None,
        )  # fmt: skip

    return kernel


_KERNELS: dict[tuple[InfoDropoutSpec, str, int], Callable[..., Any]] = {}


def info_dropout_kernel(spec: InfoDropoutSpec, kl_dtype: str, rank: int) -> Callable[..., Any]:
    """The (cached) kernel ``(h, a, noise[, mu, sigma]) -> (z, kl)`` of ``spec`` on the active Keras backend.

    ``h`` is the pre-activation, of ``rank`` dimensions (1: one sample without a batch axis, whose
    KL is 0-d); ``noise`` is :func:`kernel_noise`'s or the injected ``eps`` in ``kl_dtype``;
    ``mu``/``sigma`` are scalar tensors for the log-normal prior only; ``kl`` is per sample, in ``kl_dtype``.
    """
    key = (spec, kl_dtype, rank)
    if key not in _KERNELS:
        build = {"tensorflow": _tensorflow_kernel, "jax": _jax_kernel, "torch": _torch_kernel}[BACKEND]
        _KERNELS[key] = build(spec, kl_dtype, rank)
    return _KERNELS[key]


def _tensorflow_kernel(spec: InfoDropoutSpec, kl_dtype: str, rank: int) -> Callable[..., Any]:
    from idrop.backends.tensorflow._kernel import info_dropout_kernel as tf_kernel

    return tf_kernel(spec, kl_dtype, rank)


def kernel_noise(seed: Any, h: Any) -> Any:
    """The kernel's ``noise`` when the layer draws: TensorFlow's Philox seed words, else ``eps`` itself."""
    if BACKEND == "tensorflow":
        from idrop.backends.tensorflow._namespace import seed_words

        return seed_words(seed)
    return draw_normal(h, seed)
