"""PyTorch networks of the paper: MLP (Fig. 3a), All-CNN-32 (Table 2a), the VAE (Sec. 5).

See :mod:`idrop.experiments.nets` for what each network is and where it comes from.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from idrop.backends.torch import BinaryDropout, GaussianDropout, InfoDropout, LogNormalDropout, gaussian_kl

from . import ALL_CNN_WIDTHS

# ------------------------------------------------------------------------------------- MLP --


def hidden_layer(method: str, n_in: int, width: int, config: Any) -> nn.Module:
    """One hidden layer: Linear, ReLU and the method's noise (``config``: dropout_rate, lognormal_alpha, max_alpha)."""
    linear = nn.Linear(n_in, width)
    if method == "none":
        return nn.Sequential(linear, nn.ReLU())
    if method == "binary":
        return BinaryDropout(linear, activation="relu", rate=config.dropout_rate)
    if method == "gaussian":
        return GaussianDropout(linear, activation="relu", rate=config.dropout_rate)
    if method == "lognormal":
        return LogNormalDropout(linear, activation="relu", alpha=config.lognormal_alpha)
    if method == "information":
        return InfoDropout(
            linear,
            activation="relu",
            prior="log-uniform",
            max_alpha=config.max_alpha,
            alpha_rank=getattr(config, "alpha_rank", None),
        )
    raise ValueError(f"Unknown method {method!r}.")


class MLP(nn.Module):
    """784 -> 3 x (width, ReLU, noise) -> 10: the network of the paper's Fig. 3a."""

    def __init__(self, method: str, width: int, config: Any) -> None:
        super().__init__()
        sizes = [784, width, width, width]
        self.hidden = nn.Sequential(*(hidden_layer(method, a, b, config) for a, b in itertools.pairwise(sizes)))
        self.out = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x))


# ------------------------------------------------------------------------------ All-CNN-32 --


