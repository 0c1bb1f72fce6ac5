"""JAX / Flax NNX pieces the experiment trainers share: batching, model modes, checkpoints, BN dry run.

The JAX counterpart of :mod:`idrop.experiments._torch_common`. A model is split once into
its graph and three states: parameters (``nnx.Param``), batch-norm statistics
(``nnx.BatchStat``) and the rest (RNG streams, the KL slot). Jitted steps take and return
the states; the graph comes in three modes, made with ``nnx.view``: training (noise on,
batch statistics), evaluation (noise off, running averages) and the batch-norm dry run
(noise off, batch statistics).
"""

from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

# Thin convs and small matmuls: one CPU thread per op avoids spin-waiting on a busy small machine.
# XLA reads the flags when its backend starts, so this works as long as no array was made yet.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from idrop.backends.jax import BinaryDropout, InfoDropout, kl_loss


def pick_device(name: str | None) -> jax.Device:
    """``--device``: ``cpu``, ``cuda`` (a GPU, or an error) or ``auto``/None (a GPU when JAX sees one)."""
    gpus = [d for d in jax.devices() if d.platform == "gpu"] if jax.default_backend() == "gpu" else []
    if name == "cuda" and not gpus:
        raise RuntimeError("--device cuda was asked for, but JAX sees no GPU.")
    return gpus[0] if name in (None, "auto", "cuda") and gpus else jax.devices("cpu")[0]


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Index batches over ``n`` items, shuffled when ``rng`` is given; the last may be short."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def is_noisy(m: Any) -> bool:
    return isinstance(m, (InfoDropout, BinaryDropout, nnx.Dropout))


class Modes:
    """A model's graph in its three modes and its states, split once (see the module docstring)."""

    def __init__(self, model: nnx.Module) -> None:
        has_bn = any(isinstance(m, nnx.BatchNorm) for _, m in nnx.iter_modules(model))
        bn = (lambda v: {"use_running_average": v}) if has_bn else (lambda v: {})
        self.train, self.params, self.stats, self.rest = nnx.split(
            nnx.view(model, deterministic=False, **bn(False)), nnx.Param, nnx.BatchStat, ...
        )
        self.eval = nnx.split(nnx.view(model, deterministic=True, **bn(True)))[0]
        dry = nnx.view(model, deterministic=True, **bn(False))
        for _, m in nnx.iter_modules(dry):
            if isinstance(m, nnx.BatchNorm):
                m.momentum = 0.0  # the running averages become this batch's statistics
        self.dry = nnx.split(dry)[0]

    def merge(self, mode: str, params: Any, stats: Any, rest: Any) -> nnx.Module:
        # copy=True: the traced states must not be written into variables that live outside the trace.
        return nnx.merge(getattr(self, mode), params, stats, rest, copy=True)


def create(cls: type, seed: int, **kwargs: Any) -> nnx.Module:
    """``cls(**kwargs, rngs=nnx.Rngs(seed))``, initialised in one compiled program (shared by every seed)."""
    return _create(cls, jnp.asarray(seed, jnp.uint32), tuple(sorted(kwargs.items())))


@functools.partial(nnx.jit, static_argnums=(0, 2))
def _create(cls: type, seed: jax.Array, kwargs: tuple[tuple[str, Any], ...]) -> nnx.Module:
    return cls(**dict(kwargs), rngs=nnx.Rngs(jax.random.key(seed)))


# Module-level jitted steps: the graph and optimizer are static arguments, so every run of a
# grid with the same architecture (e.g. each beta) reuses one compiled program.


