"""TensorFlow / Keras 3 pieces the experiment trainers share: device set-up, batching, the official
code's padded conv and batch norm, the batch-norm dry run, per-unit KL for heat maps, and checkpoints
(the counterpart of ``_torch_common``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

_configured = False


def configure(device: str | None, threads: int | None = None) -> str:
    """Configure TensorFlow once for ``--device`` (``None``/``auto``: the GPU when present); return its name.

    On CPU, ``threads`` sets the intra-op threads (TensorFlow's default otherwise) and one
    inter-op thread is used: the per-layer ops of these small nets gain nothing from more.
    """
    global _configured
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cuda" and not gpus:
        raise RuntimeError("--device cuda was asked for, but TensorFlow sees no GPU.")
    chosen = "cuda" if device in (None, "auto", "cuda") and gpus else "cpu"
    if not _configured:
        try:
            if chosen == "cpu":
                tf.config.set_visible_devices([], "GPU")
                tf.config.threading.set_inter_op_parallelism_threads(1)
                if threads:
                    tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        except RuntimeError:
            pass  # TensorFlow already initialised (e.g. by an earlier run in this process): keep it
        _configured = True
    return chosen


def use_jit() -> bool:
    """XLA for the train step: off by default (oneDNN's convolutions beat XLA's on CPU); ``IDROP_TF_JIT=1``."""
    return os.environ.get("IDROP_TF_JIT", "0") == "1"


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Index batches over ``n`` items, shuffled when ``rng`` is given; the last may be short."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


@keras.saving.register_keras_serializable(package="idrop_experiments")
class BatchNorm(keras.layers.BatchNormalization):
    """Batch norm with torch's defaults (momentum 0.1 there, 0.9 here; eps 1e-5), plus a dry-run mode.

    With ``refreshing`` set (while :func:`refresh_batch_norm` traces its pass) the layer
    normalises with the batch's statistics whatever ``training`` says, and leaves them on
    ``batch_stats`` (mean, unbiased variance) for the caller to average.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("momentum", 0.9)
        kwargs.setdefault("epsilon", 1e-5)
        super().__init__(**kwargs)
        object.__setattr__(self, "refreshing", False)
        object.__setattr__(self, "batch_stats", None)

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        if not self.refreshing:
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, "float32")
        axes = list(range(len(x.shape) - 1))
        mean, var = tf.nn.moments(x, axes=axes)
        n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), "float32")
        object.__setattr__(self, "batch_stats", (mean, var * n / tf.maximum(n - 1.0, 1.0)))
        y = tf.nn.batch_normalization(x, mean, var, self.beta, self.gamma, self.epsilon)
        return tf.cast(y, inputs.dtype)


@keras.saving.register_keras_serializable(package="idrop_experiments")
class Conv2D(keras.layers.Conv2D):
    """A conv zero-padded by ``k // 2`` on every side, as torch's ``padding=k // 2`` and the JAX nets'.

    Keras' ``padding="same"`` pads a stride-2 3x3 conv on an even input by 0 before and 1 after
    (TF's 'SAME', as the official code), so its output cell ``i`` sees input pixels ``2i..2i+2``
    where torch's and JAX's see ``2i-1..2i+1``: the same grid size, shifted by one pixel. With
    this layer the three backends compute the same function of the same weights, and their heat
    maps lie on the same grid. (For stride 1 and an odd kernel it equals ``"same"``.)
    """

    def __init__(self, filters: int, kernel_size: Any, **kwargs: Any) -> None:
        kwargs["padding"] = "valid"
        super().__init__(filters, kernel_size, **kwargs)

    def _pads(self) -> list[list[int]]:
        kh, kw = self.kernel_size
        return [[0, 0], [kh // 2, kh // 2], [kw // 2, kw // 2], [0, 0]]

    def call(self, inputs: Any) -> Any:
        return super().call(keras.ops.pad(inputs, self._pads()))

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = list(input_shape)
        for axis, (before, after) in ((1, self._pads()[1]), (2, self._pads()[2])):
            if shape[axis] is not None:
                shape[axis] += before + after
        return super().compute_output_shape(tuple(shape))


def batch_norms(model: keras.Model) -> list[BatchNorm]:
    return [m for m in model._flatten_layers(include_self=False, recursive=True) if isinstance(m, BatchNorm)]


def refresh_batch_norm(model: keras.Model, x: np.ndarray, batch_size: int) -> None:
    """Re-estimate batch-norm statistics over ``x`` with all noise off (the official "dry run").

    As torch's cumulative average (``momentum=None``): each BN normalises with the batch's
    statistics and its moving mean / variance become the average over batches of the batch
    mean / unbiased variance; every other layer runs in inference mode.
    """
    norms = batch_norms(model)
    if not norms:
        return
    for m in norms:
        object.__setattr__(m, "refreshing", True)
    try:

        @tf.function(reduce_retracing=True)
        def stats(xb: Any) -> list[Any]:
            model(xb, training=False)
            return [m.batch_stats for m in norms]

        sums = [
            [np.zeros(m.moving_mean.shape, np.float64), np.zeros(m.moving_variance.shape, np.float64)] for m in norms
        ]
        count = 0
        for idx in batches(len(x), batch_size):
            for acc, (mean, var) in zip(sums, stats(tf.constant(x[idx]))):
                acc[0] += mean.numpy()
                acc[1] += var.numpy()
            count += 1
    finally:
        for m in norms:
            object.__setattr__(m, "refreshing", False)
            object.__setattr__(m, "batch_stats", None)
    for m, (mean, var) in zip(norms, sums):
        m.moving_mean.assign((mean / count).astype(np.float32))
        m.moving_variance.assign((var / count).astype(np.float32))


def state_variables(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> list[Any]:
    """Every variable a checkpoint holds: the model's (weights, BN statistics, noise seeds) and the optimizer's."""
    return list(model.variables) + list(optimizer.variables)


def save_tf_state(
    path: Path, model: keras.Model, optimizer: keras.optimizers.Optimizer, rng: np.random.Generator
) -> None:
    """Model and optimizer variables (in order) and the numpy RNG state in one ``.npz`` file."""
    arrays = {f"v{i}": np.asarray(v) for i, v in enumerate(state_variables(model, optimizer))}
    arrays["numpy_rng"] = np.array(json.dumps(rng.bit_generator.state))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def load_tf_state(
    path: Path, model: keras.Model, optimizer: keras.optimizers.Optimizer, rng: np.random.Generator
) -> None:
    """Restore what :func:`save_tf_state` wrote (model and optimizer must be built)."""
    variables = state_variables(model, optimizer)
    with np.load(path) as saved:
        n = len(saved.files) - 1
        if n != len(variables):
            raise ValueError(f"{path} holds {n} variables; this run has {len(variables)}.")
        for i, var in enumerate(variables):
            var.assign(saved[f"v{i}"])
        rng.bit_generator.state = json.loads(str(saved["numpy_rng"]))


class KerasCheckpoint:
    """``save_state``/``load_state`` of a run that holds ``model``, ``optimizer`` and ``rng``: what the
    shared runner calls after every epoch and on ``--resume``."""

    def save_state(self, path: Path) -> None:
        save_tf_state(path, self.model, self.optimizer, self.rng)

    def load_state(self, path: Path) -> None:
        load_tf_state(path, self.model, self.optimizer, self.rng)
