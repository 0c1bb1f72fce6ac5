"""PyTorch model and train step of the Cluttered MNIST experiment (protocol in the package)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from idrop.backends.torch import InfoDropout, kl_loss, kl_map
from idrop.experiments import RunKey
from idrop.experiments._torch_common import (
    TorchCheckpoint,
    batches,
    pick_device,
    refresh_batch_norm,
)

from ._evaluate import evaluate_maps


def _bn(c: int) -> nn.BatchNorm2d:
    """Batch norm as the official ``tf.contrib.layers.batch_norm``: no scale (gamma fixed at 1), eps 1e-3."""
    bn = nn.BatchNorm2d(c, eps=1e-3)
    bn.weight.requires_grad_(False)
    return bn


def _act(activation: str) -> nn.Module:
    return nn.ReLU() if activation == "relu" else nn.Softplus()


def _conv_bn_act(c_in: int, c_out: int, k: int, activation: str) -> list[nn.Module]:
    # The official conv (cluttered.py:72-79): no bias (batch norm follows), BN, activation.
    return [nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), _bn(c_out), _act(activation)]


def _alpha_branch(c_in: int, c_out: int, rank: int | None) -> dict[str, Any]:
    """The official alpha conv (3x3 stride 2 with a bias, ``cluttered.py:89``), or the cheap branch of ``rank``."""
    if rank is not None:
        return {"alpha_rank": rank}
    return {"alpha_layer": nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=True)}


class ClutteredCNN(nn.Module):
    """All-CNN-96 of the official ``cluttered.py:120-152``, widths and depth configurable.

    Each block is ``convs_per_block - 1`` 3x3 convs then a stride-2 3x3 conv with Information
    Dropout; the alpha branch is its own 3x3 stride-2 conv *with* a bias (``cluttered.py:89``).
    The head is 3x3 conv, 1x1 conv, 1x1 conv to the classes (each with BN and the activation,
    as the official ``conv``), a spatial mean and a final linear layer (``cluttered.py:152``).
    """

    def __init__(self, cfg: dict[str, Any], n_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, act = 1, cfg["activation"]
        for w in cfg["widths"]:
            for _ in range(cfg["convs_per_block"] - 1):
                layers += _conv_bn_act(c, w, 3, act)
                c = w
            layers.append(
                InfoDropout(
                    nn.Conv2d(c, w, 3, stride=2, padding=1, bias=False),
                    activation=act,
                    prior=cfg["prior"],
                    max_alpha=cfg["max_alpha"],
                    norm=_bn(w),
                    **_alpha_branch(c, w, cfg.get("alpha_rank")),
                )
            )
            c = w
        top = cfg["top_width"]
        layers += [
            *_conv_bn_act(c, top, 3, act),
            *_conv_bn_act(top, top, 1, act),
            *_conv_bn_act(top, n_classes, 1, act),
        ]
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(n_classes, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x).mean(dim=(2, 3)))


def _optimizer(model: nn.Module, cfg: dict[str, Any]) -> tuple[torch.optim.Optimizer, Any]:
    """Nesterov momentum 0.9 (official ``task.py:122``), lr x0.1 at each drop epoch (``task.py:185-190``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg["lr"], momentum=0.9, nesterov=True, weight_decay=0.0)
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg["lr_drops"]), gamma=0.1)


