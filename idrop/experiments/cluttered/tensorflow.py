"""TensorFlow / Keras 3 model and train step of the Cluttered MNIST experiment (protocol in the package)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from idrop.backends.tensorflow import InfoDropout, kl_loss, kl_map
from idrop.experiments import RunKey
from idrop.experiments._tensorflow_common import (
    BatchNorm,
    Conv2D,
    KerasCheckpoint,
    batches,
    configure,
    refresh_batch_norm,
    use_jit,
)

from ._evaluate import evaluate_maps


def _bn() -> BatchNorm:
    """Batch norm as the official ``tf.contrib.layers.batch_norm``: no scale, eps 1e-3."""
    return BatchNorm(scale=False, epsilon=1e-3)


def _conv_bn_act(filters: int, k: int, activation: str) -> list[keras.Layer]:
    # The official conv (cluttered.py:64-79): no bias (batch norm follows), BN, activation.
    return [Conv2D(filters, k, use_bias=False), _bn(), keras.layers.Activation(activation)]


def _stride2(filters: int, bias: bool) -> Conv2D:
    # Padding 1 on every side as torch's and JAX's, not Keras' 'same' (0 before, 1 after on an even
    # input): the same function of the same weights, and heat maps on the same grid in all backends.
    return Conv2D(filters, 3, strides=2, use_bias=bias)


class ClutteredCNN(keras.Model):
    """All-CNN-96 of the official ``cluttered.py:120-152`` (see the torch module); inputs NHWC."""

    def __init__(self, cfg: dict[str, Any], seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        act = cfg["activation"]
        layers: list[keras.Layer] = []
        for i, w in enumerate(cfg["widths"]):
            for _ in range(cfg["convs_per_block"] - 1):
                layers += _conv_bn_act(w, 3, act)
            layers.append(
                InfoDropout(
                    _stride2(w, bias=False),
                    activation=act,
                    prior=cfg["prior"],
                    max_alpha=cfg["max_alpha"],
                    norm=_bn(),
                    # the official alpha conv, with a bias as cluttered.py:89, or the cheap branch of alpha_rank
                    **(
                        {"alpha_layer": _stride2(w, bias=True)}
                        if cfg.get("alpha_rank") is None
                        else {"alpha_rank": cfg["alpha_rank"]}
                    ),
                    seed=seed * 100 + i,
                )
            )
        top = cfg["top_width"]
        layers += [*_conv_bn_act(top, 3, act), *_conv_bn_act(top, 1, act), *_conv_bn_act(10, 1, act)]
        self.blocks = layers
        self.linear = keras.layers.Dense(10)

    def call(self, x: Any, training: bool | None = None) -> Any:
        for layer in self.blocks:
            x = layer(x, training=training)
        return self.linear(tf.reduce_mean(x, axis=(1, 2)))

    def logits_and_maps(self, x: Any) -> tuple[Any, list[Any], list[Any]]:
        """Noiseless logits and, per Information Dropout layer, the KL and activation energy per position."""
        kls, energies = [], []
        for layer in self.blocks:
            if isinstance(layer, InfoDropout):
                kls.append(tf.reduce_sum(kl_map(layer, x), axis=-1))
                f = layer.norm(layer.layer(x), training=False)
                f = keras.ops.relu(f) if layer.activation == "relu" else keras.ops.softplus(f)
                energies.append(tf.reduce_sum(tf.square(f), axis=-1))
            x = layer(x, training=False)
        return self.linear(tf.reduce_mean(x, axis=(1, 2))), kls, energies


def build_model(cfg: dict[str, Any], seed: int) -> ClutteredCNN:
    """The network at its initial weights for ``seed``, built on a 1-image batch."""
    configure(cfg["device"], cfg.get("threads"))
    keras.utils.set_random_seed(seed)
    model = ClutteredCNN(cfg, seed=seed)
    model(np.zeros((1, cfg["canvas"], cfg["canvas"], 1), np.float32), training=False)
    return model


def alpha_biases(model: ClutteredCNN) -> list[Any]:
    """The bias of each Information Dropout layer's alpha conv (``None`` where it has none)."""
    return [
        (m.alpha_layer.up if m.alpha_rank is not None else m.alpha_layer).bias
        for m in model.blocks
        if isinstance(m, InfoDropout)
    ]


