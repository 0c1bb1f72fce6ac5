"""Conformance harness for :mod:`idrop.backends.keras` on the active Keras backend: conversions only.

Keras fixes its backend at import, so this harness checks the Keras layer on the backend this
process runs (reported as ``keras[<backend>]``); ``python -m idrop.conformance`` and CI run the
suite once per Keras backend, each in its own process (:mod:`idrop.conformance._keras_runs`).
Maps, layers and parameters are built and read by :class:`~idrop.conformance._keras_layers.KerasLayers`,
as in the TensorFlow harness (channels-last, a padded convolution is
``Sequential([ZeroPadding2D, Conv2D])``); conversions and gradients use the
backend's own tools: ``tf.GradientTape``, ``torch.autograd.grad``, or ``jax.grad`` of the layer
called under a ``keras.StatelessScope`` that maps its variables.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import ml_dtypes
import numpy as np
from keras import ops

from idrop.backends import keras as backend
from idrop.conformance._harness import DTYPES
from idrop.conformance._keras_layers import KerasLayers

BACKEND = keras.backend.backend()


def _framework() -> str:
    import importlib

    fw = importlib.import_module(BACKEND)
    return f"keras {keras.__version__} on {BACKEND} {fw.__version__}"


def _tensorflow() -> Any:
    """The TensorFlow harness, whose conversions and tape this one uses on the TensorFlow backend."""
    from idrop.conformance._harness_tensorflow import HARNESS

    return HARNESS


class KerasHarness(KerasLayers):
    name = "keras"
    label = f"keras[{BACKEND}]"  #: the name in the report
    framework = _framework()
    module = backend

    #: Why this backend's Keras layer has no function-transform checks (``test_transforms.py``), or None.
    #: On TensorFlow the Keras layers are the TensorFlow adapter's (same classes, same kernel), checked with
    #: its transforms. On JAX the Keras kernel is ``keras.ops.custom_gradient``, i.e. ``jax.custom_vjp``,
    #: which JAX refuses in forward mode; function transforms are the native adapters' feature (issue 15,
    #: item 6: ``idrop.backends.jax`` and ``idrop.backends.torch``), and Keras on torch runs the torch
    #: adapter's kernel, checked there.
    transforms_skip = (
        None
        if BACKEND == "tensorflow"
        else f"function transforms are checked on the native adapters, not on keras[{BACKEND}] "
        "(idrop/conformance/_harness_keras.py, KerasHarness.transforms_skip)"
    )

    def jvp(self, fn, inputs, tangents, layer=None):
        return _tensorflow().jvp(fn, inputs, tangents, layer)

    def vmap(self, fn, inputs, layer=None):
        return _tensorflow().vmap(fn, inputs, layer)

    def transform_grad(self, fn, inputs, cotangents):
        return _tensorflow().transform_grad(fn, inputs, cotangents)

    def asarray(self, a: Any, dtype: str) -> Any:
        if BACKEND == "tensorflow":
            return _tensorflow().asarray(a, dtype)
        a = np.asarray(a)
        if dtype in ("float16", "bfloat16"):
            # Round in NumPy (exact, subnormals kept), then cast the exactly representable float32 values.
            rounded = a.astype(np.float64).astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
            return ops.cast(ops.convert_to_tensor(rounded.astype(np.float32)), dtype)
        if dtype in DTYPES:
            return ops.convert_to_tensor(a.astype(np.float64).astype(dtype))
        return ops.convert_to_tensor(a.astype(dtype))

    def to_numpy(self, t: Any) -> np.ndarray:
        if BACKEND == "tensorflow":
            return _tensorflow().to_numpy(t)
        return np.asarray(ops.convert_to_numpy(ops.cast(t, "float64")), dtype=np.float64)

    def differentiating(self) -> Any:
        if BACKEND == "tensorflow":
            return _tensorflow().differentiating()
        if BACKEND == "torch":
            import torch

            return torch.enable_grad()
        return contextlib.nullcontext()  # JAX: every training call may be traced for a gradient

    def _loss(self, outs: Any, cotangents: Any) -> Any:
        terms = [
            ops.sum(ops.cast(o, "float64") * ops.cast(self.asarray(c, self.dtype_name(o)), "float64"))
            for o, c in zip(outs, cotangents)
            if o is not None and c is not None
        ]
        return sum(terms[1:], terms[0])

    def vjp(self, fn, inputs, cotangents, layer=None):
        if BACKEND == "tensorflow":
            return _tensorflow().vjp(fn, inputs, cotangents, layer)
        params = self.parameters(layer) if layer is not None else {}
        if BACKEND == "torch":
            import torch

            leaves = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}
            with torch.enable_grad():
                loss = self._loss(fn(layer, **leaves), cotangents)
            wrt = [*leaves.values(), *(v.value for v in params.values())]
            grads = torch.autograd.grad(loss, wrt, allow_unused=True)
            named = [np.zeros(tuple(t.shape)) if g is None else self.to_numpy(g) for t, g in zip(wrt, grads)]
            return dict(zip(leaves, named[: len(leaves)])), dict(zip(params, named[len(leaves) :]))
        import jax

        variables = list(params.values())

        def loss_of(xs: dict, values: list) -> Any:
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return self._loss(fn(layer, **xs), cotangents)

        g_in, g_par = jax.grad(loss_of, argnums=(0, 1))(dict(inputs), [v.value for v in variables])
        return {k: self.to_numpy(v) for k, v in g_in.items()}, {k: self.to_numpy(g) for k, g in zip(params, g_par)}


HARNESS = KerasHarness()
