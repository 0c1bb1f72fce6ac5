"""JAX / Flax NNX trainer of the CIFAR-10 experiment: All-CNN-32 as in the official ``cifar.py``.

The counterpart of :mod:`idrop.experiments._cifar10_torch` (same runs, metrics and outputs).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from idrop.experiments import ResultDir, RunKey, run_grid

from ._jax_common import (
    ConvBN,
    Modes,
    batches,
    create,
    ib_train_step,
    is_noisy,
    load_jax_state,
    noisy_block,
    pick_device,
    predict,
    refresh_batch_norm,
    save_jax_state,
)


class AllCNN32(nnx.Module):
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
        rngs: nnx.Rngs,
    ) -> None:
        a, b = (max(1, round(w * filter_percentage)) for w in (96, 192))
        self.input_dropout = nnx.Dropout(input_dropout, rngs=rngs)  # binary, as the official code
        layers: list[nnx.Module] = []
        c = 3
        for w in (a, b):
            for _ in range(2):
                layers.append(ConvBN(c, w, 3, activation=activation, rngs=rngs))
                c = w
            layers.append(noisy_block(method, c, w, activation=activation, max_alpha=max_alpha, rngs=rngs))
        layers += [
            ConvBN(b, b, 3, activation=activation, rngs=rngs),
            ConvBN(b, b, 1, activation=activation, rngs=rngs),
            ConvBN(b, 10, 1, rngs=rngs),
        ]
        self.features = nnx.List(layers)

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """Logits; ``key`` draws the noise (training mode: one subkey per noisy layer)."""
        noisy = [self.input_dropout, *(m for m in self.features if is_noisy(m))]
        keys = dict(zip(map(id, noisy), jax.random.split(key, len(noisy)))) if key is not None else {}
        x = self.input_dropout(x, rngs=keys.get(id(self.input_dropout)))
        for layer in self.features:
            x = layer(x, rngs=keys.get(id(layer))) if is_noisy(layer) else layer(x)
        return x.mean(axis=(1, 2))


@functools.lru_cache
def _sgd(weight_decay: float) -> optax.GradientTransformation:
    """torch's SGD: weight decay added to the gradient, momentum 0.9; the lr is a hyperparameter of the state."""
    return optax.inject_hyperparams(
        lambda learning_rate: optax.chain(
            optax.add_decayed_weights(weight_decay), optax.sgd(learning_rate, momentum=0.9)
        )
    )(learning_rate=0.0)


class CifarRun:
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
                filter_percentage=float(key.width),
                activation=cfg["activation"],
                max_alpha=cfg["max_alpha"],
            )
            self.modes = Modes(model)
            self.params, self.stats, self.rest = self.modes.params, self.modes.stats, self.modes.rest
            self.tx = _sgd(float(cfg["weight_decay"]))
            self.opt_state = self.tx.init(self.params)
        self.drops = [max(1, round(cfg["epochs"] * f)) for f in cfg["lr_drops"]]

    def _lr(self, epoch: int) -> float:
        """The lr of ``epoch`` (1-based): divided by 10 after each drop epoch (torch's MultiStepLR)."""
        return self.cfg["lr"] * 0.1 ** sum(d < epoch for d in self.drops)

    def _augment(self, x: np.ndarray) -> np.ndarray:
        """Random horizontal flips (the official code's only augmentation besides whitening)."""
        flip = self.rng.random(len(x)) < 0.5
        return np.where(flip[:, None, None, None], x[:, :, ::-1], x)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        x_train, y_train = self.data["x_train"], self.data["y_train"]
        n = len(x_train)
        self.opt_state.hyperparams["learning_rate"] = jnp.asarray(self._lr(epoch), jnp.float32)
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
        # As torch's: the lr after the scheduler's step, i.e. the next epoch's.
        return {"loss": float(loss_sum), "kl": float(kl_sum), "error": float(wrong), "lr": self._lr(epoch + 1)}

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

    def save_state(self, path: Path) -> None:
        save_jax_state(path, (self.params, self.stats, self.opt_state), self.rng)

    def load_state(self, path: Path) -> None:
        with jax.default_device(self.device):
            self.params, self.stats, self.opt_state = load_jax_state(
                path, (self.params, self.stats, self.opt_state), self.rng
            )


def train_all(
    results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray], *, progress: bool
) -> list[dict[str, Any]]:
    """Every (method, filter percentage, seed) run, resumable; return the finished rows."""
    keys = [RunKey(m, p, s) for m in cfg["methods"] for p in cfg["filter_percentages"] for s in cfg["seeds"]]
    return run_grid(results, keys, lambda k: CifarRun(k, cfg, data), epochs=cfg["epochs"], progress=progress)