def _evaluate(model: ClutteredCNN, cfg: dict[str, Any], data: dict[str, np.ndarray], results: Any, name: str):
    """Refresh batch norm without noise (the official dry run), then test error and localisation."""
    refresh_batch_norm(model, data["x_train"][..., None].astype(np.float32), cfg["batch_size"])
    fn = tf.function(model.logits_and_maps, reduce_retracing=True)
    preds, kls, energies = [], [], []
    for idx in batches(len(data["x_test"]), cfg["batch_size"]):
        logits, k, e = fn(tf.constant(data["x_test"][idx][..., None].astype(np.float32)))
        preds.append(np.argmax(logits.numpy(), axis=1))
        kls.append([a.numpy() for a in k])
        energies.append([a.numpy() for a in e])
    kls = [np.concatenate(layer) for layer in zip(*kls)]
    energies = [np.concatenate(layer) for layer in zip(*energies)]
    return evaluate_maps(np.concatenate(preds), kls, energies, cfg, data, results, name)


class ClutteredRun(KerasCheckpoint):
    """One (beta, seed) run: the model, its Nesterov optimizer and schedule, one epoch at a time."""

    def __init__(self, key: RunKey, beta: float, cfg: dict[str, Any], data: dict[str, np.ndarray], results: Any):
        self.key, self.beta, self.cfg, self.data, self.results = key, beta, cfg, data, results
        self.rng = np.random.default_rng(key.seed)
        self.x_train = data["x_train"][..., None].astype(np.float32)  # NHWC
        self.y_train = data["y_train"].astype(np.int64)
        self.model = model = build_model(cfg, key.seed)
        n = len(self.x_train)
        steps = -(-n // cfg["batch_size"])
        # Nesterov momentum 0.9 (task.py:122), lr x0.1 after each drop epoch (task.py:185-190).
        drops = list(cfg["lr_drops"])
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(
            [d * steps for d in drops], [cfg["lr"] * 0.1**i for i in range(len(drops) + 1)]
        )
        self.optimizer = optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True)
        optimizer.build(model.trainable_variables)

        def step(x: Any, y: Any) -> tuple[Any, Any, Any]:
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
                kl = kl_loss(model, n)  # collected once per step: ib_loss(ce, ...) = ce + beta * kl
                loss = ce + beta * kl
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            wrong = tf.reduce_sum(tf.cast(tf.argmax(logits, 1) != y, tf.float32))
            return loss, kl * n, wrong

        self._step = tf.function(step, jit_compile=use_jit(), reduce_retracing=True)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        n = len(self.x_train)
        tot = {"loss": 0.0, "kl": 0.0, "error": 0.0}
        for idx in batches(n, self.cfg["batch_size"], self.rng):
            loss, kl, wrong = self._step(tf.constant(self.x_train[idx]), tf.constant(self.y_train[idx]))
            tot["loss"] += float(loss) * len(idx)
            tot["kl"] += float(kl) * len(idx)
            tot["error"] += float(wrong)
        return {k: v / n for k, v in tot.items()}

    def evaluate(self) -> dict[str, Any]:
        return {"beta": self.beta, **_evaluate(self.model, self.cfg, self.data, self.results, self.key.name)}


def make_run(key: RunKey, beta: float, cfg: dict[str, Any], data: dict[str, np.ndarray], results: Any) -> ClutteredRun:
    """A fresh run for the shared training loop."""
    return ClutteredRun(key, beta, cfg, data, results)


def untrained(cfg: dict[str, Any], data: dict[str, np.ndarray], results: Any, seed: int) -> dict[str, Any]:
    """The same architecture at its initial weights (seed ``seed``), measured as the trained runs."""
    return _evaluate(build_model(cfg, seed), cfg, data, results, f"untrained_s{seed}")
