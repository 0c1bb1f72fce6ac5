"""Conformance harness for :mod:`idrop.backends.tensorflow` (Keras 3, channels-last): conversions only.

The reference pads symmetrically (torch's ``padding=p``); Keras' ``"same"`` padding is
asymmetric at stride 2, so a padded convolution is ``Sequential([ZeroPadding2D(p),
Conv2D(padding="valid")])``, which also exercises the "any layer with an explicit
``alpha_layer``" path.
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
from idrop.conformance._harness import DTYPES, Map


def _map(layer: keras.Layer) -> keras.Layer:
    """The Dense/Conv2D inside ``layer`` (itself, or the last layer of a Sequential)."""
    return layer.layers[-1] if isinstance(layer, keras.Sequential) else layer


class TensorFlowHarness:
    name = "tensorflow"
    framework = f"tensorflow {tf.__version__}, keras {keras.__version__}"
    module = backend
    dtypes = DTYPES
    channels_last = True
    batchless_maps = True  # Keras 3 Dense takes a 1-D input (min_ndim=1 once built on it)
    functional_flag = "training"
    layer_flag = ("training", True)  # Keras: training=None means "not training"

    def asarray(self, a: Any, dtype: str) -> tf.Tensor:
        # Cast in NumPy: TensorFlow's CPU cast flushes subnormals to zero.
        a = np.asarray(a)
        if dtype in DTYPES:
            return tf.constant(a.astype(np.float64).astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype))
        return tf.constant(a.astype(dtype))

    def to_numpy(self, t: Any) -> np.ndarray:
        # Cast in TensorFlow (exact): NumPy cannot take a 0-d bfloat16 tensor.
        return np.asarray(tf.cast(t, tf.float64))

    def dtype_name(self, t: Any) -> str:
        return keras.backend.standardize_dtype(t.dtype)

    def make_map(self, spec: Map, dtype: str) -> keras.Layer:
        if spec.kind in ("linear", "linear_relu"):
            return keras.layers.Dense(
                spec.n_out, activation="relu" if spec.kind == "linear_relu" else None, dtype=dtype
            )
        if spec.kind == "batch_norm":
            return keras.layers.BatchNormalization(dtype=dtype)
        if spec.kind != "conv2d":
            raise KeyError(spec.kind)
        conv = keras.layers.Conv2D(spec.n_out, spec.kernel, strides=spec.stride, padding="valid", dtype=dtype)
        if spec.padding == 0:
            return conv
        return keras.Sequential([keras.layers.ZeroPadding2D(spec.padding, dtype=dtype), conv])

    def build_layer(self, cls: str, layer: Any, *, dtype: str, input_shape: Any = None, **options: Any) -> Any:
        if isinstance(layer, Map):
            if cls == "InfoDropout" and layer.kind == "conv2d" and layer.padding and "alpha_layer" not in options:
                options["alpha_layer"] = self.make_map(layer, dtype)  # a Sequential has no default twin
            layer = self.make_map(layer, dtype)
        options = {k: self.make_map(v, dtype) if isinstance(v, Map) else v for k, v in options.items()}
        # dtype: a Sequential's own policy is the default float32 whatever its layers compute in.
        module = getattr(backend, cls)(layer, dtype=dtype, **options)
        if input_shape is not None:
            module.build(input_shape)  # Keras creates the weights at build time
        return module

    def parameters(self, layer: Any) -> dict[str, Any]:
        params = {"weight": _map(layer.layer).kernel, "bias": _map(layer.layer).bias}
        if getattr(layer, "alpha_rank", None) is not None:
            a = layer.alpha_layer
            params |= {"alpha_down": a.down.kernel, "alpha_weight": a.up.kernel, "alpha_bias": a.up.bias}
        elif getattr(layer, "alpha_layer", None) is not None:
            params |= {"alpha_weight": _map(layer.alpha_layer).kernel, "alpha_bias": _map(layer.alpha_layer).bias}
        if getattr(layer, "mu", None) is not None:
            params |= {"mu": layer.mu, "log_sigma": layer.log_sigma}
        return params

    def assign(self, variable: Any, value: np.ndarray) -> None:
        variable.assign(self.asarray(value, self.dtype_name(variable)))

    def call(self, layer: Any, x: Any, *, training: Any, noise: Any = None) -> Any:
        return layer(x, training=training, noise=noise)

    def kl(self, layer: Any) -> Any:
        return layer.kl

    def differentiating(self) -> Any:
        return tf.GradientTape()  # eager TF records for a gradient only under a tape

    def functional(self, op: str, *args: Any, training: Any = True, seed: int | None = None, **kwargs: Any) -> Any:
        if seed is not None:
            kwargs["seed"] = keras.random.SeedGenerator(seed)
        return getattr(backend, op)(*args, training=training, **kwargs)

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
