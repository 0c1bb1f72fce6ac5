"""Data-parallel training with each framework's own engine. Importing this package imports no framework.

Leaf modules, imported on purpose like :mod:`idrop.backends`:

- :mod:`idrop.distributed.torch`: ``torchrun`` + ``DistributedDataParallel`` (NCCL on GPUs, gloo on CPUs).
- :mod:`idrop.distributed.jax`: a ``jax.sharding.Mesh`` with the batch sharded on a ``"data"`` axis.
- :mod:`idrop.distributed.tensorflow`: ``tf.distribute.MirroredStrategy`` with Keras ``model.fit``.
- ``keras`` (Keras 3 on any backend): Keras's own ``keras.distribution.DataParallel``; no module here.

The contract every backend keeps (see ``docs/distributed.md``):

- each replica draws different noise;
- the task loss and the KL are averaged over the GLOBAL batch, so ``beta`` and ``n_train``
  mean the same on 1 and N devices;
- with injected noise, N devices at global batch ``B`` match 1 device at batch ``B`` in
  loss, KL and updated parameters, to float tolerance.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np

from idrop.backends import BACKENDS as FRAMEWORKS


def shard_bounds(n: int, num_shards: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` of each shard of ``n`` items, sizes differing by at most one.

    Contiguous (not strided) shards keep a global batch in its order when the shards are
    concatenated by rank, which is what makes an N-device step comparable to a 1-device one.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1; received {num_shards}")
    sizes = [n // num_shards + (1 if r < n % num_shards else 0) for r in range(num_shards)]
    edges = np.concatenate([[0], np.cumsum(sizes)])
    return [(int(edges[r]), int(edges[r + 1])) for r in range(num_shards)]


def replica_seed(seed: int, replica: int) -> int:
    """A 31-bit seed for ``replica``; replica 0 keeps ``seed`` so a 1-device run is unchanged."""
    if replica == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(replica), 11]).generate_state(1)[0] & 0x7FFFFFFF)


def __getattr__(name: str) -> ModuleType:
    if name == "keras":  # Keras brings its own engine; nothing of idrop's is needed on top of it
        raise AttributeError(
            "idrop.distributed has no keras module: idrop.backends.keras layers run under Keras's own "
            "keras.distribution.DataParallel (each replica draws different noise); "
            "idrop.distributed.tensorflow and .jax wrap the native engines."
        )
    if name in FRAMEWORKS:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FRAMEWORKS", "replica_seed", "shard_bounds"]
