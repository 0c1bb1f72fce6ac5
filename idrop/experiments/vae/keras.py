"""Keras 3 trainer of the VAE experiment on any Keras backend: Gaussian vs Information Dropout latent.

The protocol of :mod:`idrop.experiments.vae.tensorflow` on :mod:`idrop.backends.keras`: the model
adds its mean negative ELBO with ``add_loss`` and trains with ``train_on_batch``, so the same code
runs on the TensorFlow, JAX and torch Keras backends.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from idrop.experiments import ResultDir, RunKey, run_grid
from idrop.experiments._keras_common import KerasCheckpoint, batches
from idrop.experiments.nets.keras import VAE, negative_elbo


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
        self.model.compile(optimizer=self.optimizer, loss=None)
        self.optimizer.build(self.model.trainable_variables)

    def _bound(self, x: np.ndarray) -> tuple[float, float]:
        """Summed ``-ELBO`` and KL of one latent sample per image (no parameter update)."""
        logits, kl = self.model(x)
        return float(ops.sum(negative_elbo(x, logits, kl))), float(ops.sum(kl))

    def train_epoch(self, epoch: int) -> dict[str, float]:
        n, loss = len(self.x_train), 0.0
        for idx in batches(n, self.cfg["batch_size"], self.rng):
            loss += float(self.model.train_on_batch(self.x_train[idx], return_dict=True)["loss"]) * len(idx)
        _, kl = self._bound(self.x_train[:1000])
        return {"loss": loss / n, "kl": kl / min(n, 1000), "train_elbo": -loss / n}

    def evaluate(self) -> dict[str, float]:
        total, kl_total = 0.0, 0.0
        for _ in range(self.cfg["eval_samples"]):
            for idx in batches(len(self.x_test), 1000):
                loss, kl = self._bound(self.x_test[idx])
                total += loss
                kl_total += kl
        m = len(self.x_test) * self.cfg["eval_samples"]
        return {"test_elbo": -total / m, "test_kl": kl_total / m}


def train_all(
    results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray], *, progress: bool
) -> list[dict[str, Any]]:
    """Every (latent, k, seed) run, resumable; return the finished rows."""
    keys = [RunKey(lat, k, s) for lat in cfg["latents"] for k in cfg["ks"] for s in cfg["seeds"]]
    return run_grid(results, keys, lambda key: VaeRun(key, cfg, data), epochs=cfg["epochs"], progress=progress)
