"""PyTorch train step of the CIFAR-10 experiment (protocol in :mod:`idrop.experiments.cifar10`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from idrop.backends.torch import kl_loss
from idrop.experiments import ResultDir, RunKey, run_grid
from idrop.experiments._torch_common import TorchCheckpoint, batches, pick_device, refresh_batch_norm
from idrop.experiments.nets import all_cnn_widths
from idrop.experiments.nets.torch import AllCNN32

from . import lr_at


class CifarRun(TorchCheckpoint):
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
            key.method,
            widths=all_cnn_widths(float(key.width)),
            activation=cfg["activation"],
            max_alpha=cfg["max_alpha"],
            input_dropout=cfg["input_dropout"],
        ).to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(
            params, lr=cfg["lr"], momentum=0.9, nesterov=True, weight_decay=cfg["weight_decay"]
        )

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """Random horizontal flips with ``--flip`` (not in the official code), else ``x``."""
        if not self.cfg["flip"]:
            return x
        flip = torch.from_numpy(self.rng.random(len(x)) < 0.5)
        return torch.where(flip[:, None, None, None], x.flip(3), x)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        lr = lr_at(self.cfg, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
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
        return {**{k: v / n for k, v in tot.items()}, "lr": lr}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        refresh_batch_norm(self.model, self.x_train, self.cfg["batch_size"], self.device)
        wrong = 0
        for idx in batches(len(self.x_test), self.cfg["batch_size"]):
            pred = self.model(self.x_test[idx].to(self.device)).argmax(1).cpu()
            wrong += int((pred != self.y_test[idx]).sum())
        return {"test_error": wrong / len(self.x_test)}


def train_all(
    results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray], *, progress: bool
) -> list[dict[str, Any]]:
    """Every (method, filter percentage, seed) run, resumable; return the finished rows."""
    keys = [RunKey(m, p, s) for m in cfg["methods"] for p in cfg["filter_percentages"] for s in cfg["seeds"]]
    return run_grid(results, keys, lambda k: CifarRun(k, cfg, data), epochs=cfg["epochs"], progress=progress)