class ShiftOnlyBatchNorm2d(nn.BatchNorm2d):
    """Batch norm with a learned shift and no scale, epsilon 1e-3: ``tf.contrib.layers.batch_norm``'s
    defaults (``scale=False``, ``epsilon=0.001``), which the official ``cifar.py:79`` uses with decay 0.9
    (torch momentum 0.1). The scale stays at 1 and out of the optimiser (it needs no gradient).
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=1e-3, momentum=0.1)
        self.weight.requires_grad_(False)


def _act(activation: str) -> nn.Module:
    return nn.ReLU() if activation == "relu" else nn.Softplus()


def _conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Conv2d:
    """A 'same'-padded conv without bias: batch norm follows (``conv2d`` with a normalizer_fn has none)."""
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False)


def conv_bn_act(c_in: int, c_out: int, k: int, activation: str) -> nn.Sequential:
    """The official ``conv``: conv, batch norm (shift only), activation (cifar.py:64-80)."""
    return nn.Sequential(_conv(c_in, c_out, k), ShiftOnlyBatchNorm2d(c_out), _act(activation))


def noisy_conv(
    method: str,
    c_in: int,
    c_out: int,
    *,
    activation: str,
    max_alpha: float,
    rate: float = 0.5,
    alpha_rank: int | None = None,
) -> nn.Module:
    """The stride-2 conv with its noise (official ``conv_dropout``, cifar.py:110-120).

    Information Dropout's alpha branch is its own 3x3 stride-2 conv *with* a bias and no batch
    norm, as the official ``conv2d(..., activation_fn=tf.sigmoid, scope='alpha')`` (cifar.py:90-91);
    with ``alpha_rank`` it is InfoDropout's cheap branch of that rank instead.
    """
    conv, bn = _conv(c_in, c_out, 3, 2), ShiftOnlyBatchNorm2d(c_out)
    if method == "information" and alpha_rank is not None:
        return InfoDropout(conv, activation=activation, max_alpha=max_alpha, norm=bn, alpha_rank=alpha_rank)
    if method == "information":
        alpha = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=True)
        return InfoDropout(conv, activation=activation, max_alpha=max_alpha, norm=bn, alpha_layer=alpha)
    if method == "binary":
        return BinaryDropout(conv, activation=activation, rate=rate, norm=bn)
    if method == "none":
        return nn.Sequential(conv, bn, _act(activation))
    raise ValueError(f"Unknown method {method!r}; expected 'information', 'binary' or 'none'.")


class AllCNN32(nn.Module):
    """All-CNN-32 as the official ``cifar.py:122-152`` builds it; inputs NCHW, outputs logits.

    Args:
        method: noise at the two stride-2 convs: ``information``, ``binary`` (rate 0.5) or ``none``.
        widths: channels of the two blocks (96, 192 at filter percentage 1).
        activation: ``relu`` (log-uniform prior) or ``softplus`` (log-normal prior).
        max_alpha: Information Dropout's cap on alpha.
        input_dropout: binary dropout rate on the input (official keep 0.8).
        alpha_rank: Information Dropout's cheap alpha branch of this rank (default: the official alpha conv).
    """

    def __init__(
        self,
        method: str,
        *,
        widths: tuple[int, int] = ALL_CNN_WIDTHS,
        activation: str = "relu",
        max_alpha: float = 0.7,
        input_dropout: float = 0.2,
        alpha_rank: int | None = None,
    ) -> None:
        super().__init__()
        a, b = widths
        self.input_dropout = nn.Dropout(input_dropout)
        layers: list[nn.Module] = []
        c = 3
        for w in (a, b):
            layers += [conv_bn_act(c, w, 3, activation), conv_bn_act(w, w, 3, activation)]
            layers.append(noisy_conv(method, w, w, activation=activation, max_alpha=max_alpha, alpha_rank=alpha_rank))
            c = w
        layers += [
            conv_bn_act(b, b, 3, activation),
            conv_bn_act(b, b, 1, activation),
            conv_bn_act(b, 10, 1, activation),
        ]
        self.features = nn.Sequential(*layers)
        self.logits = nn.Linear(10, 10)  # the official ``linear(network, num_outputs=10)`` (cifar.py:152)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(self.input_dropout(x)).mean(dim=(2, 3)))


# ------------------------------------------------------------------------------------- VAE --


class VAE(nn.Module):
    """Kingma & Welling's MLP VAE: 784 -> hidden (tanh) -> latent -> hidden (tanh) -> 784 Bernoulli logits.

    ``latent="gaussian"``: ``z = mu + s * eps`` with prior N(0, 1). ``latent="information"``:
    ``z = softplus(W h) * exp(alpha(h) * eps)``, an :class:`InfoDropout` layer with the
    log-normal prior of learnable ``mu``, ``sigma`` (paper Sec. 5). Its per-unit KL is
    ``KL(N(log f, alpha^2) || N(mu, sigma^2))`` on ``log z``, which equals ``KL(q(z|x) || p(z))``
    because ``log`` is a bijection, so ``-loss`` is a true lower bound in both cases.
    """

    def __init__(self, latent: str, hidden: int, n_latent: int, max_alpha: float) -> None:
        super().__init__()
        self.latent = latent
        self.encoder = nn.Sequential(nn.Linear(784, hidden), nn.Tanh())
        if latent == "gaussian":
            self.head = nn.Linear(hidden, 2 * n_latent)
        elif latent == "information":
            self.head = InfoDropout(
                nn.Linear(hidden, n_latent), activation="softplus", prior="log-normal", max_alpha=max_alpha
            )
        else:
            raise ValueError(f"Unknown latent {latent!r}; expected 'gaussian' or 'information'.")
        self.decoder = nn.Sequential(nn.Linear(n_latent, hidden), nn.Tanh(), nn.Linear(hidden, 784))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bernoulli logits of a reconstruction from one latent sample, and the per-sample KL."""
        h = self.encoder(x)
        if self.latent == "gaussian":
            mu, log_s = self.head(h).chunk(2, dim=1)
            s = log_s.exp()
            z = mu + s * torch.randn_like(mu)
            kl = gaussian_kl(mu, s).sum(1)
        else:
            z = self.head(h)  # sampled: the layer stays in train mode whenever a bound is computed
            kl = self.head.kl
        return self.decoder(z), kl
