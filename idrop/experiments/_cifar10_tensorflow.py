"""TensorFlow / Keras 3 trainer of the CIFAR-10 experiment: All-CNN-32 as in the official ``cifar.py``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from idrop.backends.tensorflow import kl_loss
from idrop.experiments import ResultDir, RunKey, run_grid

from ._tensorflow_common import (
    act,
    batches,
    configure,
    conv_bn,
    load_tf_state,
    noisy_block,
    refresh_batch_norm,
    save_tf_state,
    use_jit,
)


class AllCNN32(keras.Model):
    """All-CNN-32 (paper Table 2a): input dropout 0.2, then 3x conv96 and 3x conv192 blocks.

    The third conv of each block has stride 2 and carries the noise (Information Dropout,
    binary dropout 0.5, or none); then conv192 3x3, conv192 1x1, conv10 1x1 and a global
    average. Batch norm on every conv; the logits get no activation. Inputs are NHWC.
    """

    def __init__(
        self,
        *,
        method: str,
        filter_percentage: float,
        activation: str,
        max_alpha: float,
        input_dropout: float = 0.2,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        a, b = (max(1, round(w * filter_percentage)) for w in (96, 192))
        self.input_dropout = keras.layers.Dropout(input_dropout, seed=seed * 100)  # binary, as the official code
        layers: list[keras.Layer] = []
        for i, w in enumerate((a, b)):
            for _ in range(2):
                layers += [*conv_bn(w, 3), act(activation)]
            layers += noisy_block(method, w, activation=activation, max_alpha=max_alpha, seed=seed * 100 + 1 + i)
        layers += [*conv_bn(b, 3), act(activation), *conv_bn(b, 1), act(activation), *conv_bn(10, 1)]
        self.blocks = layers

    def call(self, x: Any, training: bool | None = None) -> Any:
        x = self.input_dropout(x, training=training)
        for layer in self.blocks:
            x = layer(x, training=training)
        return tf.reduce_mean(x, axis=(1, 2))


def lr_at(cfg: dict[str, Any], scheduler_steps: int) -> float:
    """Torch's ``MultiStepLR(milestones, gamma=0.1)`` after ``scheduler_steps`` steps (one per epoch)."""
    drops = [max(1, round(cfg["epochs"] * f)) for f in cfg["lr_drops"]]
    return cfg["lr"] * 0.1 ** sum(scheduler_steps >= d for d in drops)


class CifarRun:
    """One (method, filter percentage, seed) run."""

    def __init__(self, key: RunKey, cfg: dict[str, Any], data: dict[str, np.ndarray]) -> None:
        keras.utils.set_random_seed(key.seed)
        self.cfg, self.key = cfg, key
        self.rng = np.random.default_rng(key.seed)
        self.x_train = np.asarray(data["x_train"], dtype=np.float32)  # NHWC, as idrop.data gives them
        self.y_train = np.asarray(data["y_train"], dtype=np.int64)
        self.x_test = np.asarray(data["x_test"], dtype=np.float32)
        self.y_test = np.asarray(data["y_test"], dtype=np.int64)
        self.model = AllCNN32(
            method=key.method,
            filter_percentage=key.width,
            activation=cfg["activation"],
            max_alpha=cfg["max_alpha"],
            seed=key.seed,
        )
        self.model(self.x_train[:1], training=False)  # build
        # torch's SGD: momentum 0.9 and coupled weight decay (added to the gradient, below).
        self.optimizer = keras.optimizers.SGD(learning_rate=cfg["lr"], momentum=0.9)
        self.optimizer.build(self.model.trainable_variables)
        n, beta, wd = len(self.x_train), cfg["beta"], cfg["weight_decay"]
        model, optimizer = self.model, self.optimizer

        def step(x: Any, y: Any) -> tuple[Any, Any, Any]:
            variables = model.trainable_variables
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
                kl_term = kl_loss(model, n)  # collects the step's KL records, once
                loss = ce + beta * kl_term  # ib_loss(ce, model, beta, n), which would collect them again
                kl = kl_term * n  # per-sample KL in nats
            grads = tape.gradient(loss, variables)
            optimizer.apply([g + wd * v for g, v in zip(grads, variables)], variables)
            wrong = tf.reduce_sum(tf.cast(tf.argmax(logits, 1) != y, tf.float32))
            return loss, kl, wrong

        self._step = tf.function(step, jit_compile=use_jit(), reduce_retracing=True)
        self._predict = tf.function(lambda x: tf.argmax(model(x, training=False), 1), reduce_retracing=True)

    def _augment(self, x: np.ndarray) -> np.ndarray:
        """Random horizontal flips (the official code's only augmentation besides whitening)."""
        flip = self.rng.random(len(x)) < 0.5
        return np.where(flip[:, None, None, None], x[:, :, ::-1], x)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.optimizer.learning_rate.assign(lr_at(self.cfg, epoch - 1))
        n = len(self.x_train)
        tot = {"loss": 0.0, "kl": 0.0, "error": 0.0}
        for idx in batches(n, self.cfg["batch_size"], self.rng):
            x = self._augment(self.x_train[idx])
            loss, kl, wrong = self._step(tf.constant(x), tf.constant(self.y_train[idx]))
            tot["loss"] += float(loss) * len(idx)
            tot["kl"] += float(kl) * len(idx)
            tot["error"] += float(wrong)
        # As torch reports it: the lr after this epoch's scheduler step.
        return {**{k: v / n for k, v in tot.items()}, "lr": lr_at(self.cfg, epoch)}

    def evaluate(self) -> dict[str, float]:
        refresh_batch_norm(self.model, self.x_train, self.cfg["batch_size"])
        wrong = 0
        for idx in batches(len(self.x_test), self.cfg["batch_size"]):
            pred = self._predict(tf.constant(self.x_test[idx])).numpy()
            wrong += int((pred != self.y_test[idx]).sum())
        return {"test_error": wrong / len(self.x_test)}

    def save_state(self, path: Path) -> None:
        save_tf_state(path, self.model, self.optimizer, self.rng)

    def load_state(self, path: Path) -> None:
        load_tf_state(path, self.model, self.optimizer, self.rng)


def train_all(
    results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray], *, progress: bool
) -> list[dict[str, Any]]:
    """Every (method, filter percentage, seed) run, resumable; return the finished rows."""
    configure(cfg["device"])
    keys = [RunKey(m, p, s) for m in cfg["methods"] for p in cfg["filter_percentages"] for s in cfg["seeds"]]
    return run_grid(results, keys, lambda k: CifarRun(k, cfg, data), epochs=cfg["epochs"], progress=progress)
