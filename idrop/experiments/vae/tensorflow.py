"""TensorFlow / Keras 3 trainer of the VAE experiment: Gaussian latent vs Information Dropout latent."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from idrop.experiments import ResultDir, RunKey, run_grid
from idrop.experiments._tensorflow_common import KerasCheckpoint, batches, configure, use_jit
from idrop.experiments.nets import tensorflow as nets
from idrop.experiments.nets.tensorflow import VAE


def negative_elbo(model: VAE, x: Any) -> tuple[Any, Any]:
    """Per-sample ``-ELBO`` (nats) from one latent sample, and the per-sample KL."""
    logits, kl = model(x)
    return nets.negative_elbo(x, logits, kl), kl


class VaeRun(KerasCheckpoint):
    """One (latent type, k, seed) run."""

    def __init__(self, key: RunKey, cfg: dict[str, Any], data: dict[str, np.ndarray]) -> None:
        keras.utils.set_random_seed(key.seed)
        self.cfg = cfg
        self.rng = np.random.default_rng(key.seed)
        self.x_train = np.asarray(data["x_train"], dtype=np.float32)
        self.x_test = np.asarray(data["x_test"], dtype=np.float32)
        hidden, n_latent = (max(1, round(b * key.width / cfg["scale"])) for b in (512, 256))
        self.model = VAE(key.method, hidden, n_latent, cfg["max_alpha"], seed=key.seed)
        self.model(self.x_train[:1])  # build
        self.optimizer = keras.optimizers.Adam(learning_rate=cfg["lr"])
        self.optimizer.build(self.model.trainable_variables)
        model, optimizer = self.model, self.optimizer

        def step(x: Any) -> tuple[Any, Any]:
            with tf.GradientTape() as tape:
                loss, kl = negative_elbo(model, x)
                mean = tf.reduce_mean(loss)
            optimizer.apply(tape.gradient(mean, model.trainable_variables), model.trainable_variables)
            return tf.reduce_sum(loss), tf.reduce_sum(kl)

        def bound(x: Any) -> tuple[Any, Any]:
            loss, kl = negative_elbo(model, x)
            return tf.reduce_sum(loss), tf.reduce_sum(kl)

        self._step = tf.function(step, jit_compile=use_jit(), reduce_retracing=True)
        self._bound = tf.function(bound, reduce_retracing=True)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        tot = {"loss": 0.0, "kl": 0.0}
        n = len(self.x_train)
        for idx in batches(n, self.cfg["batch_size"], self.rng):
            loss, kl = self._step(tf.constant(self.x_train[idx]))
            tot["loss"] += float(loss)
            tot["kl"] += float(kl)
        return {"loss": tot["loss"] / n, "kl": tot["kl"] / n, "train_elbo": -tot["loss"] / n}

    def evaluate(self) -> dict[str, float]:
        total, kl_total = 0.0, 0.0
        for _ in range(self.cfg["eval_samples"]):
            for idx in batches(len(self.x_test), 1000):
                loss, kl = self._bound(tf.constant(self.x_test[idx]))
                total += float(loss)
                kl_total += float(kl)
        m = len(self.x_test) * self.cfg["eval_samples"]
        return {"test_elbo": -total / m, "test_kl": kl_total / m}


def train_all(
    results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray], *, progress: bool
) -> list[dict[str, Any]]:
    """Every (latent, k, seed) run, resumable; return the finished rows."""
    configure(cfg["device"], threads=1)  # small matmuls: extra intra-op threads only spin-wait
    keys = [RunKey(lat, k, s) for lat in cfg["latents"] for k in cfg["ks"] for s in cfg["seeds"]]
    return run_grid(results, keys, lambda key: VaeRun(key, cfg, data), epochs=cfg["epochs"], progress=progress)
