"""JAX / Flax NNX model and train step of the Cluttered MNIST experiment (protocol in the package)."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from idrop.backends.jax import InfoDropout, kl_map
from idrop.experiments import RunKey
from idrop.experiments._jax_common import (
    JaxCheckpoint,
    Modes,
    batches,
    create,
    ib_train_step,
    is_noisy,
    pick_device,
    refresh_batch_norm,
)

from ._evaluate import evaluate_maps


def _conv(c_in: int, c_out: int, k: int, stride: int, bias: bool, rngs: nnx.Rngs) -> nnx.Conv:
    # Padding k // 2 on both sides, as torch's: the stride-2 grids line up across backends.
    return nnx.Conv(c_in, c_out, (k, k), strides=stride, padding=k // 2, use_bias=bias, rngs=rngs)


def _bn(c: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    """Batch norm as the official ``tf.contrib.layers.batch_norm``: no scale, eps 1e-3."""
    return nnx.BatchNorm(c, use_scale=False, epsilon=1e-3, momentum=0.9, rngs=rngs)


def _act(activation: str, x: jax.Array) -> jax.Array:
    return jax.nn.relu(x) if activation == "relu" else jax.nn.softplus(x)


class ConvBNAct(nnx.Module):
    """The official ``conv`` (``cluttered.py:64-79``): conv without bias, batch norm, activation."""

    def __init__(self, c_in: int, c_out: int, k: int, activation: str, rngs: nnx.Rngs) -> None:
        self.conv, self.norm, self.activation = _conv(c_in, c_out, k, 1, False, rngs), _bn(c_out, rngs), activation

    def __call__(self, x: jax.Array) -> jax.Array:
        return _act(self.activation, self.norm(self.conv(x)))


class ClutteredCNN(nnx.Module):
    """All-CNN-96 of the official ``cluttered.py:120-152`` (see the torch module); inputs NHWC."""

    def __init__(
        self,
        *,
        widths: tuple[int, ...],
        top_width: int,
        convs_per_block: int,
        activation: str,
        prior: str,
        max_alpha: float,
        rngs: nnx.Rngs,
        alpha_rank: int | None = None,
    ) -> None:
        layers: list[nnx.Module] = []
        c = 1
        for w in widths:
            for _ in range(convs_per_block - 1):
                layers.append(ConvBNAct(c, w, 3, activation, rngs))
                c = w
            layers.append(
                InfoDropout(
                    _conv(c, w, 3, 2, False, rngs),
                    activation=activation,
                    prior=prior,
                    max_alpha=max_alpha,
                    norm=_bn(w, rngs),
                    # the official alpha conv, with a bias as cluttered.py:89, or the cheap branch of alpha_rank
                    **(
                        {"alpha_layer": _conv(c, w, 3, 2, True, rngs)}
                        if alpha_rank is None
                        else {"alpha_rank": alpha_rank}
                    ),
                    rngs=rngs,
                )
            )
            c = w
        layers += [
            ConvBNAct(c, top_width, 3, activation, rngs),
            ConvBNAct(top_width, top_width, 1, activation, rngs),
            ConvBNAct(top_width, 10, 1, activation, rngs),
        ]
        self.features = nnx.List(layers)
        self.linear = nnx.Linear(10, 10, rngs=rngs)

    def __call__(self, x: jax.Array, key: jax.Array | None = None, maps: list | None = None) -> jax.Array:
        """Logits; ``key`` draws the noise; ``maps`` collects each layer's (KL, energy) maps, noiseless."""
        noisy = [m for m in self.features if is_noisy(m)]
        keys = dict(zip(map(id, noisy), jax.random.split(key, len(noisy)))) if key is not None else {}
        for layer in self.features:
            if maps is not None and isinstance(layer, InfoDropout):
                maps.append((kl_map(layer, x).sum(-1), jnp.square(layer.activation_of(x)).sum(-1)))
            x = layer(x, rngs=keys.get(id(layer))) if is_noisy(layer) else layer(x)
        return self.linear(x.mean(axis=(1, 2)))


_MODEL_KEYS = ("widths", "top_width", "convs_per_block", "activation", "prior", "max_alpha", "alpha_rank")


def build_model(cfg: dict[str, Any], seed: int) -> ClutteredCNN:
    """The network at its initial weights for ``seed``."""
    return create(ClutteredCNN, seed, **{k: tuple(cfg[k]) if k == "widths" else cfg.get(k) for k in _MODEL_KEYS})


def alpha_biases(model: ClutteredCNN) -> list[Any]:
    """The bias of each Information Dropout layer's alpha conv (``None`` where it has none)."""
    return [
        (m.alpha_layer.up if m.alpha_rank is not None else m.alpha_layer).bias
        for m in model.features
        if isinstance(m, InfoDropout)
    ]


