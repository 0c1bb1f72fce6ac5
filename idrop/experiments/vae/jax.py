"""JAX / Flax NNX trainer of the VAE experiment: Gaussian latent vs Information Dropout latent.

The counterpart of :mod:`idrop.experiments.vae.torch` (same runs, metrics and outputs).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx

from idrop.experiments import ResultDir, RunKey, run_grid
from idrop.experiments._jax_common import JaxCheckpoint, batches, create, pick_device
from idrop.experiments.nets.jax import VAE


def negative_elbo(model: VAE, x: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-sample ``-ELBO`` (nats) from one latent sample, and the per-sample KL."""
    logits, kl = model(x, key)
    nll = optax.sigmoid_binary_cross_entropy(logits, x).sum(1)
    return nll + kl, kl


@functools.lru_cache
def _adam(lr: float) -> optax.GradientTransformation:
    return optax.adam(lr)  # one object per lr: a static argument of the shared train step


@functools.partial(jax.jit, static_argnums=(0, 1), donate_argnums=(2, 3))
def _train_step(
    graphdef: Any,
    tx: optax.GradientTransformation,
    params: Any,
    opt_state: Any,
    rest: Any,
    x: jax.Array,
    key: jax.Array,
) -> tuple[Any, ...]:
    def loss_fn(params: Any) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        loss, kl = negative_elbo(nnx.merge(graphdef, params, rest, copy=True), x, key)
        return loss.mean(), (loss.sum(), kl.sum())

    (_, (loss_sum, kl_sum)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss_sum, kl_sum


@functools.partial(jax.jit, static_argnums=0)
def _eval_step(graphdef: Any, params: Any, rest: Any, x: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    loss, kl = negative_elbo(nnx.merge(graphdef, params, rest, copy=True), x, key)
    return loss.sum(), kl.sum()


class VaeRun(JaxCheckpoint):
    """One (latent type, k, seed) run."""

    state_names = ("params", "opt_state")

    def __init__(self, key: RunKey, cfg: dict[str, Any], data: dict[str, np.ndarray]) -> None:
        self.cfg, self.key = cfg, key
        self.device = pick_device(cfg["device"])
        self.rng = np.random.default_rng(key.seed)
        self.x_train, self.x_test = data["x_train"], data["x_test"]
        hidden, n_latent = (max(1, round(b * key.width / cfg["scale"])) for b in (512, 256))
        with jax.default_device(self.device):
            model = create(
                VAE, key.seed, latent=key.method, hidden=hidden, n_latent=n_latent, max_alpha=cfg["max_alpha"]
            )
            self.graphdef, self.params, self.rest = nnx.split(model, nnx.Param, ...)
            self.tx = _adam(cfg["lr"])
            self.opt_state = self.tx.init(self.params)
        self.base_key = jax.random.key(key.seed)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        n = len(self.x_train)
        epoch_key = jax.random.fold_in(self.base_key, epoch)  # the latent noise of this epoch
        sums = []
        for i, idx in enumerate(batches(n, self.cfg["batch_size"], self.rng)):
            x = jax.device_put(self.x_train[idx], self.device)
            self.params, self.opt_state, loss, kl = _train_step(
                self.graphdef, self.tx, self.params, self.opt_state, self.rest, x, jax.random.fold_in(epoch_key, i)
            )
            sums.append((loss, kl))
        loss, kl = np.asarray(jax.device_get(sums), dtype=np.float64).sum(0) / n
        return {"loss": float(loss), "kl": float(kl), "train_elbo": float(-loss)}

    def evaluate(self) -> dict[str, float]:
        eval_key = jax.random.fold_in(self.base_key, 0)  # epochs count from 1: not an epoch key
        sums = []
        for s in range(self.cfg["eval_samples"]):
            for i, idx in enumerate(batches(len(self.x_test), 1000)):
                x = jax.device_put(self.x_test[idx], self.device)
                sums.append(
                    _eval_step(
                        self.graphdef, self.params, self.rest, x, jax.random.fold_in(jax.random.fold_in(eval_key, s), i)
                    )
                )
        total, kl_total = np.asarray(jax.device_get(sums), dtype=np.float64).sum(0)
        m = len(self.x_test) * self.cfg["eval_samples"]
        return {"test_elbo": float(-total / m), "test_kl": float(kl_total / m)}


def train_all(
    results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray], *, progress: bool
) -> list[dict[str, Any]]:
    """Every (latent, k, seed) run, resumable; return the finished rows."""
    keys = [RunKey(lat, k, s) for lat in cfg["latents"] for k in cfg["ks"] for s in cfg["seeds"]]
    return run_grid(results, keys, lambda key: VaeRun(key, cfg, data), epochs=cfg["epochs"], progress=progress)
