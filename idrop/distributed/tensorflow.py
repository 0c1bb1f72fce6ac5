"""TensorFlow / Keras 3 data parallelism: ``tf.distribute.MirroredStrategy`` with ``model.fit``.

Build and compile the model under ``strategy().scope()`` and call ``model.fit`` with the
GLOBAL batch; Keras splits each batch over the replicas and sums the gradients.

Loss scaling (checked on Keras 3.15 / TF 2.21): Keras divides the compiled loss AND every
``add_loss`` term by the number of replicas (``Trainer._aggregate_additional_loss`` calls
``scale_loss_for_distribution``) before the cross-replica SUM of gradients. The layer's
``add_loss(beta * mean_kl / n_train)`` therefore means the same on 1 and N replicas with
no change; only a global batch that does not divide evenly gives its shards equal weight
instead of weights proportional to their sizes (Keras does the same to the task loss).
Custom loops that call ``strategy.run`` themselves use :func:`global_ib_loss` instead.

Noise: a Keras ``SeedGenerator``'s state is one (mirrored) variable, so every replica
reads the same seed; the idrop layers fold the replica id into it themselves
(``idrop.backends.tensorflow._namespace._fold_replica``; replica 0 keeps the 1-device stream), so
replicas draw different noise with no extra call.
"""

from __future__ import annotations

try:
    import keras
    import tensorflow as tf
except ImportError as err:  # pragma: no cover - exercised without tensorflow only
    raise ImportError(
        "idrop.distributed.tensorflow requires TensorFlow; install it with: pip install 'idrop[tensorflow]'"
    ) from err

from idrop.backends.tensorflow._losses import collect as collect_kl

_STRATEGIES: dict[tuple[str, ...], tf.distribute.MirroredStrategy] = {}


def split_cpu(n: int) -> None:
    """Expose the CPU as ``n`` logical devices (tests, CPU-only machines). Call before TensorFlow starts."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


def strategy(devices: int | None = None, device: str = "auto") -> tf.distribute.Strategy:
    """A ``MirroredStrategy`` over ``devices`` GPUs (or logical CPUs), or the default strategy for one.

    Args:
        devices: Replica count; ``None`` or 1 gives TensorFlow's default (no-op) strategy.
        device: ``"auto"`` (GPUs when present), ``"cuda"`` or ``"cpu"``.

    Raises:
        ValueError: Fewer devices of that kind than asked for.
    """
    if devices in (None, 1):
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU") if device != "cpu" else []
    if device == "cuda" and not gpus:
        raise ValueError("--device cuda was asked for, but TensorFlow sees no GPU.")
    pool = gpus or tf.config.list_logical_devices("CPU")
    if len(pool) < devices:
        kind = "GPU" if gpus else "CPU"
        hint = "" if gpus else " (split the CPU with idrop.distributed.tensorflow.split_cpu before TensorFlow starts)"
        raise ValueError(f"Asked for {devices} devices; TensorFlow sees {len(pool)} {kind} device(s){hint}.")
    names = tuple(d.name for d in pool[:devices])
    # One strategy per device set and process: two MirroredStrategy objects over the same
    # devices clash in their collective-op instance keys ("Shape mismatch in the collective").
    if names not in _STRATEGIES:
        _STRATEGIES[names] = tf.distribute.MirroredStrategy(list(names))
    return _STRATEGIES[names]


def jit_supported(strategy: tf.distribute.Strategy) -> bool:
    """Whether XLA can compile a step under ``strategy``: not a ``MirroredStrategy`` over logical CPUs.

    XLA cannot read a variable placed on another CPU device
    (https://www.tensorflow.org/xla/known_issues#tfvariable_on_a_different_device), and the
    replicas of a split CPU all run on the host: ``model.fit(jit_compile=True)`` over them fails
    with "Trying to access resource ... located in device CPU:1 from device CPU:0".
    """
    if strategy.num_replicas_in_sync == 1:
        return True
    kinds = {tf.DeviceSpec.from_string(d).device_type for d in strategy.extended.worker_devices}
    return "CPU" not in kinds


def replica_id() -> tf.Tensor:
    """This replica's index in its sync group (0 outside any strategy)."""
    ctx = tf.distribute.get_replica_context()
    rid = 0 if ctx is None else ctx.replica_id_in_sync_group
    return tf.cast(rid, "int64")


def global_ib_loss(
    task_per_example: tf.Tensor, model: keras.Layer, beta: float, n_train: int, global_batch: int
) -> tf.Tensor:
    """Eq. 5 for custom loops under ``strategy.run``: this replica's share of the global-batch mean.

    ``(sum of task losses + beta * sum of per-example KL / n_train) / global_batch``, so the
    cross-replica SUM of gradients is the gradient of the global-batch mean, for any split.
    Like ``ib_loss`` it collects the layers' KL records (docs/design-notes.md section 3).
    Do not also give the layers ``beta``/``n_train`` (their ``add_loss`` would count twice).
    """
    kl = tf.zeros((), task_per_example.dtype)
    for record in collect_kl(model):  # every InfoDropout call since the last collection; empties the records
        kl += tf.reduce_sum(tf.cast(record, task_per_example.dtype))
    return (tf.reduce_sum(task_per_example) + beta * kl / n_train) / global_batch


__all__ = ["global_ib_loss", "jit_supported", "replica_id", "split_cpu", "strategy"]