@functools.partial(jax.jit, static_argnums=(0, 1, 2), donate_argnums=(3, 4, 5))
def ib_train_step(
    graphdef: Any,
    tx: optax.GradientTransformation,
    n_train: int,
    params: Any,
    stats: Any,
    opt_state: Any,
    rest: Any,
    x: jax.Array,
    y: jax.Array,
    key: jax.Array,
    beta: jax.Array,
) -> tuple[Any, ...]:
    """One step on the IB loss (eq. 5) with cross-entropy; returns the new states, loss, per-sample KL, errors."""

    def loss_fn(params: Any) -> tuple[jax.Array, tuple[Any, ...]]:
        model = nnx.merge(graphdef, params, stats, rest, copy=True)
        logits = model(x, key)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        kl = kl_loss(model, n_train)  # = ib_loss(ce, model, beta, n_train) - ce, with beta traced
        return ce + beta * kl, (kl * n_train, logits, nnx.state(model, nnx.BatchStat))

    (loss, (kl, logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state, loss, kl, jnp.sum(logits.argmax(1) != y)


@functools.partial(jax.jit, static_argnums=0)
def _batch_stats(graphdef: Any, params: Any, stats: Any, rest: Any, x: jax.Array) -> Any:
    model = nnx.merge(graphdef, params, stats, rest, copy=True)
    model(x)
    return nnx.state(model, nnx.BatchStat)


@functools.partial(jax.jit, static_argnums=0)
def predict(graphdef: Any, params: Any, stats: Any, rest: Any, x: jax.Array) -> jax.Array:
    """Class predictions in evaluation mode."""
    return nnx.merge(graphdef, params, stats, rest, copy=True)(x).argmax(1)


def refresh_batch_norm(
    modes: Modes, params: Any, stats: Any, rest: Any, x: np.ndarray, batch_size: int, device: jax.Device | None = None
) -> Any:
    """Re-estimate batch-norm statistics over ``x`` with all noise off (the official "dry run").

    Running averages gathered under noise do not match the noiseless test-time activations;
    the exact (cumulative) average over the training set's batches without noise does, as
    torch's ``momentum=None``. Returns the new batch-norm state.
    """
    total, count = None, 0
    for idx in batches(len(x), batch_size):
        s = _batch_stats(modes.dry, params, stats, rest, jax.device_put(x[idx], device))
        total = s if total is None else jax.tree.map(jnp.add, total, s)
        count += 1
    return stats if total is None else jax.tree.map(lambda t: t / count, total)


def save_jax_state(path: Path, trees: tuple[Any, ...], rng: np.random.Generator) -> None:
    """The leaves of ``trees`` (parameters, batch statistics, optimizer state) and the NumPy RNG, in one file."""
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(trees)]
    with open(path, "wb") as fh:
        pickle.dump({"leaves": leaves, "numpy_rng": rng.bit_generator.state}, fh)


def load_jax_state(path: Path, trees: tuple[Any, ...], rng: np.random.Generator) -> tuple[Any, ...]:
    """Restore what :func:`save_jax_state` wrote; ``trees`` gives the structure. Returns the new trees."""
    with open(path, "rb") as fh:
        state = pickle.load(fh)  # our own checkpoint file, written by save_jax_state above
    treedef = jax.tree_util.tree_structure(trees)
    if len(state["leaves"]) != treedef.num_leaves:
        raise ValueError(f"{path} holds {len(state['leaves'])} arrays; this run has {treedef.num_leaves}.")
    rng.bit_generator.state = state["numpy_rng"]
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(a) for a in state["leaves"]])


class JaxCheckpoint:
    """``save_state``/``load_state`` of a run whose state is the pytrees named in ``state_names`` plus
    ``rng``, restored onto ``self.device``: what the shared runner calls after every epoch and on ``--resume``."""

    state_names: tuple[str, ...] = ("params", "stats", "opt_state")

    def save_state(self, path: Path) -> None:
        save_jax_state(path, tuple(getattr(self, n) for n in self.state_names), self.rng)

    def load_state(self, path: Path) -> None:
        with jax.default_device(self.device):
            trees = load_jax_state(path, tuple(getattr(self, n) for n in self.state_names), self.rng)
        for name, tree in zip(self.state_names, trees, strict=True):
            setattr(self, name, tree)