@functools.lru_cache
def _nesterov(lr: float, drops: tuple[int, ...], steps_per_epoch: int) -> optax.GradientTransformation:
    """Nesterov momentum 0.9 (``task.py:122``), lr x0.1 after each drop epoch (``task.py:185-190``).

    One object per setting: it is a static argument of the shared, compiled train step.
    """
    schedule = optax.piecewise_constant_schedule(lr, {d * steps_per_epoch: 0.1 for d in drops})
    return optax.sgd(schedule, momentum=0.9, nesterov=True)


@functools.partial(jax.jit, static_argnums=0)
def _eval_maps(graphdef: Any, params: Any, stats: Any, rest: Any, x: jax.Array) -> tuple[jax.Array, list]:
    maps: list = []
    logits = nnx.merge(graphdef, params, stats, rest, copy=True)(x, maps=maps)
    return logits.argmax(1), maps


def _evaluate(modes: Modes, params, stats, rest, cfg, data, results, name: str, device) -> dict[str, Any]:
    """Refresh batch norm without noise (the official dry run), then test error and localisation."""
    stats = refresh_batch_norm(modes, params, stats, rest, data["x_train"][..., None], cfg["batch_size"], device)
    preds, kls, energies = [], [], []
    for idx in batches(len(data["x_test"]), cfg["batch_size"]):
        p, m = _eval_maps(modes.eval, params, stats, rest, jax.device_put(data["x_test"][idx][..., None], device))
        preds.append(np.asarray(p))
        kls.append([np.asarray(k) for k, _ in m])
        energies.append([np.asarray(e) for _, e in m])
    kls = [np.concatenate(layer) for layer in zip(*kls)]
    energies = [np.concatenate(layer) for layer in zip(*energies)]
    return evaluate_maps(np.concatenate(preds), kls, energies, cfg, data, results, name)


class ClutteredRun(JaxCheckpoint):
    """One (beta, seed) run: the model's states and optimizer, one epoch at a time."""

    def __init__(self, key: RunKey, beta: float, cfg: dict[str, Any], data: dict[str, np.ndarray], results: Any):
        self.key, self.beta, self.cfg, self.data, self.results = key, beta, cfg, data, results
        self.device = pick_device(cfg["device"])
        self.rng = np.random.default_rng(key.seed)
        steps = -(-len(data["x_train"]) // cfg["batch_size"])
        with jax.default_device(self.device):
            self.modes = Modes(build_model(cfg, key.seed))
            self.params, self.stats, self.rest = self.modes.params, self.modes.stats, self.modes.rest
            self.tx = _nesterov(cfg["lr"], tuple(cfg["lr_drops"]), steps)
            self.opt_state = self.tx.init(self.params)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        x_train, y_train = self.data["x_train"], self.data["y_train"]
        n = len(x_train)
        epoch_key = jax.random.fold_in(jax.random.key(self.key.seed), epoch)
        beta, out = jnp.float32(self.beta), []
        for i, idx in enumerate(batches(n, self.cfg["batch_size"], self.rng)):
            x, y = jax.device_put((x_train[idx][..., None], y_train[idx].astype(np.int32)), self.device)
            self.params, self.stats, self.opt_state, loss, kl, wrong = ib_train_step(
                self.modes.train, self.tx, n, self.params, self.stats, self.opt_state, self.rest, x, y,
                jax.random.fold_in(epoch_key, i), beta,
            )  # fmt: skip
            out.append((loss * len(idx), kl * len(idx), wrong))  # no host sync inside the epoch
        loss_sum, kl_sum, wrong = np.asarray(jax.device_get(out), dtype=np.float64).sum(0) / n
        return {"loss": float(loss_sum), "kl": float(kl_sum), "error": float(wrong)}

    def evaluate(self) -> dict[str, Any]:
        out = _evaluate(
            self.modes, self.params, self.stats, self.rest, self.cfg, self.data, self.results, self.key.name,
            self.device,
        )  # fmt: skip
        return {"beta": self.beta, **out}


def make_run(key: RunKey, beta: float, cfg: dict[str, Any], data: dict[str, np.ndarray], results: Any) -> ClutteredRun:
    """A fresh run for the shared training loop."""
    return ClutteredRun(key, beta, cfg, data, results)


def untrained(cfg: dict[str, Any], data: dict[str, np.ndarray], results: Any, seed: int) -> dict[str, Any]:
    """The same architecture at its initial weights (seed ``seed``), measured as the trained runs."""
    device = pick_device(cfg["device"])
    with jax.default_device(device):
        modes = Modes(build_model(cfg, seed))
    return _evaluate(modes, modes.params, modes.stats, modes.rest, cfg, data, results, f"untrained_s{seed}", device)
