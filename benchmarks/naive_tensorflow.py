"""The NAIVE TensorFlow/Keras baseline: Information Dropout as the public ports write it.

Two separate layers (the map and the alpha branch), element-wise ``tf`` ops one by
one, ``tf.random.normal`` for the noise, and every intermediate (sigmoid, alpha,
log, the draw, exp) a separate tensor the gradient tape keeps; the shape of the
official TF code (``information_dropout`` of the authors' repository).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


class NaiveInfoDropout(keras.layers.Layer):
    """``z = relu(layer(x)) * exp(alpha * eps)``, ``alpha = alpha_min + max_alpha * sigmoid(alpha_layer(x))``."""

    def __init__(
        self,
        layer: keras.Layer,
        alpha_layer: keras.Layer,
        max_alpha: float = 0.7,
        alpha_min: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.layer = layer
        self.alpha_layer = alpha_layer
        self.max_alpha = max_alpha
        self.alpha_min = alpha_min

    def call(self, x: Any, training: bool | None = None) -> tuple[Any, Any]:
        """Return ``(z, kl)`` with the per-unit KL of the log-uniform prior (eq. 3)."""
        f = tf.nn.relu(self.layer(x))
        a = self.alpha_layer(x)
        alpha = self.alpha_min + self.max_alpha * tf.sigmoid(a)
        kl = -tf.math.log(alpha / (self.max_alpha + self.alpha_min))
        if not training:
            return f, kl
        eps = tf.random.normal(tf.shape(f))
        noise = tf.exp(alpha * eps)
        return f * noise, kl
