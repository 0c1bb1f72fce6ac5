"""PyTorch trainer of the Cluttered MNIST experiment: All-CNN-96 and the KL heat maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from idrop.backends.torch import InfoDropout, kl_loss
from idrop.experiments import ResultDir, RunKey, run_grid

from ._common import kl_share_in_box
from ._torch_common import (
    batches,
    conv_bn,
    load_torch_state,
    noisy_block,
    per_unit_kl,
    pick_device,
    refresh_batch_norm,
    save_torch_state,
)

BASE_WIDTHS = (32, 64, 96, 192)  # paper Table 2b, one per stride-2 block


def _act(activation: str) -> nn.Module:
    return nn.ReLU() if activation == "relu" else nn.Softplus()


class AllCNN96(nn.Module):
    """All-CNN-96 (paper Table 2b): four blocks of 3x3 convs, the last of each stride 2 with noise.

    Every conv has batch norm. The head is 3x3 conv, 1x1 conv, 1x1 conv to the classes and a
    spatial average; the logits get no activation (a ReLU there would clip them).
    """

    def __init__(
        self,
        *,
        method: str,
        filter_percentage: float,
        activation: str,
        max_alpha: float,
        convs_per_block: int = 3,
        n_classes: int = 10,
    ) -> None:
        super().__init__()
        widths = [max(1, round(w * filter_percentage)) for w in BASE_WIDTHS]
        layers: list[nn.Module] = []
        c = 1
        for w in widths:
            for _ in range(convs_per_block - 1):
                layers += [*conv_bn(c, w, 3), _act(activation)]
                c = w
            layers.append(noisy_block(method, c, w, activation=activation, max_alpha=max_alpha))
            c = w
        top = widths[-1]
        layers += [
            *conv_bn(c, top, 3),
            _act(activation),
            *conv_bn(top, top, 1),
            _act(activation),
            *conv_bn(top, n_classes, 1),
        ]
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


class ClutteredRun:
    """One (beta, seed) run; :meth:`evaluate` also writes the heat maps of the shown images."""

    def __init__(
        self, key: RunKey, beta: float, cfg: dict[str, Any], data: dict[str, np.ndarray], results: ResultDir
    ) -> None:
        torch.manual_seed(key.seed)
        self.key, self.beta, self.cfg, self.results = key, beta, cfg, results
        self.device = pick_device(cfg["device"])
        self.rng = np.random.default_rng(key.seed)
        self.x_train = torch.from_numpy(data["x_train"][:, None])
        self.y_train = torch.from_numpy(data["y_train"])
        self.data = data
        self.model = AllCNN96(
            method="information",
            filter_percentage=cfg["filter_percentage"],
            activation=cfg["activation"],
            max_alpha=cfg["max_alpha"],
            convs_per_block=cfg["convs_per_block"],
        )
        # channels_last: about 1.5-2x faster convolutions on CPU for these thin layers.
        self.model = self.model.to(self.device, memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg["lr"])

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        n = len(self.x_train)
        tot = {"loss": 0.0, "kl": 0.0, "error": 0.0}
        for idx in batches(n, self.cfg["batch_size"], self.rng):
            x = self.x_train[idx].to(self.device, memory_format=torch.channels_last)
            y = self.y_train[idx].to(self.device)
            logits = self.model(x)
            ce = F.cross_entropy(logits, y)
            kl = kl_loss(self.model, n)  # collects this step's KL (ib_loss's own sum, once)
            loss = ce + self.beta * kl
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            m = len(idx)
            tot["loss"] += float(loss.detach()) * m
            tot["kl"] += float(kl.detach()) * n * m  # per-sample KL in nats
            tot["error"] += float((logits.argmax(1) != y).float().sum())
        return {k: v / n for k, v in tot.items()}

    @torch.no_grad()
    def _maps(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Predictions and, per Information Dropout layer, the KL summed over channels."""
        layers = [m for m in self.model.modules() if isinstance(m, InfoDropout)]
        maps: list[list[np.ndarray]] = [[] for _ in layers]
        hooks = [
            m.register_forward_pre_hook(
                lambda mod, inp, i=i: maps[i].append(per_unit_kl(mod, inp[0]).sum(1).cpu().numpy())
            )
            for i, m in enumerate(layers)
        ]
        preds = []
        try:
            for idx in batches(len(x), self.cfg["batch_size"]):
                preds.append(self.model(torch.from_numpy(x[idx][:, None]).to(self.device)).argmax(1).cpu().numpy())
        finally:
            for h in hooks:
                h.remove()
        return np.concatenate(preds), [np.concatenate(m) for m in maps]

    def evaluate(self) -> dict[str, Any]:
        refresh_batch_norm(self.model, self.x_train, self.cfg["batch_size"], self.device)
        x, y, boxes = self.data["x_test"], self.data["y_test"], self.data["boxes_test"]
        preds, maps = self._maps(x)
        out: dict[str, Any] = {"beta": self.beta, "test_error": float((preds != y).mean())}
        show = self.cfg["show"]
        arrays = {}
        for i, kl in enumerate(maps, start=1):
            share, box = kl_share_in_box(kl, boxes, self.cfg["canvas"])
            out[f"layer{i}_size"] = int(kl.shape[-1])
            out[f"layer{i}_kl_share_in_box"] = share
            out[f"layer{i}_box_share"] = box
            out[f"layer{i}_ratio"] = share / box
            arrays[f"layer{i}"] = kl[:show].astype(np.float32)
        folder = self.results.root / "kl_maps"
        folder.mkdir(exist_ok=True)
        np.savez_compressed(folder / f"{self.key.name}.npz", **arrays)
        return out

    def save_state(self, path: Path) -> None:
        save_torch_state(path, self.model, self.optimizer, None, self.rng)

    def load_state(self, path: Path) -> None:
        load_torch_state(path, self.model, self.optimizer, None, self.rng)


def train_all(
    results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray], *, progress: bool
) -> list[dict[str, Any]]:
    """Train one run per (beta, seed) with resume; return the registry's finished rows."""
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    betas = {f"beta{b:g}": b for b in cfg["betas"]}
    keys = [RunKey(name, cfg["filter_percentage"], s) for name in betas for s in cfg["seeds"]]
    return run_grid(
        results,
        keys,
        lambda k: ClutteredRun(k, betas[k.method], cfg, data, results),
        epochs=cfg["epochs"],
        progress=progress,
    )
