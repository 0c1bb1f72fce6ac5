"""The two maps of a Keras Information Dropout layer: plain Dense/ConvND calls without the
``__call__`` machinery, and the stacked call of twin maps on concatenated kernels.

The plain calls use the public attributes of ``keras.layers.Dense`` / ``ConvND`` (``kernel``,
``bias``, ``use_bias``, ``activation``, ``data_format``, ...) and ``BaseConv.convolution_op``
(``keras.src.layers.convolutional.base_conv``), checked against Keras 3.15. They apply no
activation: a wrapped layer has none (:func:`idrop.core.spec.check_no_activation`).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import ops

_MAPS = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def _fresh_copy(layer: keras.Layer) -> keras.Layer:
    """A new, unbuilt map of ``layer``'s kind and shape (own weights, linear activation)."""
    if isinstance(layer, _MAPS):
        config = {**layer.get_config(), "name": f"{layer.name}_alpha", "activation": "linear"}
        return type(layer).from_config(config)
    raise ValueError(
        "Invalid value received for argument `alpha_layer`. Expected a layer when "
        "`layer` is not Dense/Conv1D/2D/3D. "
        f"Received: alpha_layer=None, layer={type(layer).__name__}"
    )


#: Twin maps computed in one op on their concatenated kernels: faster for convolutions (eager about
#: even, ~1.4x under XLA on the CPU), slower for Dense (the copy of the kernels costs more than it saves).
_STACK = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def _direct(layer: keras.Layer | None) -> bool:
    """Whether :func:`_map_call` may compute ``layer`` without its ``__call__`` (a plain Dense/ConvND)."""
    return (
        type(layer) in _MAPS
        and layer.built
        and not getattr(layer, "quantization_mode", None)
        and not layer.activity_regularizer
        and layer.activation in (None, keras.activations.linear)
        and (isinstance(layer, keras.layers.Dense) or layer.data_format == "channels_last")
    )


def _weights(layer: keras.Layer, dtype: str) -> tuple[Any, Any]:
    return ops.cast(layer.kernel, dtype), (ops.cast(layer.bias, dtype) if layer.use_bias else None)


def _linear_map(layer: keras.Layer, x: Any, kernel: Any, bias: Any) -> Any:
    """``layer.call`` without the activation, on the given (compute-dtype) kernel and bias."""
    y = ops.matmul(x, kernel) if isinstance(layer, keras.layers.Dense) else layer.convolution_op(x, kernel)
    return y if bias is None else ops.add(y, bias)


def _map_call(layer: keras.Layer, x: Any) -> Any:
    """``layer(x)`` for a :func:`_direct` layer, as its ``call`` computes it, without the ``__call__``
    machinery (Keras's ``__call__`` costs as much Python time as a mid-sized matmul in eager mode)."""
    dtype = layer.compute_dtype
    return _linear_map(layer, ops.cast(x, dtype), *_weights(layer, dtype))


def _twins(layer: keras.Layer, alpha_layer: keras.Layer) -> bool:
    """Whether ``alpha_layer`` is a linear twin of ``layer`` (same class and geometry, own weights)."""
    if type(layer) is not type(alpha_layer) or not (_direct(layer) and _direct(alpha_layer)):
        return False
    if layer.use_bias != alpha_layer.use_bias:
        return False
    if layer.dtype_policy.name != alpha_layer.dtype_policy.name:
        return False
    if tuple(layer.kernel.shape) != tuple(alpha_layer.kernel.shape):
        return False
    if isinstance(layer, keras.layers.Dense):
        return True
    geometry = ("strides", "padding", "dilation_rate", "data_format", "groups")
    return all(getattr(layer, k) == getattr(alpha_layer, k) for k in geometry)


def _twin_call(layer: keras.Layer, alpha_layer: keras.Layer, x: Any) -> tuple[Any, Any]:
    """``(layer(x), alpha_layer(x))`` of :func:`_twins`; one op on the concatenated kernels for :data:`_STACK`."""
    dtype = layer.compute_dtype
    x = ops.cast(x, dtype)
    (k, b), (ka, ba) = _weights(layer, dtype), _weights(alpha_layer, dtype)
    if isinstance(layer, _STACK) and layer.groups == 1:
        y = _linear_map(layer, x, tf.concat([k, ka], axis=-1), None if b is None else tf.concat([b, ba], axis=0))
        h, alpha_logits = tf.split(y, 2, axis=-1)
    else:
        h, alpha_logits = _linear_map(layer, x, k, b), _linear_map(alpha_layer, x, ka, ba)
    return h, alpha_logits


def _build(layer: keras.Layer | None, shape: tuple) -> tuple:
    """Build ``layer`` for inputs of ``shape`` (if it is not yet) and return its output shape."""
    if layer is None:
        return shape
    if not layer.built:
        layer.build(shape)
    return tuple(layer.compute_output_shape(shape))
