"""The NAIVE JAX/Flax NNX baseline: Information Dropout as the public ports write it.

Two separate layers (the map and the alpha branch), ``jax.nn``/``jnp`` element-wise
ops one by one, and ``jax.random.normal`` for the noise. Eagerly every intermediate
(sigmoid, alpha, log, the draw, exp) is a separate array kept for the backward pass;
under ``jax.jit`` XLA fuses them, which is why the naive/idrop gap shrinks there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class NaiveInfoDropout(nnx.Module):
    """``z = relu(layer(x)) * exp(alpha * eps)``, ``alpha = alpha_min + max_alpha * sigmoid(alpha_layer(x))``."""

    def __init__(
        self,
        layer: nnx.Module,
        alpha_layer: nnx.Module,
        *,
        rngs: nnx.Rngs,
        max_alpha: float = 0.7,
        alpha_min: float = 1e-3,
    ) -> None:
        self.layer = layer
        self.alpha_layer = alpha_layer
        self.rngs = rngs
        self.max_alpha = max_alpha
        self.alpha_min = alpha_min

    def __call__(self, x: jax.Array, deterministic: bool = False) -> tuple[jax.Array, jax.Array]:
        """Return ``(z, kl)`` with the per-unit KL of the log-uniform prior (eq. 3)."""
        f = jax.nn.relu(self.layer(x))
        a = self.alpha_layer(x)
        alpha = self.alpha_min + self.max_alpha * jax.nn.sigmoid(a)
        kl = -jnp.log(alpha / (self.max_alpha + self.alpha_min))
        if deterministic:
            return f, kl
        eps = jax.random.normal(self.rngs.dropout(), f.shape, f.dtype)
        noise = jnp.exp(alpha * eps)
        return f * noise, kl
