"""TensorFlow / Keras 3 trainer of the Cluttered MNIST experiment: All-CNN-96 and the KL heat maps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from idrop.backends.tensorflow import InfoDropout, kl_loss
from idrop.experiments import ResultDir, RunKey, run_grid

from ._common import kl_share_in_box
from ._tensorflow_common import (
    act,
    batches,
    configure,
    conv_bn,
    load_tf_state,
    noisy_block,
    per_unit_kl,
    refresh_batch_norm,
    save_tf_state,
    use_jit,
)

BASE_WIDTHS = (32, 64, 96, 192)  # paper Table 2b, one per stride-2 block


class AllCNN96(keras.Model):
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
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        widths = [max(1, round(w * filter_percentage)) for w in BASE_WIDTHS]
        layers: list[keras.Layer] = []
        for i, w in enumerate(widths):
            for _ in range(convs_per_block - 1):
                layers += [*conv_bn(w, 3), act(activation)]
            layers += noisy_block(method, w, activation=activation, max_alpha=max_alpha, seed=seed * 100 + i)
        top = widths[-1]
        layers += [*conv_bn(top, 3), act(activation), *conv_bn(top, 1), act(activation), *conv_bn(n_classes, 1)]
        self.blocks = layers

    def call(self, x: Any, training: bool | None = None) -> Any:
        for layer in self.blocks:
            x = layer(x, training=training)
        return tf.reduce_mean(x, axis=(1, 2))

    def logits_and_maps(self, x: Any) -> tuple[Any, list[Any]]:
        """Noiseless logits and, per Information Dropout layer, the KL summed over channels."""
        maps = []
        for layer in self.blocks:
            if isinstance(layer, InfoDropout):
                maps.append(tf.reduce_sum(per_unit_kl(layer, x), axis=-1))
            x = layer(x, training=False)
        return tf.reduce_mean(x, axis=(1, 2)), maps


class ClutteredRun:
    """One (beta, seed) run; :meth:`evaluate` also writes the heat maps of the shown images."""

    def __init__(
        self, key: RunKey, beta: float, cfg: dict[str, Any], data: dict[str, np.ndarray], results: ResultDir
    ) -> None:
        keras.utils.set_random_seed(key.seed)
        self.key, self.beta, self.cfg, self.results = key, beta, cfg, results
        self.rng = np.random.default_rng(key.seed)
        self.x_train = data["x_train"][..., None].astype(np.float32)  # NHWC
        self.y_train = data["y_train"].astype(np.int64)
        self.data = data
        self.model = AllCNN96(
            method="information",
            filter_percentage=cfg["filter_percentage"],
            activation=cfg["activation"],
            max_alpha=cfg["max_alpha"],
            convs_per_block=cfg["convs_per_block"],
            seed=key.seed,
        )
        self.model(self.x_train[:1], training=False)  # build
        self.optimizer = keras.optimizers.Adam(learning_rate=cfg["lr"])
        self.optimizer.build(self.model.trainable_variables)
        n = len(self.x_train)
        model, optimizer = self.model, self.optimizer

        def step(x: Any, y: Any) -> tuple[Any, Any, Any]:
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
                kl_term = kl_loss(model, n)  # collects the step's KL records, once
                loss = ce + beta * kl_term  # ib_loss(ce, model, beta, n), which would collect them again
                kl = kl_term * n  # per-sample KL in nats
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            wrong = tf.reduce_sum(tf.cast(tf.argmax(logits, 1) != y, tf.float32))
            return loss, kl, wrong

        self._step = tf.function(step, jit_compile=use_jit(), reduce_retracing=True)
        self._maps_fn = tf.function(model.logits_and_maps, reduce_retracing=True)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        n = len(self.x_train)
        tot = {"loss": 0.0, "kl": 0.0, "error": 0.0}
        for idx in batches(n, self.cfg["batch_size"], self.rng):
            loss, kl, wrong = self._step(tf.constant(self.x_train[idx]), tf.constant(self.y_train[idx]))
            m = len(idx)
            tot["loss"] += float(loss) * m
            tot["kl"] += float(kl) * m
            tot["error"] += float(wrong)
        return {k: v / n for k, v in tot.items()}

    def _maps(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Predictions and, per Information Dropout layer, the KL summed over channels."""
        preds: list[np.ndarray] = []
        maps: list[list[np.ndarray]] = []
        for idx in batches(len(x), self.cfg["batch_size"]):
            logits, kls = self._maps_fn(tf.constant(x[idx][..., None].astype(np.float32)))
            preds.append(np.argmax(logits.numpy(), axis=1))
            maps = maps or [[] for _ in kls]
            for acc, kl in zip(maps, kls):
                acc.append(kl.numpy())
        return np.concatenate(preds), [np.concatenate(m) for m in maps]

    def evaluate(self) -> dict[str, Any]:
        refresh_batch_norm(self.model, self.x_train, self.cfg["batch_size"])
        x, y, boxes = self.data["x_test"], self.data["y_test"], self.data["boxes_test"]
        preds, maps = self._maps(x)
        out: dict[str, Any] = {"beta": self.beta, "test_error": float((preds != y).mean())}
        show = self.cfg["show"]
        arrays = {}
        for i, kl in enumerate(maps, start=1):
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
        save_tf_state(path, self.model, self.optimizer, self.rng)

    def load_state(self, path: Path) -> None:
        load_tf_state(path, self.model, self.optimizer, self.rng)


def train_all(
    results: ResultDir, cfg: dict[str, Any], data: dict[str, np.ndarray], *, progress: bool
) -> list[dict[str, Any]]:
    """Train one run per (beta, seed) with resume; return the registry's finished rows."""
    configure(cfg["device"], cfg.get("threads"))
    betas = {f"beta{b:g}": b for b in cfg["betas"]}
    keys = [RunKey(name, cfg["filter_percentage"], s) for name in betas for s in cfg["seeds"]]
    return run_grid(
        results,
        keys,
        lambda k: ClutteredRun(k, betas[k.method], cfg, data, results),
        epochs=cfg["epochs"],
        progress=progress,
    )
