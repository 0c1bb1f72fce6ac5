"""PyTorch model and train step of the MNIST experiment (see :mod:`idrop.experiments.mnist`).

Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank trains the same grid with
``DistributedDataParallel``: each keeps its contiguous slice of every global batch
(:func:`idrop.distributed.torch.shard_indices`), draws noise from its own seed, and scales
its summed loss so that DDP's gradient average is the global-batch mean of eq. 5. Rank 0
alone writes checkpoints and tables; all ranks load the same checkpoint on resume.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from idrop.backends.torch import InfoDropout
from idrop.distributed import replica_seed
from idrop.distributed import torch as dtorch
from idrop.experiments.nets.torch import MLP

from ._seeds import batch_order, epoch_seed, init_seed


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when torch sees a GPU, else CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device.")
    return torch.device(device)


def device_name(device: str) -> str:
    """Human-readable name of the device a run will use (with the process count under torchrun)."""
    dev = resolve_device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    world = dtorch.env_world()[1]
    return f"{name}, {world} processes (DDP)" if world > 1 else name


class Replica:
    """This process's part in the job, as :func:`idrop.experiments.mnist.run` needs it."""

    def __init__(self, device: str, devices: int | None) -> None:
        if devices not in (None, 1) and devices != dtorch.env_world()[1]:
            raise ValueError(
                f"--devices {devices}: PyTorch takes its device count from torchrun; launch with "
                f"`torchrun --nproc_per_node {devices} -m idrop reproduce mnist --backend torch ...`."
            )
        self.ctx = dtorch.setup(device)
        self.is_main = self.ctx.is_main

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        return dtorch.broadcast_object(obj)

    def close(self) -> None:
        """Leave the process group (no barrier: a rank that failed alone must not hang the others)."""
        dtorch.cleanup()


def sum_loss(
    logits: torch.Tensor, y: torch.Tensor, model: nn.Module, beta: float, n_train: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of eq. 5's per-example loss, sum of per-example KL)`` over this rank's examples.

    Sums, not means: a shard may be smaller than the others, or empty, and only sums add
    up across ranks to the global batch's loss (:func:`idrop.distributed.torch.global_mean`).
    """
    task = F.cross_entropy(logits, y, reduction="sum")
    kls = [m.kl.float().sum() for m in model.modules() if isinstance(m, InfoDropout) and m.kl is not None]
    kl = torch.stack(kls).sum() if kls else logits.new_zeros(())
    return task + beta * kl / n_train, kl


class TorchRun:
    """One (method, width, seed) run; follows :class:`idrop.experiments.Run`."""

    def __init__(self, key: Any, data: dict[str, torch.Tensor], config: Any, ctx: dtorch.Context) -> None:
        method, config = config.resolve(key.method)  # information-b<beta>: the network's method, the run's beta
        self.key, self.data, self.config, self.device, self.ctx = key, data, config, ctx.device, ctx
        torch.manual_seed(init_seed(key.seed, key.width, key.method))
        self.model = MLP(method, int(key.width), config).to(ctx.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate)
        ddp = dtorch.wrap(self.model, ctx)
        # The step is tiny; compiling pays off only on a GPU, where launch overhead dominates.
        self.step_model: Callable[[torch.Tensor], torch.Tensor] = (
            torch.compile(ddp) if ctx.device.type == "cuda" else ddp
        )

    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg, x, y = self.config, self.data["x_train"], self.data["y_train"]
        # The noise of this epoch; each rank its own stream (rank 0's is a 1-process run's).
        torch.manual_seed(replica_seed(epoch_seed(self.key.seed, epoch), self.ctx.rank))
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr_at(epoch)
        self.model.train()
        sums = torch.zeros(3, device=self.device)
        for batch in batch_order(len(x), cfg.batch_size, self.key.seed, epoch):
            idx = dtorch.shard_indices(batch, self.ctx.rank, self.ctx.world_size)
            xb, yb = x[idx], y[idx]
            logits = self.step_model(xb)
            loss_sum, kl_sum = sum_loss(logits, yb, self.model, cfg.beta, cfg.n_train)
            self.optimizer.zero_grad(set_to_none=True)
            dtorch.global_mean(loss_sum, len(batch)).backward()
            self.optimizer.step()
            with torch.no_grad():  # kl: nats per image, summed over layers
                wrong = (logits.argmax(1) != yb).sum()
                sums += torch.stack([loss_sum.detach(), kl_sum.detach(), wrong.float()])
        loss_sum, kl_sum, wrong_sum = (dtorch.all_reduce_sum(sums) / len(x)).tolist()
        return {"loss": loss_sum, "kl": kl_sum, "error": wrong_sum, "test_error": self._error("test")}

    @torch.no_grad()
    def _error(self, split: str) -> float:
        self.model.eval()
        x, y = self.data[f"x_{split}"], self.data[f"y_{split}"]
        wrong = sum(
            int((self.model(x[i : i + 2000]).argmax(1) != y[i : i + 2000]).sum()) for i in range(0, len(x), 2000)
        )
        return wrong / len(x)

    def evaluate(self) -> dict[str, float]:
        return {
            "test_error": self._error("test"),
            "valid_error": self._error("valid"),
            "train_error": self._error("train"),
        }

    def save_state(self, path: Path) -> None:
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}, path)

    def load_state(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


def make_runs(data: Any, config: Any, device: str, devices: int = 1) -> Callable[[Any], TorchRun]:
    """The ``make_run(key)`` factory for :func:`idrop.experiments.run_grid`; data moves to the device once.

    ``devices`` is checked by :class:`Replica`; the process count comes from torchrun.
    """
    del devices
    ctx = dtorch.setup(device)
    dev = ctx.device
    if dev.type == "cpu":
        # These matmuls are far too small to split across threads: on a 2-core machine,
        # intra-op threads made an epoch 10x slower than one thread (spin-waiting).
        torch.set_num_threads(1)
    tensors = {
        "x_train": torch.from_numpy(np.asarray(data.x_train)).to(dev),
        "y_train": torch.from_numpy(np.asarray(data.y_train)).to(dev),
        "x_valid": torch.from_numpy(np.asarray(data.x_valid)).to(dev),
        "y_valid": torch.from_numpy(np.asarray(data.y_valid)).to(dev),
        "x_test": torch.from_numpy(np.asarray(data.x_test)).to(dev),
        "y_test": torch.from_numpy(np.asarray(data.y_test)).to(dev),
    }
    return lambda key: TorchRun(key, tensors, config, ctx)