class ClutteredRun(TorchCheckpoint):
    """One (beta, seed) run: the model, its optimizer and schedule, one epoch at a time."""

    def __init__(self, key: RunKey, beta: float, cfg: dict[str, Any], data: dict[str, np.ndarray], results: Any):
        self.key, self.beta, self.cfg, self.data, self.results = key, beta, cfg, data, results
        self.device = pick_device(cfg["device"])
        self.rng = np.random.default_rng(key.seed)
        self.x_train = torch.from_numpy(data["x_train"][:, None])
        self.y_train = torch.from_numpy(data["y_train"])
        self.model = build_model(cfg, key.seed).to(self.device)
        self.optimizer, self.scheduler = _optimizer(self.model, cfg)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        n = len(self.x_train)
        tot = {"loss": 0.0, "kl": 0.0, "error": 0.0}
        for idx in batches(n, self.cfg["batch_size"], self.rng):
            x, y = self.x_train[idx].to(self.device), self.y_train[idx].to(self.device)
            logits = self.model(x)
            kl = kl_loss(self.model, n)  # collected once per step: ib_loss(ce, ...) = ce + beta * kl
            loss = F.cross_entropy(logits, y) + self.beta * kl
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            m = len(idx)
            tot["loss"] += float(loss.detach()) * m
            tot["kl"] += float(kl.detach()) * n * m  # per-sample KL in nats
            tot["error"] += float((logits.argmax(1) != y).sum())
        self.scheduler.step()
        return {k: v / n for k, v in tot.items()}

    def evaluate(self) -> dict[str, Any]:
        return {
            "beta": self.beta,
            **evaluate(self.model, self.cfg, self.data, self.results, self.key.name, self.device),
        }


@torch.no_grad()
def _maps(model: nn.Module, x: np.ndarray, batch_size: int, device: torch.device) -> tuple[np.ndarray, list, list]:
    """Predictions and, per Information Dropout layer, the noiseless KL and activation energy per position."""
    layers = [m for m in model.modules() if isinstance(m, InfoDropout)]
    kls: list[list[np.ndarray]] = [[] for _ in layers]
    energies: list[list[np.ndarray]] = [[] for _ in layers]

    def hook(i: int):
        def record(mod: InfoDropout, inp: tuple[torch.Tensor, ...]) -> None:
            kls[i].append(kl_map(mod, inp[0]).sum(1).cpu().numpy())
            energies[i].append(mod.activation_of(inp[0]).square().sum(1).cpu().numpy())

        return record

    handles = [m.register_forward_pre_hook(hook(i)) for i, m in enumerate(layers)]
    preds = []
    try:
        model.eval()
        for idx in batches(len(x), batch_size):
            preds.append(model(torch.from_numpy(x[idx][:, None]).to(device)).argmax(1).cpu().numpy())
    finally:
        for h in handles:
            h.remove()
    return np.concatenate(preds), [np.concatenate(k) for k in kls], [np.concatenate(e) for e in energies]


def evaluate(model: nn.Module, cfg: dict[str, Any], data: dict[str, np.ndarray], results: Any, name: str, device):
    """Refresh batch norm without noise (the official dry run), then test error and localisation."""
    refresh_batch_norm(model, torch.from_numpy(data["x_train"][:, None]), cfg["batch_size"], device)
    preds, kls, energies = _maps(model, data["x_test"], cfg["batch_size"], device)
    return evaluate_maps(preds, kls, energies, cfg, data, results, name)


def untrained(cfg: dict[str, Any], data: dict[str, np.ndarray], results: Any, seed: int) -> dict[str, Any]:
    """The same architecture at its initial weights (seed ``seed``), measured as the trained runs."""
    device = pick_device(cfg["device"])
    return evaluate(build_model(cfg, seed).to(device), cfg, data, results, f"untrained_s{seed}", device)


def build_model(cfg: dict[str, Any], seed: int) -> ClutteredCNN:
    """The network at its initial weights for ``seed``."""
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    torch.manual_seed(seed)
    return ClutteredCNN(cfg)


def alpha_biases(model: ClutteredCNN) -> list[torch.Tensor | None]:
    """The bias of each Information Dropout layer's alpha conv (``None`` where it has none)."""
    return [_alpha_bias(m) for m in model.modules() if isinstance(m, InfoDropout)]


def _alpha_bias(m: InfoDropout) -> torch.Tensor | None:
    return m.alpha_layer.up.bias if m.alpha_rank is not None else m.alpha_layer.bias


def make_run(key: RunKey, beta: float, cfg: dict[str, Any], data: dict[str, np.ndarray], results: Any) -> ClutteredRun:
    """A fresh run for the shared training loop."""
    return ClutteredRun(key, beta, cfg, data, results)
