"""JAX data parallelism with ``jax.sharding``: a 1-D ``Mesh`` whose ``"data"`` axis splits the batch.

Parameters and optimizer state are replicated; a batch is sharded on its leading axis; the
train step is an ordinary ``jax.jit`` function, and XLA (GSPMD) inserts the gradient
all-reduce. Losses written as means over the batch are therefore means over the GLOBAL
batch, so ``beta`` and ``n_train`` mean the same on 1 and N devices.

Noise: the step draws ``eps`` for the whole global batch from ONE key, and the draw is
sharded over the batch like the activations. With ``jax_threefry_partitionable`` (the
default since JAX 0.5; :func:`data_mesh` turns it on) the random bits of element ``i`` are
a function of ``(key, i)`` only, so every example (hence every replica) gets different
noise, and the N-device draw is bit-for-bit the 1-device draw: an N-device step matches a
1-device step at the same global batch even with sampled noise. :func:`replica_keys` is for
code that runs per device (``shard_map``), where each device must fold its index into the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
except ImportError as err:  # pragma: no cover - exercised without jax only
    raise ImportError("idrop.distributed.jax requires JAX; install it with: pip install 'idrop[jax]'") from err

AXIS = "data"


def data_mesh(devices: int | Sequence[jax.Device] | None = None, platform: str | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over the first ``devices`` devices (all when ``None``).

    Args:
        devices: A count, an explicit device list, or ``None`` for every device of ``platform``.
        platform: ``"cpu"``, ``"gpu"``, ... (default: JAX's default backend).

    Raises:
        ValueError: More devices asked for than JAX sees (on CPU, set
            ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before JAX starts).
    """
    # Partitionable threefry: sharded draws equal unsharded ones (see the module docstring).
    jax.config.update("jax_threefry_partitionable", True)
    if devices is None or isinstance(devices, int):
        available = jax.devices(platform)
        n = len(available) if devices is None else devices
        if not 1 <= n <= len(available):
            hint = (
                " (for CPU devices set XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX starts)"
                if available[0].platform == "cpu"
                else ""
            )
            raise ValueError(
                f"Asked for {n} devices; JAX sees {len(available)} {available[0].platform} device(s)" + hint + "."
            )
        devices = available[:n]
    return Mesh(np.asarray(list(devices)), (AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over ``"data"``, the rest whole."""
    return NamedSharding(mesh, PartitionSpec(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


def shard_batch(mesh: Mesh, *arrays: Any) -> Any:
    """Put arrays on ``mesh`` split along their leading axis (which must divide by the mesh size).

    Returns:
        One array, or a tuple when several are given.
    """
    out = tuple(jax.device_put(a, batch_sharding(mesh)) for a in arrays)
    return out[0] if len(out) == 1 else out


def replicate(mesh: Mesh, tree: Any) -> Any:
    """Every array leaf of ``tree`` copied to every device of ``mesh`` (parameters, optimizer state)."""
    return jax.device_put(tree, replicated(mesh))


def pad_batch(idx: np.ndarray, multiple: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad a batch's indices to a multiple of the device count, with 0/1 example weights.

    A sharded axis must divide evenly; the padded rows repeat the first index and weigh 0,
    so a weighted mean over the padded batch is the plain mean over the real one.
    """
    pad = (-len(idx)) % multiple
    weights = np.concatenate([np.ones(len(idx), np.float32), np.zeros(pad, np.float32)])
    return np.concatenate([idx, np.full(pad, idx[0] if len(idx) else 0, idx.dtype)]), weights


def weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """``sum(w * v) / sum(w)`` over the leading axis: the mean over the real examples of a padded batch."""
    return jnp.sum(values * weights) / jnp.sum(weights)


def replica_keys(key: jax.Array, num_replicas: int) -> jax.Array:
    """One key per replica, ``fold_in(key, i)``: for per-device code (``shard_map``) that draws its own noise."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(num_replicas))


__all__ = [
    "AXIS",
    "batch_sharding",
    "data_mesh",
    "pad_batch",
    "replica_keys",
    "replicate",
    "replicated",
    "shard_batch",
    "weighted_mean",
]
