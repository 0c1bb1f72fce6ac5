"""PyTorch trainer of the VAE experiment: Gaussian latent vs Information Dropout latent."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from idrop.experiments import ResultDir, RunKey, run_grid
from idrop.experiments._torch_common import TorchCheckpoint, batches, pick_device
from idrop.experiments.nets.torch import VAE


def negative_elbo(model: VAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``-ELBO`` (nats) from one latent sample, and the per-sample KL."""
    logits, kl = model(x)
    nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    return nll + kl, kl


class VaeRun(TorchCheckpoint):
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


def train_all(
    results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray], *, progress: bool
) -> list[dict[str, Any]]:
    """Every (latent, k, seed) run, resumable; return the finished rows."""
    if pick_device(cfg["device"]).type == "cpu":
        # Small matmuls: on a busy 2-core machine a second intra-op thread made an epoch 15x slower.
        torch.set_num_threads(1)
    keys = [RunKey(lat, k, s) for lat in cfg["latents"] for k in cfg["ks"] for s in cfg["seeds"]]
    return run_grid(results, keys, lambda key: VaeRun(key, cfg, data), epochs=cfg["epochs"], progress=progress)
