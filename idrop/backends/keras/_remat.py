"""The cheap alpha branch recomputed in backward, per Keras backend, by that framework's own engine.

With ``alpha_rank=r`` the alpha logits are ``a = up(t)``, ``t = down(x)``. With
``recompute_alpha=True`` the region ``(h, t, noise[, mu, sigma]) -> kernel(h, up(t), noise, ...)``
runs under

- **tensorflow**: ``tf.recompute_grad`` (the region's inputs are kept; ``up`` and the
  ``tf.custom_gradient`` kernel run again in the backward pass, ``up``'s variables watched there).
  ``noise`` is the kernel's Philox seed (:func:`._kernel.kernel_noise`, taken from the layer's
  ``SeedGenerator`` outside the region), so the rerun draws the same ``eps`` and ``eps`` is not kept;
- **jax**: ``jax.checkpoint`` (residuals: the region's inputs). ``noise`` is ``eps`` itself here
  (``keras.random.normal`` draws outside the region), so ``eps`` is kept: ``x + h + t + eps``;
- **torch**: :func:`idrop.backends.torch._remat.recomputed_kernel` (``torch.utils.checkpoint``),
  with ``eps`` drawn by Keras outside the region and kept, as on JAX.

The forward numbers are the plain kernel's; the gradients equal its gradients to rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from idrop.backends.keras._namespace import BACKEND
from idrop.core.spec import InfoDropoutSpec


def recomputed_kernel(
    kernel: Callable[..., Any], up: Callable[[Any], Any], spec: InfoDropoutSpec, rank: int
) -> Callable[..., Any]:
    """``(h, t, noise[, mu, sigma]) -> kernel(h, up(t), noise[, mu, sigma])``, recomputed in backward.

    ``kernel`` is :func:`._kernel.info_dropout_kernel`'s for the layer (``spec``, ``rank`` dims).
    """

    def region(h: Any, t: Any, noise: Any, *prior: Any) -> Any:
        return kernel(h, up(t), noise, *prior)

    if BACKEND == "tensorflow":
        import tensorflow as tf

        def tf_region(h: Any, t: Any, noise: Any, *prior: Any) -> Any:
            if noise.dtype.is_floating:  # injected eps: an argument, with its gradient
                return tf.recompute_grad(region)(h, t, noise, *prior)
            # The seed is closed over, not an argument: recompute_grad would watch the int32 seed and
            # warn; it has no gradient, and the rerun reads the same tensor.
            return tf.recompute_grad(lambda h, t, *prior: region(h, t, noise, *prior))(h, t, *prior)

        return tf_region
    if BACKEND == "jax":
        import jax

        return jax.checkpoint(region)
    from idrop.backends.torch._remat import recomputed_kernel as torch_recomputed

    def torch_region(h: Any, t: Any, noise: Any, *prior: Any) -> Any:
        mu, sigma = prior if prior else (None, None)
        return torch_recomputed(
            up, h, t, spec=spec, activation=spec.activation, reduce=True, batched=rank > 1,
            mu=mu, sigma=sigma, noise=noise, generator=None,
        )  # fmt: skip

    return torch_region
