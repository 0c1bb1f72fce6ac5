"""PyTorch pieces the experiment trainers share: seeding, batching, checkpoints, BN dry run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def pick_device(name: str | None) -> torch.device:
    """``--device`` (``cpu``/``cuda``), or for ``auto``/None CUDA when present, else CPU."""
    if name and name != "auto":
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Index batches over ``n`` items, shuffled when ``rng`` is given; the last may be short."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


@torch.no_grad()
def refresh_batch_norm(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> None:
    """Re-estimate batch-norm statistics over ``x`` with all noise off (the official "dry run").

    Running averages gathered under noise do not match the noiseless test-time
    activations; an exact (cumulative) average over the training set without noise does.
    """
    model.eval()  # noise off everywhere ...
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:  # ... but batch norm accumulates fresh statistics
        m.reset_running_stats()
        m.momentum = None
        m.train()
    for idx in batches(len(x), batch_size):
        model(x[idx].to(device))
    model.eval()


def save_torch_state(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any | None, rng: np.random.Generator
) -> None:
    """Model, optimizer, scheduler and every RNG state in one file."""
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": None if scheduler is None else scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": rng.bit_generator.state,
        },
        path,
    )


def load_torch_state(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any | None, rng: np.random.Generator
) -> None:
    """Restore what :func:`save_torch_state` wrote."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    rng.bit_generator.state = state["numpy_rng"]


class TorchCheckpoint:
    """``save_state``/``load_state`` of a run that holds ``model``, ``optimizer``, ``rng`` and, when it
    has one, ``scheduler``: what the shared runner calls after every epoch and on ``--resume``."""

    def save_state(self, path: Path) -> None:
        save_torch_state(path, self.model, self.optimizer, getattr(self, "scheduler", None), self.rng)

    def load_state(self, path: Path) -> None:
        load_torch_state(path, self.model, self.optimizer, getattr(self, "scheduler", None), self.rng)
