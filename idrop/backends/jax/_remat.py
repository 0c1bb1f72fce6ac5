"""The cheap alpha branch recomputed in backward: ``jax.checkpoint`` around ``up`` and the kernel.

With ``alpha_rank=r`` the alpha logits are ``a = up(t)``, ``t = down(x)`` (``r`` channels or
features, ``up`` a 1x1 conv/``nnx.Linear`` with a bias). The fused kernel keeps ``h`` and ``a``
as residuals; inside ``jax.checkpoint`` only the region's inputs are kept (``h``, ``t``, the key
or injected ``noise``, the prior's ``mu``/``sigma``, ``up``'s parameters), and ``up`` and the
kernel's forward run again in the backward pass. A training step then keeps ``x + h + t``
instead of ``x + h + a`` (``benchmarks/README.md``, "Conv memory").

The noise is the same in the rerun by construction: the key is split outside the region and
``jax.random`` is counter-based, so the region draws the same ``eps`` from it, bit for bit.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from idrop.core.spec import InfoDropoutSpec

from ._kernel import info_dropout_kernel


def recomputed_kernel(
    spec: InfoDropoutSpec,
    activation: str | None,
    key: Any,
    up: nnx.Module,
    h: jax.Array,
    t: jax.Array,
    *,
    mu: Any,
    sigma: Any,
    noise: jax.Array | None,
) -> tuple[jax.Array, jax.Array]:
    """``info_dropout_kernel(..., h, up(t), ...)`` in training mode, ``up`` and the kernel recomputed in backward."""
    graphdef, state = nnx.split(up)

    def region(state: Any, h: jax.Array, t: jax.Array, key: Any, noise: Any, mu: Any, sigma: Any) -> Any:
        a = nnx.merge(graphdef, state)(t)
        return info_dropout_kernel(spec, activation, key, h, a, mu=mu, sigma=sigma, deterministic=False, noise=noise)

    return jax.checkpoint(region)(state, h, t, key, noise, mu, sigma)
