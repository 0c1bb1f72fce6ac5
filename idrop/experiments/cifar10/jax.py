"""JAX / Flax NNX train step of the CIFAR-10 experiment (protocol in :mod:`idrop.experiments.cifar10`).

The counterpart of :mod:`idrop.experiments.cifar10.torch` (same runs, metrics and outputs).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from idrop.experiments import ResultDir, RunKey, run_grid
from idrop.experiments._jax_common import (
    JaxCheckpoint,
    Modes,
    batches,
    create,
    ib_train_step,
    pick_device,
    predict,
    refresh_batch_norm,
)
from idrop.experiments.nets import all_cnn_widths
from idrop.experiments.nets.jax import AllCNN32

from . import lr_at


@functools.lru_cache
def _sgd(weight_decay: float) -> optax.GradientTransformation:
    """Weight decay added to the gradient, Nesterov momentum 0.9 (task.py:122); the lr is a hyperparameter."""
    return optax.inject_hyperparams(
        lambda learning_rate: optax.chain(
            optax.add_decayed_weights(weight_decay), optax.sgd(learning_rate, momentum=0.9, nesterov=True)
        )
    )(learning_rate=0.0)


class CifarRun(JaxCheckpoint):
    """One (method, filter percentage, seed) run."""

    def __init__(self, key: RunKey, cfg: dict[str, Any], data: dict[str, np.ndarray]) -> None:
        self.cfg, self.key = cfg, key
        self.device = pick_device(cfg["device"])
        self.rng = np.random.default_rng(key.seed)
        self.data = data  # NHWC arrays from idrop.data, as Flax wants them
        with jax.default_device(self.device):
            model = create(
                AllCNN32,
                key.seed,
                method=key.method,
                widths=all_cnn_widths(float(key.width)),
                activation=cfg["activation"],
                max_alpha=cfg["max_alpha"],
                input_dropout=cfg["input_dropout"],
            )
            self.modes = Modes(model)
            self.params, self.stats, self.rest = self.modes.params, self.modes.stats, self.modes.rest
            self.tx = _sgd(float(cfg["weight_decay"]))
            self.opt_state = self.tx.init(self.params)

    def _augment(self, x: np.ndarray) -> np.ndarray:
        """Random horizontal flips with ``--flip`` (not in the official code), else ``x``."""
        if not self.cfg["flip"]:
            return x
        flip = self.rng.random(len(x)) < 0.5
        return np.where(flip[:, None, None, None], x[:, :, ::-1], x)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        x_train, y_train = self.data["x_train"], self.data["y_train"]
        n = len(x_train)
        self.opt_state.hyperparams["learning_rate"] = jnp.asarray(lr_at(self.cfg, epoch), jnp.float32)
        epoch_key = jax.random.fold_in(jax.random.key(self.key.seed), epoch)  # the noise of this epoch
        beta = jnp.float32(self.cfg["beta"])
        sums = []
        for i, idx in enumerate(batches(n, self.cfg["batch_size"], self.rng)):
            x, y = jax.device_put((self._augment(x_train[idx]), y_train[idx].astype(np.int32)), self.device)
            self.params, self.stats, self.opt_state, loss, kl, wrong = ib_train_step(
                self.modes.train,
                self.tx,
                n,
                self.params,
                self.stats,
                self.opt_state,
                self.rest,
                x,
                y,
                jax.random.fold_in(epoch_key, i),
                beta,
            )
            sums.append((loss * len(idx), kl * len(idx), wrong))  # no host sync inside the epoch
        loss_sum, kl_sum, wrong = np.asarray(jax.device_get(sums), dtype=np.float64).sum(0) / n
        return {"loss": float(loss_sum), "kl": float(kl_sum), "error": float(wrong), "lr": lr_at(self.cfg, epoch)}

    def evaluate(self) -> dict[str, float]:
        self.stats = refresh_batch_norm(
            self.modes, self.params, self.stats, self.rest, self.data["x_train"], self.cfg["batch_size"], self.device
        )
        x, y = self.data["x_test"], self.data["y_test"]
        wrong = 0
        for idx in batches(len(x), self.cfg["batch_size"]):
            pred = predict(self.modes.eval, self.params, self.stats, self.rest, jax.device_put(x[idx], self.device))
            wrong += int((np.asarray(pred) != y[idx]).sum())
        return {"test_error": wrong / len(x)}


def train_all(
    results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray], *, progress: bool
) -> list[dict[str, Any]]:
    """Every (method, filter percentage, seed) run, resumable; return the finished rows."""
    keys = [RunKey(m, p, s) for m in cfg["methods"] for p in cfg["filter_percentages"] for s in cfg["seeds"]]
    return run_grid(results, keys, lambda k: CifarRun(k, cfg, data), epochs=cfg["epochs"], progress=progress)
