"""The part of a harness that builds and reads Keras 3 layers, shared by the TensorFlow and Keras harnesses.

Both adapters' layers are Keras layers (on TensorFlow, the same classes), so the maps, the layers and
their parameters are built and read the same way; only conversions and gradients are each
harness's own. Channels-last maps; the reference pads symmetrically (torch's ``padding=p``) while
Keras' ``"same"`` padding is asymmetric at stride 2, so a padded convolution is
``Sequential([ZeroPadding2D(p), Conv2D(padding="valid")])``, which also exercises the "any layer with
an explicit ``alpha_layer``" path. Imports Keras only, never the framework behind it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import keras
import numpy as np

from idrop.conformance._harness import DTYPES, Map


def _map(layer: keras.Layer) -> keras.Layer:
    """The Dense/Conv2D inside ``layer`` (itself, or the last layer of a Sequential)."""
    return layer.layers[-1] if isinstance(layer, keras.Sequential) else layer


class KerasLayers:
    """Builds the maps and layers of a Keras adapter (``module``) and reads their weights."""

    module: ModuleType  #: the adapter: idrop.backends.tensorflow or idrop.backends.keras
    dtypes = DTYPES
    channels_last = True
    batchless_maps = True  # Keras 3 Dense takes a 1-D input (min_ndim=1 once built on it)
    functional_flag = "training"
    layer_flag = ("training", True)  # Keras: training=None means "not training"

    def asarray(self, a: Any, dtype: str) -> Any:  # each harness's own conversion
        raise NotImplementedError

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
        module = getattr(self.module, cls)(layer, dtype=dtype, **options)
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

    def functional(self, op: str, *args: Any, training: Any = True, seed: int | None = None, **kwargs: Any) -> Any:
        if seed is not None:
            kwargs["seed"] = keras.random.SeedGenerator(seed)
        return getattr(self.module, op)(*args, training=training, **kwargs)
