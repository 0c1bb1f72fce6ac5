"""Keras 3 benchmarks of :mod:`idrop.backends.keras` on the Keras backend of this process (``KERAS_BACKEND``).

One row kind, the issue's: a Keras training step (``model.train_on_batch``: forward, loss, gradient,
SGD update) of ``InfoDropout(Dense/Conv2D)`` against its floor, the same model with the wrapped
map at twice its units (the stacked map and alpha map) followed by ``keras.layers.GaussianDropout``.
JAX runs its jitted train function (``jit_compile=True``), torch eagerly (Keras's
``jit_compile=True`` on torch is ``torch.compile``, whose compile time a CPU benchmark cannot
amortise). Rows are named ``keras[<backend>]``; the TensorFlow backend runs the same classes
as the ``tensorflow`` rows, so it is not repeated here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from benchmarks._settings import Settings, row
from benchmarks._timing import compare
from idrop.backends import keras_label
from idrop.backends.keras import InfoDropout

KERAS_BACKEND = keras.backend.backend()
BACKEND = keras_label(KERAS_BACKEND)
N_TRAIN = 60_000
BETA = 1.0


def _problem(case: str, s: Settings) -> tuple[Callable[[int], keras.Layer], int, np.ndarray]:
    rng = np.random.default_rng(0)
    if case == "linear":
        return (lambda out: keras.layers.Dense(out)), s.lin_out, rng.standard_normal((s.lin_batch, s.lin_in), "float32")
    shape = (s.conv_batch, s.conv_hw, s.conv_hw, s.conv_ch)
    return (
        (lambda out: keras.layers.Conv2D(out, 3, strides=2, padding="same")),
        s.conv_ch,
        rng.standard_normal(shape, "float32"),
    )


def _mean_loss(y_true: Any, y_pred: Any) -> Any:
    return ops.mean(y_pred)  # the step's work is the layer's, not the loss's


def _model(layers: list[keras.Layer], x: np.ndarray, jit: bool) -> keras.Model:
    model = keras.Sequential([keras.Input(x.shape[1:]), *layers])
    model.compile(keras.optimizers.SGD(1e-3), _mean_loss, jit_compile=jit)
    return model


def layer_train(case: str, s: Settings, compiled: bool) -> dict[str, Any]:
    keras.utils.set_random_seed(0)
    make, out, x = _problem(case, s)
    models = {
        "idrop": _model([InfoDropout(make(out), activation="relu", beta=BETA, n_train=N_TRAIN, seed=0)], x, compiled),
        "floor": _model([make(2 * out), keras.layers.GaussianDropout(0.5, seed=0)], x, compiled),
    }
    y = np.zeros((x.shape[0], 1), "float32")
    steps = {k: (lambda m=m: m.train_on_batch(x, y)) for k, m in models.items()}
    c = compare(steps, repeats=s.repeats, warmup=s.warmup)
    return row(
        BACKEND,
        "cpu",
        "keras_train",
        case,
        "compiled" if compiled else "eager",
        times_ms={k: c.median_ms(k) for k in steps},
        ratios={"idrop/floor": c.ratio("idrop", "floor")},
        spread={"idrop/floor": c.ratio_spread("idrop", "floor")},
        note="keras model.train_on_batch; floor: the map at twice its units + keras.layers.GaussianDropout",
    )


def run(s: Settings, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    if s.threads and KERAS_BACKEND == "torch":
        import torch

        torch.set_num_threads(s.threads)
    compiled = KERAS_BACKEND == "jax"  # jax always jits (as the jax rows do); torch eager, see above
    rows: list[dict[str, Any]] = []
    for case in ("linear", "conv") if "keras_train" in s.kinds else ():
        log(f"{BACKEND} cpu keras_train {case}")
        rows.append(layer_train(case, s, compiled))
    return rows


def info() -> dict[str, Any]:
    import importlib

    fw = importlib.import_module(KERAS_BACKEND)
    return {
        "versions": {"keras": keras.__version__, KERAS_BACKEND: fw.__version__},
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
    }
