"""Calling the wrapped map and the alpha map: :class:`NoisyMap`, the ``keras.layers.Wrapper`` every
layer of the Keras adapter is (``act(norm(layer(x)))`` and the input rules), plain Dense/ConvND calls
without the ``__call__`` machinery, and the stacked call of twin maps on concatenated kernels.

The plain calls use the public attributes of ``keras.layers.Dense`` / ``ConvND`` (``kernel``,
``bias``, ``use_bias``, ``activation``, ``data_format``, ...) and ``BaseConv.convolution_op``
(``keras.src.layers.convolutional.base_conv``), checked against Keras 3.15. They apply no
activation: a wrapped layer has none (:func:`idrop.core.spec.check_no_activation`).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import keras
from keras import ops

from idrop.backends.keras._namespace import check_float, check_layer_input, concatenate, matmul, split, tensor, xp
from idrop.core._xp import activation as _activation
from idrop.core.spec import InfoDropoutSpec, check_flag, check_no_activation, no_low_rank_map, unexpected_keyword

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


@keras.saving.register_keras_serializable(package="idrop")
class LowRankAlpha(keras.layers.Layer):
    """The cheap alpha branch ``up(down(x))``: ``down`` a layer of ``layer``'s class and geometry with
    ``rank`` outputs and no bias, ``up`` a ``Dense``/1x1 ``ConvND`` to ``layer``'s outputs with a bias.

    ``down`` needs no bias: ``up(down(x) + c) = up(down(x)) + c @ up.kernel``, which ``up``'s bias
    already spans. Costs ``rank * (in + out)`` weights instead of ``in * out``.
    """

    def __init__(self, down: keras.Layer, up: keras.Layer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.down, self.up = down, up

    def build(self, input_shape: tuple) -> None:
        _build(self.up, _build(self.down, input_shape))
        self.built = True

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(self.up.compute_output_shape(self.down.compute_output_shape(input_shape)))

    def call(self, x: Any) -> Any:
        if _direct(self.down) and _direct(self.up):
            # The plain calls: on torch they keep float64 (Keras's own ops demote it off TensorFlow).
            return _map_call(self.up, _map_call(self.down, x))
        return self.up(self.down(x))

    def get_config(self) -> dict[str, Any]:
        ser = keras.saving.serialize_keras_object
        return {**super().get_config(), "down": ser(self.down), "up": ser(self.up)}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> LowRankAlpha:
        config = dict(config)
        for key in ("down", "up"):
            config[key] = keras.saving.deserialize_keras_object(config[key], custom_objects=custom_objects)
        return cls(**config)


def _low_rank_copy(layer: keras.Layer, rank: int) -> LowRankAlpha:
    """The :class:`LowRankAlpha` of a Dense/ConvND ``layer``: new, unbuilt layers (linear activation)."""
    if not isinstance(layer, _MAPS):
        raise no_low_rank_map(rank, type(layer).__name__, "Dense/Conv1D/2D/3D")
    config = {**layer.get_config(), "activation": "linear"}
    drop = ("bias_initializer", "bias_regularizer", "bias_constraint")
    down_config = {k: v for k, v in config.items() if k not in drop}
    down_config |= {"name": f"{layer.name}_alpha_down", "use_bias": False}
    up_config = {**config, "name": f"{layer.name}_alpha_up", "use_bias": True}
    if isinstance(layer, keras.layers.Dense):
        down_config["units"] = rank
    else:
        down_config |= {"filters": rank, "groups": 1}
        ones = (1,) * len(layer.kernel_size)
        up_config |= {"kernel_size": ones, "strides": ones, "dilation_rate": ones, "padding": "valid", "groups": 1}
    down, up = type(layer).from_config(down_config), type(layer).from_config(up_config)
    return LowRankAlpha(down, up, name=f"{layer.name}_alpha", dtype=layer.dtype_policy)


#: Twin maps computed in one op on their concatenated kernels: faster for convolutions (under XLA
#: on the CPU; about even eagerly), slower for Dense (the copy of the kernels costs more than it saves).
_STACK = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def _direct(layer: keras.Layer | None) -> bool:
    """Whether :func:`_map_call` may compute ``layer`` without its ``__call__`` (a plain Dense/ConvND)."""
    return (
        layer is not None
        and type(layer) in _MAPS
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
    y = matmul(x, kernel) if isinstance(layer, keras.layers.Dense) else layer.convolution_op(x, kernel)
    return y if bias is None else y + bias


def _map_call(layer: keras.Layer, x: Any) -> Any:
    """``layer(x)`` for a :func:`_direct` layer, as its ``call`` computes it, without the ``__call__``
    machinery (Keras's ``__call__`` costs as much Python time as a mid-sized matmul in eager mode)."""
    dtype = layer.compute_dtype
    return _linear_map(layer, ops.cast(x, dtype), *_weights(layer, dtype))


def _plain_call(layer: keras.Layer, x: Any) -> Any:
    """``layer(x)``: by :func:`_map_call` when :func:`_direct` allows it (on torch, Keras's ``__call__``
    would demote a float64 layer's matmul), else through Keras's ``__call__``."""
    return _map_call(layer, x) if _direct(layer) else layer(x)


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
        y = _linear_map(layer, x, concatenate([k, ka], -1), None if b is None else concatenate([b, ba], 0))
        h, alpha_logits = split(y, 2, -1)
    else:
        h, alpha_logits = _linear_map(layer, x, k, b), _linear_map(alpha_layer, x, ka, ba)
    return h, alpha_logits


def _low_rank_twins(layer: keras.Layer, alpha_layer: keras.Layer) -> bool:
    """Whether ``alpha_layer`` is a :class:`LowRankAlpha` whose ``down`` may run in one op with ``layer``
    (a plain conv of the same geometry, one group) and whose ``up`` is a plain map."""
    if not isinstance(alpha_layer, LowRankAlpha) or not isinstance(layer, _STACK) or layer.groups != 1:
        return False
    down, up = alpha_layer.down, alpha_layer.up
    if type(down) is not type(layer) or not (_direct(layer) and _direct(down) and _direct(up)) or down.use_bias:
        return False
    if len({layer.dtype_policy.name, down.dtype_policy.name, up.dtype_policy.name}) != 1:
        return False
    geometry = ("kernel_size", "strides", "padding", "dilation_rate", "data_format", "groups")
    return all(getattr(layer, k) == getattr(down, k) for k in geometry)


def _low_rank_call(layer: keras.Layer, alpha_layer: LowRankAlpha, x: Any, skip_up: bool = False) -> tuple[Any, Any]:
    """``(layer(x), alpha_layer(x))`` of :func:`_low_rank_twins`: ``layer`` and ``down`` as one conv on
    the concatenated kernels (``filters + rank`` outputs), then ``up`` on the ``rank`` channels
    (``skip_up``: ``(layer(x), down(x))``)."""
    dtype = layer.compute_dtype
    x = ops.cast(x, dtype)
    (k, b), (kd, _) = _weights(layer, dtype), _weights(alpha_layer.down, dtype)
    y = _linear_map(layer, x, concatenate([k, kd], -1), None)  # channels last (_direct)
    h, t = y[..., : layer.filters], y[..., layer.filters :]
    return (h if b is None else h + b), (t if skip_up else _map_call(alpha_layer.up, t))


def _build(layer: keras.Layer | None, shape: tuple) -> tuple:
    """Build ``layer`` for inputs of ``shape`` (if it is not yet) and return its output shape."""
    if layer is None:
        return shape
    if not layer.built:
        layer.build(shape)
    return tuple(layer.compute_output_shape(shape))


@contextlib.contextmanager
def plain_errors() -> Iterator[None]:
    """Let a ``TypeError``/``ValueError`` raised inside ``call()`` keep its message.

    Keras re-raises errors of ``call()`` with the call's arguments appended, unless the error
    carries ``_keras_call_info_injected`` (``keras.src.utils.traceback_utils.
    inject_argument_info_in_traceback``, Keras 3.15); idrop's messages are the same in every backend.
    """
    try:
        yield
    except (TypeError, ValueError) as err:
        err._keras_call_info_injected = True  # type: ignore[union-attr]
        raise


#: What ``keras.layers.Layer.__init__`` accepts besides its own keyword-only arguments (Keras 3.15,
#: ``keras.src.layers.layer.Layer.__init__`` pops these two from ``**kwargs``).
_LEGACY_LAYER_KWARGS = ("input_dim", "input_shape")
#: ``keras.Layer`` keyword arguments the wrappers pass on (``autocast`` is theirs to set: see ``__init__``).
_LAYER_KWARGS = frozenset(
    name
    for name, p in inspect.signature(keras.layers.Layer.__init__).parameters.items()
    if p.kind is p.KEYWORD_ONLY and name != "autocast"
).union(_LEGACY_LAYER_KWARGS)


def _activation_name(layer: keras.Layer) -> str | None:
    """The name of the activation ``layer`` applies itself (``None`` if it has none or a linear one)."""
    act = getattr(layer, "activation", None)
    if act is None or act is keras.activations.linear:
        return None
    return getattr(act, "__name__", type(act).__name__)


class NoisyMap(keras.layers.Wrapper):
    """``noise(act(norm(layer(x))))``: what Information Dropout and its baselines share.

    A ``keras.layers.Wrapper``: Keras builds ``layer`` and (de)serialises it; the subclasses add
    ``norm`` and their own options to the config.
    """

    kl = None  #: the baselines have no KL; InfoDropout's is the last call's

    def __init__(
        self,
        layer: keras.Layer,
        *,
        activation: str = "relu",
        norm: keras.Layer | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        for name in kwargs:
            if name not in _LAYER_KWARGS:  # Keras would say it in other words (and as a ValueError)
                raise unexpected_keyword(type(self).__name__, name)
        check_no_activation(type(layer).__name__, _activation_name(layer))
        kwargs.setdefault("dtype", layer.dtype_policy)
        super().__init__(layer, **kwargs)
        # The wrapped maps cast their own inputs. Our own autocast would also cast the
        # `noise=` keyword to float16 under mixed precision; the noise stays float32.
        self.autocast = False
        self.activation = InfoDropoutSpec(activation=activation).activation
        self.norm = norm
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        # Checked here, before Keras converts or casts `x` and outside call(), whose errors
        # Keras rewrites: the same class and message as in every backend.
        check_layer_input(x, self.compute_dtype, self.variable_dtype)
        check_flag("training", kwargs.get("training", args[0] if args else None), allow_none=True)
        return super().__call__(x, *args, **kwargs)

    def build(self, input_shape: tuple) -> None:
        super().build(input_shape)  # builds `layer`
        _build(self.norm, tuple(self.layer.compute_output_shape(input_shape)))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(self.layer.compute_output_shape(input_shape))

    def activation_of(self, x: Any) -> Any:
        """``f(x) = act(norm(layer(x)))``, after checking that ``x`` is floating point."""
        x = tensor(x)
        check_float("x", x)
        h = _plain_call(self.layer, x)
        if self.norm is not None:
            h = self.norm(h)
        return _activation(self.activation, h, xp=xp)

    def get_config(self) -> dict[str, Any]:
        norm = None if self.norm is None else keras.saving.serialize_keras_object(self.norm)
        return {**super().get_config(), "activation": self.activation, "norm": norm, "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> NoisyMap:
        config = dict(config)
        for key in ("norm", "alpha_layer"):  # Wrapper.from_config deserialises `layer`
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key], custom_objects=custom_objects)
        return super().from_config(config, custom_objects=custom_objects)
