"""JAX / Flax NNX model and train step of the MNIST experiment (see :mod:`idrop.experiments.mnist`).

Every step runs on a ``jax.sharding`` mesh (:mod:`idrop.distributed.jax`; one device unless
``--devices N``): parameters replicated, each global batch padded to a multiple of the
device count and sharded on ``"data"``, losses weighted means over the real examples.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

if "jax" not in __import__("sys").modules:
    # Tiny matmuls: one CPU thread per op avoids spin-waiting on a small machine (GPU unaffected).
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")


import jax
import jax.numpy as jnp
import optax
from flax import nnx

from idrop.backends.jax import InfoDropout
from idrop.distributed import jax as djax
from idrop.experiments.nets.jax import MLP

from ._seeds import batch_order, epoch_seed, init_seed


def resolve_device(device: str) -> jax.Device:
    """``auto`` -> the default JAX device (a GPU when JAX sees one), else the CPU."""
    gpus = [d for d in jax.devices() if d.platform == "gpu"] if jax.default_backend() == "gpu" else []
    if device == "cuda" and not gpus:
        raise RuntimeError("--device cuda was asked for, but JAX sees no GPU.")
    return gpus[0] if device in ("auto", "cuda") and gpus else jax.devices("cpu")[0]


def device_name(device: str) -> str:
    """Human-readable name of the device a run will use."""
    return str(resolve_device(device).device_kind)


def kl_per_example(model: nnx.Module) -> jax.Array | float:
    """Per-example KL of the last call, summed over the InfoDropout layers (0 when there are none)."""
    kls = [
        m.kl.get_value()
        for _, m in nnx.iter_modules(model)
        if isinstance(m, InfoDropout) and m.kl.get_value() is not None
    ]
    return sum(k.astype(jnp.float32) for k in kls) if kls else 0.0


class JaxRun:
    """One (method, width, seed) run; follows :class:`idrop.experiments.Run`.

    The module is split once into a graph and its parameters; the jitted step works
    on the parameter pytree, so nothing but parameters and Adam's state changes.
    """

    def __init__(self, key: Any, data: dict[str, jax.Array], config: Any, mesh: jax.sharding.Mesh) -> None:
        method, config = config.resolve(key.method)  # information-b<beta>: the network's method, the run's beta
        self.key, self.data, self.config, self.mesh = key, data, config, mesh
        seed = init_seed(key.seed, key.width, key.method)
        with jax.default_device(mesh.devices.flat[0]):
            model = MLP(method, int(key.width), config, nnx.Rngs(params=seed, dropout=seed + 1))
            graphdef, params, rest = nnx.split(model, nnx.Param, ...)
            self.tx = optax.inject_hyperparams(optax.adam)(learning_rate=config.learning_rate)
            opt_state = self.tx.init(params)
        self.graphdef = graphdef
        self.params, self.opt_state, self.rest = djax.replicate(mesh, (params, opt_state, rest))
        # `rest` (RNG streams, the KL slot) goes in as an argument: merging a closed-over
        # state inside jit would mutate variables that live outside the trace.
        self._step = jax.jit(self._train_step, donate_argnums=(0, 1))
        self._predict = jax.jit(lambda params, rest, x: nnx.merge(self.graphdef, params, rest, copy=True)(x).argmax(1))

    def _train_step(
        self, params: Any, opt_state: Any, rest: Any, idx: jax.Array, w: jax.Array, key: jax.Array
    ) -> tuple[Any, ...]:
        cfg = self.config
        # The gathered batch keeps the sharding of `idx`: each device holds its slice of it.
        shard = djax.batch_sharding(self.mesh)
        xb = jax.lax.with_sharding_constraint(self.data["x_train"][idx], shard)
        yb = jax.lax.with_sharding_constraint(self.data["y_train"][idx], shard)

        def loss_fn(params: Any) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
            model = nnx.merge(self.graphdef, params, rest, copy=True)
            logits = model(xb, key)  # one key, noise drawn for the global batch (see idrop.distributed.jax)
            task = djax.weighted_mean(optax.softmax_cross_entropy_with_integer_labels(logits, yb), w)
            kl = djax.weighted_mean(kl_per_example(model) * jnp.ones_like(w), w)  # nats per image, all layers
            return task + cfg.beta * kl / cfg.n_train, (kl, logits)  # eq. 5, means over the real examples

        (loss, (kl, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, loss, kl, jnp.sum((logits.argmax(1) != yb) * w)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg, n = self.config, int(self.data["x_train"].shape[0])
        epoch_key = jax.random.key(epoch_seed(self.key.seed, epoch))  # the noise of this epoch
        self.opt_state.hyperparams["learning_rate"] = djax.replicate(self.mesh, np.float32(cfg.lr_at(epoch)))
        stats = []
        for i, idx in enumerate(batch_order(n, cfg.batch_size, self.key.seed, epoch)):
            padded, w = djax.pad_batch(idx, self.mesh.size)
            self.params, self.opt_state, loss, kl, wrong = self._step(
                self.params,
                self.opt_state,
                self.rest,
                *djax.shard_batch(self.mesh, padded, w),
                jax.random.fold_in(epoch_key, i),
            )
            stats.append((loss * len(idx), kl * len(idx), wrong))  # no host sync inside the epoch
        loss_sum, kl_sum, wrong = np.asarray(jax.device_get(stats), dtype=np.float64).sum(0) / n
        return {"loss": float(loss_sum), "kl": float(kl_sum), "error": float(wrong), "test_error": self._error("test")}

    def _error(self, split: str) -> float:
        x, y = self.data[f"x_{split}"], self.data[f"y_{split}"]
        n = int(x.shape[0])
        wrong = sum(
            int((self._predict(self.params, self.rest, x[i : i + 2000]) != y[i : i + 2000]).sum())
            for i in range(0, n, 2000)
        )
        return wrong / n

    def evaluate(self) -> dict[str, float]:
        return {
            "test_error": self._error("test"),
            "valid_error": self._error("valid"),
            "train_error": self._error("train"),
        }

    def save_state(self, path: Path) -> None:
        leaves = jax.tree_util.tree_leaves((self.params, self.opt_state))
        with open(path, "wb") as fh:
            pickle.dump([np.asarray(leaf) for leaf in leaves], fh)

    def load_state(self, path: Path) -> None:
        with open(path, "rb") as fh:
            leaves = pickle.load(fh)  # our own checkpoint file, written by save_state above
        treedef = jax.tree_util.tree_structure((self.params, self.opt_state))
        if len(leaves) != treedef.num_leaves:
            raise ValueError(f"{path} holds {len(leaves)} arrays; this run has {treedef.num_leaves}.")
        self.params, self.opt_state = djax.replicate(self.mesh, jax.tree_util.tree_unflatten(treedef, leaves))


def make_runs(data: Any, config: Any, device: str, devices: int = 1) -> Callable[[Any], JaxRun]:
    """The ``make_run(key)`` factory for :func:`idrop.experiments.run_grid`; data moves to the devices once.

    ``devices`` > 1 trains data-parallel on a mesh of that many devices of ``device``'s kind.
    """
    mesh = djax.data_mesh(devices, resolve_device(device).platform)
    arrays = {
        k: djax.replicate(mesh, np.asarray(getattr(data, k)))
        for k in ("x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test")
    }
    return lambda key: JaxRun(key, arrays, config, mesh)
