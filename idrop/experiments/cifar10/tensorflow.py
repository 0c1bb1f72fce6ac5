"""TensorFlow / Keras 3 train step of the CIFAR-10 experiment (protocol in :mod:`idrop.experiments.cifar10`)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from idrop.backends.tensorflow import kl_loss
from idrop.experiments import ResultDir, RunKey, run_grid
from idrop.experiments._tensorflow_common import (
    KerasCheckpoint,
    batches,
    configure,
    refresh_batch_norm,
    use_jit,
)
from idrop.experiments.nets import all_cnn_widths
from idrop.experiments.nets.tensorflow import AllCNN32

from . import lr_at


class CifarRun(KerasCheckpoint):
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
            key.method,
            widths=all_cnn_widths(float(key.width)),
            activation=cfg["activation"],
            max_alpha=cfg["max_alpha"],
            input_dropout=cfg["input_dropout"],
            seed=key.seed,
        )
        self.model(self.x_train[:1], training=False)  # build
        # Nesterov momentum 0.9 (task.py:122) and coupled weight decay (added to the gradient, below).
        self.optimizer = keras.optimizers.SGD(learning_rate=cfg["lr"], momentum=0.9, nesterov=True)
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
        """Random horizontal flips with ``--flip`` (not in the official code), else ``x``."""
        if not self.cfg["flip"]:
            return x
        flip = self.rng.random(len(x)) < 0.5
        return np.where(flip[:, None, None, None], x[:, :, ::-1], x)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.optimizer.learning_rate.assign(lr_at(self.cfg, epoch))
        n = len(self.x_train)
        tot = {"loss": 0.0, "kl": 0.0, "error": 0.0}
        for idx in batches(n, self.cfg["batch_size"], self.rng):
            x = self._augment(self.x_train[idx])
            loss, kl, wrong = self._step(tf.constant(x), tf.constant(self.y_train[idx]))
            tot["loss"] += float(loss) * len(idx)
            tot["kl"] += float(kl) * len(idx)
            tot["error"] += float(wrong)
        return {**{k: v / n for k, v in tot.items()}, "lr": lr_at(self.cfg, epoch)}

    def evaluate(self) -> dict[str, float]:
        refresh_batch_norm(self.model, self.x_train, self.cfg["batch_size"])
        wrong = 0
        for idx in batches(len(self.x_test), self.cfg["batch_size"]):
            pred = self._predict(tf.constant(self.x_test[idx])).numpy()
            wrong += int((pred != self.y_test[idx]).sum())
        return {"test_error": wrong / len(self.x_test)}


def train_all(
    results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray], *, progress: bool
) -> list[dict[str, Any]]:
    """Every (method, filter percentage, seed) run, resumable; return the finished rows."""
    configure(cfg["device"])
    keys = [RunKey(m, p, s) for m in cfg["methods"] for p in cfg["filter_percentages"] for s in cfg["seeds"]]
    return run_grid(results, keys, lambda k: CifarRun(k, cfg, data), epochs=cfg["epochs"], progress=progress)
