"""JAX / Flax NNX trainer of the Cluttered MNIST experiment: All-CNN-96 and the KL heat maps.

The counterpart of :mod:`idrop.experiments._cluttered_torch` (same runs, metrics and outputs).
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

from idrop.backends.jax import InfoDropout
from idrop.experiments import ResultDir, RunKey, run_grid

from ._common import kl_share_in_box
from ._jax_common import (
    ConvBN,
    Modes,
    batches,
    create,
    ib_train_step,
    is_noisy,
    load_jax_state,
    noisy_block,
    per_unit_kl,
    pick_device,
    refresh_batch_norm,
    save_jax_state,
)

BASE_WIDTHS = (32, 64, 96, 192)  # paper Table 2b, one per stride-2 block


class AllCNN96(nnx.Module):
    """All-CNN-96 (paper Table 2b): four blocks of 3x3 convs, the last of each stride 2 with noise.

    Every conv has batch norm. The head is 3x3 conv, 1x1 conv, 1x1 conv to the classes and a
    spatial average; the logits get no activation. Inputs are NHWC.
    """

    def __init__(
        self,
        *,
        method: str,
        filter_percentage: float,
        activation: str,
        max_alpha: float,
        convs_per_block: int = 3,
        n_classes: int = 10,
        rngs: nnx.Rngs,
    ) -> None:
        widths = [max(1, round(w * filter_percentage)) for w in BASE_WIDTHS]
        layers: list[nnx.Module] = []
        c = 1
        for w in widths:
            for _ in range(convs_per_block - 1):
                layers.append(ConvBN(c, w, 3, activation=activation, rngs=rngs))
                c = w
            layers.append(noisy_block(method, c, w, activation=activation, max_alpha=max_alpha, rngs=rngs))
            c = w
        top = widths[-1]
        layers += [
            ConvBN(c, top, 3, activation=activation, rngs=rngs),
            ConvBN(top, top, 1, activation=activation, rngs=rngs),
            ConvBN(top, n_classes, 1, rngs=rngs),
        ]
        self.features = nnx.List(layers)
        self.activation = activation

    def __call__(self, x: jax.Array, key: jax.Array | None = None, maps: list[jax.Array] | None = None) -> jax.Array:
        """Logits; ``key`` draws the noise (training mode); ``maps`` collects each InfoDropout layer's
        noiseless per-unit KL summed over channels (a heat map per position)."""
        noisy = [m for m in self.features if is_noisy(m)]
        keys = dict(zip(map(id, noisy), jax.random.split(key, len(noisy)))) if key is not None else {}
        for layer in self.features:
            if maps is not None and isinstance(layer, InfoDropout):
                maps.append(per_unit_kl(layer, x).sum(-1))
            x = layer(x, rngs=keys.get(id(layer))) if is_noisy(layer) else layer(x)
        return x.mean(axis=(1, 2))


@functools.lru_cache
def _adam(lr: float) -> optax.GradientTransformation:
    return optax.adam(lr)  # one object per lr: a static argument of the shared train step


@functools.partial(jax.jit, static_argnums=0)
def _eval_maps(graphdef: Any, params: Any, stats: Any, rest: Any, x: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
    """Predictions and, per Information Dropout layer, the noiseless KL summed over channels."""
    maps: list[jax.Array] = []
    logits = nnx.merge(graphdef, params, stats, rest, copy=True)(x, maps=maps)
    return logits.argmax(1), maps


class ClutteredRun:
    """One (beta, seed) run; :meth:`evaluate` also writes the heat maps of the shown images."""

    def __init__(
        self, key: RunKey, beta: float, cfg: dict[str, Any], data: dict[str, np.ndarray], results: ResultDir
    ) -> None:
        self.key, self.beta, self.cfg, self.results = key, beta, cfg, results
        self.device = pick_device(cfg["device"])
        self.rng = np.random.default_rng(key.seed)
        self.data = data
        with jax.default_device(self.device):
            model = create(
                AllCNN96,
                key.seed,
                method="information",
                filter_percentage=cfg["filter_percentage"],
                activation=cfg["activation"],
                max_alpha=cfg["max_alpha"],
                convs_per_block=cfg["convs_per_block"],
            )
            self.modes = Modes(model)
            self.params, self.stats, self.rest = self.modes.params, self.modes.stats, self.modes.rest
            self.tx = _adam(cfg["lr"])
            self.opt_state = self.tx.init(self.params)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        x_train, y_train = self.data["x_train"], self.data["y_train"]
        n = len(x_train)
        epoch_key = jax.random.fold_in(jax.random.key(self.key.seed), epoch)  # the noise of this epoch
        beta = jnp.float32(self.beta)
        stats = []
        for i, idx in enumerate(batches(n, self.cfg["batch_size"], self.rng)):
            x, y = jax.device_put((x_train[idx][..., None], y_train[idx].astype(np.int32)), self.device)
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
            stats.append((loss * len(idx), kl * len(idx), wrong))  # no host sync inside the epoch
        loss_sum, kl_sum, wrong = np.asarray(jax.device_get(stats), dtype=np.float64).sum(0) / n
        return {"loss": float(loss_sum), "kl": float(kl_sum), "error": float(wrong)}

    def evaluate(self) -> dict[str, Any]:
        self.stats = refresh_batch_norm(
            self.modes,
            self.params,
            self.stats,
            self.rest,
            self.data["x_train"][..., None],
            self.cfg["batch_size"],
            self.device,
        )
        x, y, boxes = self.data["x_test"], self.data["y_test"], self.data["boxes_test"]
        preds, maps = [], []
        for idx in batches(len(x), self.cfg["batch_size"]):
            p, m = _eval_maps(
                self.modes.eval, self.params, self.stats, self.rest, jax.device_put(x[idx][..., None], self.device)
            )
            preds.append(np.asarray(p))
            maps.append([np.asarray(a) for a in m])
        kls = [np.concatenate(layer) for layer in zip(*maps)]
        out: dict[str, Any] = {"beta": self.beta, "test_error": float((np.concatenate(preds) != y).mean())}
        show = self.cfg["show"]
        arrays = {}
        for i, kl in enumerate(kls, start=1):
            share, box = kl_share_in_box(kl, boxes, self.cfg["canvas"])
            out[f"layer{i}_size"] = int(kl.shape[-1])
            out[f"layer{i}_kl_share_in_box"] = share
            out[f"layer{i}_box_share"] = box
            out[f"layer{i}_ratio"] = share / box
            arrays[f"layer{i}"] = kl[:show].astype(np.float32)
        folder = self.results.root / "kl_maps"
        folder.mkdir(exist_ok=True)
        np.savez_compressed(folder / f"{self.key.name}.npz", **arrays)
        return out

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
    """Train one run per (beta, seed) with resume; return the registry's finished rows."""
    betas = {f"beta{b:g}": b for b in cfg["betas"]}
    keys = [RunKey(name, cfg["filter_percentage"], s) for name in betas for s in cfg["seeds"]]
    return run_grid(
        results,
        keys,
        lambda k: ClutteredRun(k, betas[k.method], cfg, data, results),
        epochs=cfg["epochs"],
        progress=progress,
    )
