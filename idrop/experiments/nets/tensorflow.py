"""TensorFlow / Keras 3 networks of the paper: MLP (Fig. 3a), All-CNN-32 (Table 2a), the VAE (Sec. 5).

See :mod:`idrop.experiments.nets` for what each network is and where it comes from. The MLP and the
VAE are :mod:`idrop.experiments.nets.keras`'s (on ``keras.ops``: on this backend its layers are
:mod:`idrop.backends.tensorflow`'s); All-CNN-32, with the official batch norm and padding, is here.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from idrop.backends.tensorflow import BinaryDropout, InfoDropout
from idrop.experiments._tensorflow_common import BatchNorm, Conv2D

from . import ALL_CNN_WIDTHS
from .keras import VAE as VAE
from .keras import build_mlp as build_mlp
from .keras import hidden_layer as hidden_layer
from .keras import negative_elbo as negative_elbo

# ------------------------------------------------------------------------------ All-CNN-32 --


def shift_only_batch_norm() -> BatchNorm:
    """Official batch norm (cifar.py:79 with ``tf.contrib.layers.batch_norm``'s defaults): no scale, eps 1e-3."""
    return BatchNorm(scale=False, epsilon=1e-3, momentum=0.9)


def _act(activation: str) -> keras.Layer:
    return keras.layers.Activation("relu" if activation == "relu" else "softplus")


def _conv(filters: int, k: int, stride: int = 1) -> Conv2D:
    # Padded k // 2 on every side (not Keras' 'same'): the torch and JAX nets' stride-2 grids.
    return Conv2D(filters, k, strides=stride, use_bias=False)


def conv_bn_act(filters: int, k: int, activation: str) -> list[keras.Layer]:
    """The official ``conv``: conv without bias, batch norm (shift only), activation (cifar.py:64-80)."""
    return [_conv(filters, k), shift_only_batch_norm(), _act(activation)]


def noisy_conv(
    method: str,
    filters: int,
    *,
    activation: str,
    max_alpha: float,
    seed: int,
    rate: float = 0.5,
    alpha_rank: int | None = None,
) -> list[keras.Layer]:
    """The stride-2 conv with its noise; the alpha conv has a bias, as the official one (cifar.py:90-91)."""
    conv, bn = _conv(filters, 3, 2), shift_only_batch_norm()
    if method == "information":
        if alpha_rank is not None:  # InfoDropout's cheap alpha branch instead of the official alpha conv
            branch: dict[str, Any] = {"alpha_rank": alpha_rank}
        else:
            branch = {"alpha_layer": Conv2D(filters, 3, strides=2, use_bias=True)}
        return [InfoDropout(conv, activation=activation, max_alpha=max_alpha, norm=bn, seed=seed, **branch)]
    if method == "binary":
        return [BinaryDropout(conv, activation=activation, rate=rate, norm=bn, seed=seed)]
    if method == "none":
        return [conv, bn, _act(activation)]
    raise ValueError(f"Unknown method {method!r}; expected 'information', 'binary' or 'none'.")


class AllCNN32(keras.Model):
    """All-CNN-32 as the official ``cifar.py:122-152`` builds it; inputs NHWC, outputs logits.

    Same arguments as :class:`idrop.experiments.nets.torch.AllCNN32`, plus ``seed`` for the noise.
    """

    def __init__(
        self,
        method: str,
        *,
        widths: tuple[int, int] = ALL_CNN_WIDTHS,
        activation: str = "relu",
        max_alpha: float = 0.7,
        input_dropout: float = 0.2,
        seed: int = 0,
        alpha_rank: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        a, b = widths
        self.input_dropout = keras.layers.Dropout(input_dropout, seed=seed * 100)
        layers: list[keras.Layer] = []
        for i, w in enumerate((a, b)):
            layers += [*conv_bn_act(w, 3, activation), *conv_bn_act(w, 3, activation)]
            layers += noisy_conv(
                method, w, activation=activation, max_alpha=max_alpha, seed=seed * 100 + 1 + i, alpha_rank=alpha_rank
            )
        layers += [*conv_bn_act(b, 3, activation), *conv_bn_act(b, 1, activation), *conv_bn_act(10, 1, activation)]
        self.blocks = layers
        self.logits = keras.layers.Dense(10)  # the official ``linear(network, num_outputs=10)`` (cifar.py:152)

    def call(self, x: Any, training: bool | None = None) -> Any:
        x = self.input_dropout(x, training=training)
        for layer in self.blocks:
            x = layer(x, training=training)
        return self.logits(tf.reduce_mean(x, axis=(1, 2)))
