"""PyTorch data parallelism: ``torchrun`` + ``DistributedDataParallel``.

Launch with ``torchrun --nproc_per_node N ...`` (or ``python -m torch.distributed.run``);
:func:`setup` reads the ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` variables torchrun sets and
joins the process group (NCCL on GPUs, gloo on CPUs). Without them it is a no-op and
everything below degrades to one process.

Global-batch averaging: DDP *averages* gradients over ranks. Each rank therefore returns
``(sum of its per-example losses) * world_size / global_batch`` (:func:`global_mean`), so the
average over ranks is the mean over the global batch even when the shards differ in size
(the last batch of an epoch) or a shard is empty.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from idrop.distributed import replica_seed, shard_bounds

try:
    import torch
    import torch.distributed as dist
    from torch import nn
except ImportError as err:  # pragma: no cover - exercised without torch only
    raise ImportError("idrop.distributed.torch requires PyTorch; install it with: pip install 'idrop[torch]'") from err


@dataclasses.dataclass(frozen=True)
class Context:
    """Where this process sits in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints (rank 0)."""
        return self.rank == 0


def env_world() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment, ``(0, 1, 0)`` without it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def setup(device: str = "auto") -> Context:
    """Join the process group torchrun describes (once) and pick this rank's device.

    Args:
        device: ``"auto"`` (CUDA when present), ``"cuda"`` or ``"cpu"``.

    Returns:
        The :class:`Context`; a 1-process context when ``WORLD_SIZE`` is unset or 1.
    """
    rank, world, local = env_world()
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device.")
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None)
    return Context(rank, world, local, dev)


def is_main() -> bool:
    """True on rank 0, or when not distributed."""
    return not dist.is_initialized() or dist.get_rank() == 0


def world_size() -> int:
    """Processes in the job (1 when not distributed)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_initialized() else 0


_rank = rank  # shard_indices's `rank` argument shadows the function


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if dist.is_initialized():
        dist.barrier()


def shard_indices(idx: np.ndarray, rank: int | None = None, world: int | None = None) -> np.ndarray:
    """This rank's contiguous slice of a global batch's indices (may be empty for a tiny batch).

    It replaces a ``DistributedSampler``: every rank computes the same epoch permutation
    from the same seed and keeps its own slice of each global batch, so a global batch is
    exactly the batch of a 1-process run.
    """
    r = _rank() if rank is None else rank
    w = world_size() if world is None else world
    start, stop = shard_bounds(len(idx), w)[r]
    return idx[start:stop]


def noise_seed(seed: int) -> int:
    """This rank's noise seed: rank 0 keeps ``seed``, the others get their own stream."""
    return replica_seed(seed, _rank())


def global_mean(local_sum: torch.Tensor, global_batch: int) -> torch.Tensor:
    """Scale a rank's sum of per-example losses so DDP's gradient average is the global-batch mean."""
    return local_sum * (world_size() / global_batch)


def wrap(model: nn.Module, ctx: Context) -> nn.Module:
    """``DistributedDataParallel(model)`` when distributed, else ``model`` itself.

    DDP broadcasts rank 0's parameters at construction, so all ranks start equal.
    """
    if not ctx.distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks in place and return it (no-op when not distributed)."""
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (identity when not distributed)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


__all__ = [
    "Context",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "cleanup",
    "env_world",
    "global_mean",
    "is_main",
    "noise_seed",
    "rank",
    "setup",
    "shard_indices",
    "wrap",
    "world_size",
]
