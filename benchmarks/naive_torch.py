"""The NAIVE PyTorch baseline: Information Dropout as the public ports write it.

Two separate layers (the map and the alpha branch), eager element-wise ops, and
every intermediate (sigmoid, alpha, log, the normal draw, exp) a separate tensor
that autograd keeps for backward. This is what idrop has to beat.
"""

from __future__ import annotations

import torch
from torch import nn


class NaiveInfoDropout(nn.Module):
    """``z = relu(layer(x)) * exp(alpha * eps)``, ``alpha = alpha_min + max_alpha * sigmoid(alpha_layer(x))``."""

    def __init__(self, layer: nn.Module, alpha_layer: nn.Module, max_alpha: float = 0.7, alpha_min: float = 1e-3):
        super().__init__()
        self.layer = layer
        self.alpha_layer = alpha_layer
        self.max_alpha = max_alpha
        self.alpha_min = alpha_min

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(z, kl)`` with the per-unit KL of the log-uniform prior (eq. 3)."""
        f = torch.relu(self.layer(x))
        a = self.alpha_layer(x)
        alpha = self.alpha_min + self.max_alpha * torch.sigmoid(a)
        kl = -torch.log(alpha / (self.max_alpha + self.alpha_min))
        if not self.training:
            return f, kl
        eps = torch.randn_like(f)
        noise = torch.exp(alpha * eps)
        return f * noise, kl
