"""PyTorch trainer of the CIFAR-10 experiment: All-CNN-32 as in the official ``cifar.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from idrop.backends.torch import kl_loss
from idrop.experiments import ResultDir, RunKey, run_grid

from ._torch_common import (
    batches,
    conv_bn,
    load_torch_state,
    noisy_block,
    pick_device,
    refresh_batch_norm,
    save_torch_state,
)


def _act(activation: str) -> nn.Module:
    return nn.ReLU() if activation == "relu" else nn.Softplus()


class AllCNN32(nn.Module):
    """All-CNN-32 (paper Table 2a): input dropout 0.2, then 3x conv96 and 3x conv192 blocks.

    The third conv of each block has stride 2 and carries the noise (Information Dropout,
    binary dropout 0.5, or none); then conv192 3x3, conv192 1x1, conv10 1x1 and a global
    average. Batch norm on every conv; the logits get no activation.
    """

    def __init__(
        self, *, method: str, filter_percentage: float, activation: str, max_alpha: float, input_dropout: float = 0.2
    ) -> None:
        super().__init__()
        a, b = (max(1, round(w * filter_percentage)) for w in (96, 192))
        self.input_dropout = nn.Dropout(input_dropout)  # binary, as the official code
        layers: list[nn.Module] = []
        c = 3
        for w in (a, b):
            for _ in range(2):
                layers += [*conv_bn(c, w, 3), _act(activation)]
                c = w
            layers.append(noisy_block(method, c, w, activation=activation, max_alpha=max_alpha))
        layers += [*conv_bn(b, b, 3), _act(activation), *conv_bn(b, b, 1), _act(activation), *conv_bn(b, 10, 1)]
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.input_dropout(x)).mean(dim=(2, 3))


class CifarRun:
    """One (method, filter percentage, seed) run."""

    def __init__(self, key: RunKey, cfg: dict[str, Any], data: dict[str, np.ndarray]) -> None:
        torch.manual_seed(key.seed)
        self.cfg, self.key = cfg, key
        self.device = pick_device(cfg["device"])
        self.rng = np.random.default_rng(key.seed)
        # NHWC arrays from idrop.data, NCHW tensors for torch.
        self.x_train = torch.from_numpy(data["x_train"]).permute(0, 3, 1, 2).contiguous()
        self.y_train = torch.from_numpy(data["y_train"])
        self.x_test = torch.from_numpy(data["x_test"]).permute(0, 3, 1, 2).contiguous()
        self.y_test = torch.from_numpy(data["y_test"])
        self.model = AllCNN32(
            method=key.method, filter_percentage=key.width, activation=cfg["activation"], max_alpha=cfg["max_alpha"]
        ).to(self.device)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=cfg["lr"], momentum=0.9, weight_decay=cfg["weight_decay"]
        )
        drops = [max(1, round(cfg["epochs"] * f)) for f in cfg["lr_drops"]]
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, drops, gamma=0.1)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """Random horizontal flips (the official code's only augmentation besides whitening)."""
        flip = torch.from_numpy(self.rng.random(len(x)) < 0.5)
        return torch.where(flip[:, None, None, None], x.flip(3), x)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        n = len(self.x_train)
        tot = {"loss": 0.0, "kl": 0.0, "error": 0.0}
        for idx in batches(n, self.cfg["batch_size"], self.rng):
            x = self._augment(self.x_train[idx]).to(self.device)
            y = self.y_train[idx].to(self.device)
            logits = self.model(x)
            kl = kl_loss(self.model, n)  # collects this step's KL (ib_loss's own sum, once)
            loss = F.cross_entropy(logits, y) + self.cfg["beta"] * kl
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            tot["loss"] += float(loss.detach()) * len(idx)
            tot["kl"] += float(kl.detach()) * n * len(idx)
            tot["error"] += float((logits.argmax(1) != y).sum())
        self.scheduler.step()
        return {**{k: v / n for k, v in tot.items()}, "lr": self.optimizer.param_groups[0]["lr"]}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        refresh_batch_norm(self.model, self.x_train, self.cfg["batch_size"], self.device)
        wrong = 0
        for idx in batches(len(self.x_test), self.cfg["batch_size"]):
            pred = self.model(self.x_test[idx].to(self.device)).argmax(1).cpu()
            wrong += int((pred != self.y_test[idx]).sum())
        return {"test_error": wrong / len(self.x_test)}

    def save_state(self, path: Path) -> None:
        save_torch_state(path, self.model, self.optimizer, self.scheduler, self.rng)

    def load_state(self, path: Path) -> None:
        load_torch_state(path, self.model, self.optimizer, self.scheduler, self.rng)


def train_all(
    results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray], *, progress: bool
) -> list[dict[str, Any]]:
    """Every (method, filter percentage, seed) run, resumable; return the finished rows."""
    keys = [RunKey(m, p, s) for m in cfg["methods"] for p in cfg["filter_percentages"] for s in cfg["seeds"]]
    return run_grid(results, keys, lambda k: CifarRun(k, cfg, data), epochs=cfg["epochs"], progress=progress)
