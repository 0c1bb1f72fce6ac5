"""The cheap conv alpha branch recomputed in backward: ``torch.utils.checkpoint`` around ``up`` and the kernel.

With ``alpha_rank=r`` on a convolution the alpha logits are ``a = up(t)``, ``t = down(x)`` (``r``
channels, ``up`` a 1x1 conv with a bias). The fused kernel keeps ``h`` (or ``f``) and ``a`` for
backward; run inside ``torch.utils.checkpoint.checkpoint(..., use_reentrant=False)`` nothing it
saves is kept: checkpoint keeps the region's inputs (``h``, ``t``, the prior's ``mu``/``sigma``)
and reruns ``up`` and the kernel's forward in backward. A training step then keeps
``x + h + t`` instead of ``x + h + a`` (``benchmarks/README.md``, "Conv memory").

The noise is the same in the rerun by torch's own mechanism: the default generators (CPU, and
the devices of the region's tensors) are what ``preserve_rng_state=True`` saves and restores, so
a draw from them is made inside the region and replayed, and ``eps`` is never kept. A draw from
an explicit ``generator`` (which checkpoint does not restore) is made outside the region and
passed in, as injected ``noise`` is: then ``eps`` is kept too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from ._kernel import info_dropout_kernel
from ._namespace import draw_normal


def recomputed_kernel(
    up: torch.nn.Module,
    h: torch.Tensor,
    t: torch.Tensor,
    *,
    mu: torch.Tensor | None,
    sigma: torch.Tensor | None,
    noise: torch.Tensor | None,
    generator: torch.Generator | None,
    **kernel: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``info_dropout_kernel(h, up(t), ...)``, with ``up`` and the kernel recomputed in backward."""
    if noise is None and generator is not None:
        noise = draw_normal(h, generator)

    def region(h: torch.Tensor, t: torch.Tensor, noise: Any, mu: Any, sigma: Any) -> tuple[torch.Tensor, torch.Tensor]:
        # Drawn here, eps is replayed by checkpoint and, passed to the kernel, kept by it from the
        # recomputation to backward: two draws a step, not three (the kernel's own redraw).
        eps = draw_normal(h, None) if noise is None else noise
        return info_dropout_kernel(h, up(t), mu=mu, sigma=sigma, noise=eps, generator=None, **kernel)

    return checkpoint(region, h, t, noise, mu, sigma, use_reentrant=False, preserve_rng_state=True)
