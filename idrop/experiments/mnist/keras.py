"""Keras 3 model and training of the MNIST experiment on any Keras backend (``KERAS_BACKEND``).

The network and protocol of :mod:`idrop.experiments.mnist.tensorflow`, written on
:mod:`idrop.backends.keras`: ``model.fit`` on the epoch's batches in :func:`._seeds.batch_order`'s
order, the KL term the layers' own ``add_loss(beta * mean_kl / n_train)``. One device (the CPU,
or whatever Keras's backend places arrays on); ``--devices N`` is the tensorflow/jax backends'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from idrop.backends.keras import InfoDropout
from idrop.experiments._keras_common import KerasCheckpoint
from idrop.experiments.nets.keras import build_mlp as build_model

from ._seeds import batch_order, epoch_seed, init_seed


def device_name(device: str) -> str:
    """Human-readable name of the device a run will use: Keras's backend and its first device."""
    return f"keras[{keras.backend.backend()}] {keras.distribution.list_devices()[0]}"


class KerasRun(KerasCheckpoint):
    """One (method, width, seed) run; follows :class:`idrop.experiments.Run`."""

    def __init__(self, key: Any, data: Any, config: Any) -> None:
        method, config = config.resolve(key.method)  # information-b<beta>: the network's method, the run's beta
        self.key, self.data, self.config = key, data, config
        self.model = build_model(method, int(key.width), config, init_seed(key.seed, key.width, key.method))
        self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
        self.model.compile(
            optimizer=self.optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
        self.optimizer.build(self.model.trainable_variables)
        self.seed_states = [v for v in self.model.variables if "seed_generator_state" in v.path]
        self.idrop = [m for m in self.model.layers if isinstance(m, InfoDropout)]

    def train_epoch(self, epoch: int) -> dict[str, float]:
        base = epoch_seed(self.key.seed, epoch)
        for i, state in enumerate(self.seed_states):  # this epoch's noise, each layer its own stream
            state.assign(np.array([_layer_seed(base, i), 0]).astype(keras.backend.standardize_dtype(state.dtype)))
        for m in self.idrop:
            if m.kl_metric is not None:
                m.kl_metric.reset_state()
        self.optimizer.learning_rate.assign(self.config.lr_at(epoch))
        x, y = np.asarray(self.data.x_train), np.asarray(self.data.y_train)
        order = np.concatenate(batch_order(len(x), self.config.batch_size, self.key.seed, epoch))
        history = self.model.fit(
            x[order], y[order], batch_size=self.config.batch_size, epochs=1, verbose=0, shuffle=False
        ).history
        return {
            "loss": float(history["loss"][0]),
            "kl": self._kl(x),
            "error": 1.0 - float(history["accuracy"][0]),
            "test_error": self._error("test"),
        }

    def _kl(self, x: np.ndarray) -> float:
        """Nats per image, summed over layers: the layers' KL metric, or (JAX, keras-team/keras#21639) a pass."""
        if all(m.kl_metric is not None for m in self.idrop):
            return sum((float(m.kl_metric.result()) for m in self.idrop), 0.0)
        total = 0.0
        for i in range(0, len(x), 2000):
            self.model(x[i : i + 2000], training=True)
            total += sum(float(ops.sum(m.kl)) for m in self.idrop)
        return total / len(x)

    def _error(self, split: str) -> float:
        x, y = np.asarray(getattr(self.data, f"x_{split}")), np.asarray(getattr(self.data, f"y_{split}"))
        wrong = 0
        for i in range(0, len(x), 2000):
            logits = self.model(x[i : i + 2000], training=False)
            wrong += int(np.sum(np.argmax(ops.convert_to_numpy(logits), axis=1) != y[i : i + 2000]))
        return wrong / len(x)

    def evaluate(self) -> dict[str, float]:
        return {
            "test_error": self._error("test"),
            "valid_error": self._error("valid"),
            "train_error": self._error("train"),
        }


def _layer_seed(base: int, layer: int) -> int:
    """A 31-bit seed for one noise layer in one epoch (as the TensorFlow trainer's)."""
    return int(np.random.SeedSequence([base, layer, 5]).generate_state(1)[0] & 0x7FFFFFFF)


def make_runs(data: Any, config: Any, device: str, devices: int = 1) -> Callable[[Any], KerasRun]:
    """The ``make_run(key)`` factory for :func:`idrop.experiments.run_grid` (one device)."""
    if devices != 1:
        raise NotImplementedError(
            "--devices with --backend keras: use --backend tensorflow or jax for data-parallel MNIST runs."
        )
    return lambda key: KerasRun(key, data, config)
