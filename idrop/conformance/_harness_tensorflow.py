"""Conformance harness for :mod:`idrop.backends.tensorflow` (Keras 3, channels-last): conversions only.

Maps, layers and parameters are built and read by :class:`~idrop.conformance._keras_layers.KerasLayers`
(shared with the Keras harness); this module converts with TensorFlow and differentiates with
``tf.GradientTape`` and ``tf.autodiff.ForwardAccumulator``.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import ml_dtypes
import numpy as np
import tensorflow as tf

from idrop.backends import tensorflow as backend
from idrop.conformance._harness import DTYPES
from idrop.conformance._keras_layers import KerasLayers


class TensorFlowHarness(KerasLayers):
    name = "tensorflow"
    framework = f"tensorflow {tf.__version__}, keras {keras.__version__}"
    module = backend

    def asarray(self, a: Any, dtype: str) -> tf.Tensor:
        # Cast in NumPy: TensorFlow's CPU cast flushes subnormals to zero.
        a = np.asarray(a)
        if dtype in DTYPES:
            return tf.constant(a.astype(np.float64).astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype))
        return tf.constant(a.astype(dtype))

    def to_numpy(self, t: Any) -> np.ndarray:
        # Cast in TensorFlow (exact): NumPy cannot take a 0-d bfloat16 tensor.
        return np.asarray(tf.cast(t, tf.float64))

    def differentiating(self) -> Any:
        return tf.GradientTape()  # eager TF records for a gradient only under a tape

    def vjp(self, fn, inputs, cotangents, layer=None):
        # The tf.Variable behind each Keras variable: the tape makes zeros for an unconnected one
        # from its dtype, which a Keras variable spells as a string.
        params = {k: v.value for k, v in self.parameters(layer).items()} if layer is not None else {}
        with tf.GradientTape() as tape:
            tape.watch(list(inputs.values()))
            outs = fn(layer, **inputs)
            loss = tf.add_n(
                [
                    # float64 terms: add_n takes one dtype, and z and kl differ in half precision
                    tf.cast(tf.reduce_sum(o * self.asarray(c, self.dtype_name(o))), tf.float64)
                    for o, c in zip(outs, cotangents)
                    if o is not None and c is not None
                ]
            )
        zero = tf.UnconnectedGradients.ZERO
        by_input, by_param = tape.gradient(loss, (inputs, params), unconnected_gradients=zero)
        return {k: self.to_numpy(v) for k, v in by_input.items()}, {k: self.to_numpy(v) for k, v in by_param.items()}

    def jvp(self, fn, inputs, tangents, layer=None):
        tans = {k: self.asarray(tangents[k], self.dtype_name(v)) for k, v in inputs.items()}
        with tf.autodiff.ForwardAccumulator(inputs, tans) as acc:
            outs = fn(layer, **inputs)
        zero = tf.UnconnectedGradients.ZERO
        return tuple(self.to_numpy(acc.jvp(o, unconnected_gradients=zero)) for o in outs)

    def vmap(self, fn, inputs, layer=None):
        return tuple(self.to_numpy(t) for t in tf.vectorized_map(lambda i: tuple(fn(layer, **i)), inputs))

    def transform_grad(self, fn, inputs, cotangents):
        @tf.function
        def grad(inputs):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                outs = fn(None, **inputs)
                loss = tf.add_n(
                    [tf.reduce_sum(o * self.asarray(c, self.dtype_name(o))) for o, c in zip(outs, cotangents)]
                )
            return tape.gradient(loss, inputs)

        return {k: self.to_numpy(v) for k, v in grad(inputs).items()}


HARNESS = TensorFlowHarness()
