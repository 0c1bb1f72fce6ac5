"""PyTorch trainer of the VAE experiment: Gaussian latent vs Information Dropout latent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from idrop.backends.torch import InfoDropout, gaussian_kl
from idrop.experiments import ResultDir, RunKey, run_grid

from ._torch_common import batches, load_torch_state, pick_device, save_torch_state


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


def negative_elbo(model: VAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``-ELBO`` (nats) from one latent sample, and the per-sample KL."""
    logits, kl = model(x)
    nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    return nll + kl, kl


class VaeRun:
    """One (latent type, k, seed) run."""

    def __init__(self, key: RunKey, cfg: dict[str, Any], data: dict[str, np.ndarray]) -> None:
        torch.manual_seed(key.seed)
        self.cfg = cfg
        self.device = pick_device(cfg["device"])
        self.rng = np.random.default_rng(key.seed)
        self.x_train = torch.from_numpy(data["x_train"])
        self.x_test = torch.from_numpy(data["x_test"])
        k = key.width
        hidden, n_latent = (max(1, round(b * k / cfg["scale"])) for b in (512, 256))
        self.model = VAE(key.method, hidden, n_latent, cfg["max_alpha"]).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg["lr"])

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        tot = {"loss": 0.0, "kl": 0.0}
        n = len(self.x_train)
        for idx in batches(n, self.cfg["batch_size"], self.rng):
            loss, kl = negative_elbo(self.model, self.x_train[idx].to(self.device))
            self.optimizer.zero_grad(set_to_none=True)
            loss.mean().backward()
            self.optimizer.step()
            tot["loss"] += float(loss.detach().sum())
            tot["kl"] += float(kl.detach().sum())
        return {"loss": tot["loss"] / n, "kl": tot["kl"] / n, "train_elbo": -tot["loss"] / n}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.train()  # the bound needs sampled latents; there is no batch norm to disturb
        total, kl_total = 0.0, 0.0
        for _ in range(self.cfg["eval_samples"]):
            for idx in batches(len(self.x_test), 1000):
                loss, kl = negative_elbo(self.model, self.x_test[idx].to(self.device))
                total += float(loss.sum())
                kl_total += float(kl.sum())
        m = len(self.x_test) * self.cfg["eval_samples"]
        return {"test_elbo": -total / m, "test_kl": kl_total / m}

    def save_state(self, path: Path) -> None:
        save_torch_state(path, self.model, self.optimizer, None, self.rng)

    def load_state(self, path: Path) -> None:
        load_torch_state(path, self.model, self.optimizer, None, self.rng)


def train_all(
    results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray], *, progress: bool
) -> list[dict[str, Any]]:
    """Every (latent, k, seed) run, resumable; return the finished rows."""
    keys = [RunKey(lat, k, s) for lat in cfg["latents"] for k in cfg["ks"] for s in cfg["seeds"]]
    return run_grid(results, keys, lambda key: VaeRun(key, cfg, data), epochs=cfg["epochs"], progress=progress)
