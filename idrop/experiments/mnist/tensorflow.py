"""TensorFlow / Keras 3 model and train step of the MNIST experiment (see :mod:`idrop.experiments.mnist`).

Training is ``model.fit`` under a ``tf.distribute`` strategy (:mod:`idrop.distributed.tensorflow`;
the default strategy on one device, ``MirroredStrategy`` with ``--devices N``). The KL term
is the layers' own ``add_loss(beta * mean_kl / n_train)``, which Keras scales by
``1/num_replicas`` like the task loss, so it means the same on 1 and N devices.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no oneDNN banners in the progress output

import keras
import tensorflow as tf

from idrop.backends.tensorflow import InfoDropout
from idrop.distributed import tensorflow as dtf
from idrop.experiments.nets.tensorflow import build_mlp as build_model

from ._seeds import batch_order, epoch_seed, init_seed

_configured: str | None = None


def resolve_device(device: str, devices: int = 1) -> str:
    """Configure TensorFlow once for ``device`` and return ``"cuda"`` or ``"cpu"``.

    On CPU with ``devices`` > 1 the CPU is split into that many logical devices, one per replica.
    """
    global _configured
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cuda" and not gpus:
        raise RuntimeError("--device cuda was asked for, but TensorFlow sees no GPU.")
    chosen = "cuda" if device in ("auto", "cuda") and gpus else "cpu"
    if _configured is None:
        if chosen == "cpu":
            try:
                tf.config.set_visible_devices([], "GPU")
                # Tiny matmuls: extra threads only spin-wait on a small CPU.
                tf.config.threading.set_intra_op_parallelism_threads(1)
                tf.config.threading.set_inter_op_parallelism_threads(1)
                if devices > 1:
                    dtf.split_cpu(devices)
            except RuntimeError:
                pass  # TensorFlow already initialised by the caller: keep its settings
        _configured = chosen
    return chosen


def device_name(device: str) -> str:
    """Human-readable name of the device a run will use."""
    return "GPU" if resolve_device(device) == "cuda" else "CPU"


class TensorFlowRun:
    """One (method, width, seed) run; follows :class:`idrop.experiments.Run`."""

    def __init__(
        self, key: Any, data: dict[str, tf.Tensor], config: Any, jit: bool, strategy: tf.distribute.Strategy
    ) -> None:
        method, config = config.resolve(key.method)  # information-b<beta>: the network's method, the run's beta
        self.key, self.data, self.config, self.strategy = key, data, config, strategy
        with strategy.scope():
            self.model = build_model(method, int(key.width), config, init_seed(key.seed, key.width, key.method))
            self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
            self.model.compile(
                optimizer=self.optimizer,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                jit_compile=jit,
            )
            self.optimizer.build(self.model.trainable_variables)
        self.seed_states = [v for v in self.model.variables if "seed_generator_state" in v.path]
        self.kl_metrics = [m.kl_metric for m in self.model.layers if isinstance(m, InfoDropout)]
        self._predict = tf.function(lambda x: tf.argmax(self.model(x, training=False), axis=1), jit_compile=jit)

    def _dataset(self, epoch: int) -> tf.data.Dataset:
        """The epoch's global batches, in :func:`batch_order`'s order (fit splits each over the replicas)."""
        x, y = self.data["x_train"], self.data["y_train"]
        order = np.concatenate(batch_order(int(x.shape[0]), self.config.batch_size, self.key.seed, epoch))
        ds = tf.data.Dataset.from_tensor_slices(order).batch(self.config.batch_size)
        return ds.map(lambda i: (tf.gather(x, i), tf.gather(y, i))).prefetch(2)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        base = epoch_seed(self.key.seed, epoch)
        for i, state in enumerate(self.seed_states):
            # The noise of this epoch, independent of the past; each layer its own stream. (The
            # counter word advances once per draw, so layers must differ in the other word.)
            state.assign(np.array([_layer_seed(base, i), 0], dtype=state.dtype))
        for m in self.kl_metrics:
            m.reset_state()
        self.optimizer.learning_rate.assign(self.config.lr_at(epoch))
        history = self.model.fit(self._dataset(epoch), epochs=1, verbose=0, shuffle=False).history
        kl = sum((float(m.result()) for m in self.kl_metrics), 0.0)  # nats per image, summed over layers
        return {
            "loss": float(history["loss"][0]),
            "kl": kl,
            "error": 1.0 - float(history["accuracy"][0]),
            "test_error": self._error("test"),
        }

    def _error(self, split: str) -> float:
        x, y = self.data[f"x_{split}"], self.data[f"y_{split}"]
        n = int(x.shape[0])
        wrong = sum(
            int(tf.reduce_sum(tf.cast(self._predict(x[i : i + 2000]) != y[i : i + 2000], tf.int32)))
            for i in range(0, n, 2000)
        )
        return wrong / n

    def evaluate(self) -> dict[str, float]:
        return {
            "test_error": self._error("test"),
            "valid_error": self._error("valid"),
            "train_error": self._error("train"),
        }

    def _variables(self) -> list[Any]:
        return list(self.model.variables) + list(self.optimizer.variables)

    def save_state(self, path: Path) -> None:
        with open(path, "wb") as fh:
            np.savez(fh, *[np.asarray(v) for v in self._variables()])

    def load_state(self, path: Path) -> None:
        with np.load(path) as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        variables = self._variables()
        if len(values) != len(variables):
            raise ValueError(f"{path} holds {len(values)} arrays; this model has {len(variables)} variables.")
        for var, value in zip(variables, values):
            var.assign(value)


def _layer_seed(base: int, layer: int) -> int:
    """A 31-bit seed for one noise layer in one epoch."""
    return int(np.random.SeedSequence([base, layer, 5]).generate_state(1)[0] & 0x7FFFFFFF)


def make_runs(data: Any, config: Any, device: str, devices: int = 1) -> Callable[[Any], TensorFlowRun]:
    """The ``make_run(key)`` factory for :func:`idrop.experiments.run_grid`.

    ``devices`` > 1 trains with a ``MirroredStrategy`` over that many GPUs (or logical CPUs).
    """
    resolve_device(device, devices)
    strategy = dtf.strategy(devices, device)
    tensors = {
        k: tf.constant(np.asarray(getattr(data, k)))
        for k in ("x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test")
    }
    # XLA fuses the small ops of the step; worth it on CPU too (measured in the report), except
    # over logical CPUs, where XLA cannot reach the other replicas' variables.
    jit = os.environ.get("IDROP_TF_JIT", "1") != "0" and dtf.jit_supported(strategy)
    return lambda key: TensorFlowRun(key, tensors, config, jit, strategy)
