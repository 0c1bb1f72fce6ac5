"""The TensorFlow adapter's array namespace ``xp``, its dtype helpers, and the seeds and noise draws.

``xp`` spells the core's protocol (:mod:`idrop.core._xp`) with plain ``tf`` ops over tensors.
The functional ops run the core on it under autodiff, and the fused kernel runs the same
core on it inside ``tf.custom_gradient``; one namespace, so every formula exists once. Its
gradients are TensorFlow's own: ``relu'(0) = 0`` (``tf.nn.relu``), the log floor is a ``where``
(DESIGN.md section 1, "Derivatives at kinks").

Private APIs (checked against TensorFlow 2.21 and Keras 3.15):
``keras.src.random.seed_generator.draw_seed`` (the ``[2]`` seed words of an int or ``None``
seed, as ``keras.random`` draws them) and ``tensorflow.python.eager.record.could_possibly_record``
(whether any ``GradientTape`` or forward accumulator is recording).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras.src.random.seed_generator import draw_seed as _keras_draw_seed
from tensorflow.python.eager.record import could_possibly_record as _could_possibly_record

from idrop.core.spec import (
    check_float_dtype,
    check_input_dtype,
    check_input_rank,
    check_input_type,
    check_noise_shape,
)


def _logaddexp(x1: Any, x2: Any) -> Any:
    r"""``log(exp(x1) + exp(x2)) = max(x1, x2) + log1p(exp(-|x1 - x2|))``, exact gradient at ties too.

    Written with ``where`` so that autodiff of the plain ops gives ``sigmoid(x1 - x2)``
    everywhere, ``1/2`` at ``x1 == x2`` included; ``tf.maximum`` and ``tf.abs`` would give the
    tie wholly to ``x1`` (``softplus'(0) = 1``). Smooth to every order, like the function.
    """
    d = x1 - x2
    above = d > 0
    tail = tf.math.log1p(tf.exp(tf.where(above, -d, d)))  # -|d|, with the slope of the lower branch at 0
    return tf.where(above, x1 + tail, x2 + tail)


class _TensorFlowNamespace:
    """The core's array protocol on plain ``tf`` ops (and the optional fused ``sigmoid``, ``relu``)."""

    asarray = staticmethod(tf.convert_to_tensor)
    exp = staticmethod(tf.exp)
    expm1 = staticmethod(tf.math.expm1)
    log = staticmethod(tf.math.log)
    log1p = staticmethod(tf.math.log1p)
    logaddexp = staticmethod(_logaddexp)
    maximum = staticmethod(tf.maximum)
    sqrt = staticmethod(tf.sqrt)
    square = staticmethod(tf.square)
    where = staticmethod(tf.where)
    zeros_like = staticmethod(tf.zeros_like)
    ones_like = staticmethod(tf.ones_like)
    sigmoid = staticmethod(tf.sigmoid)  # one fused op instead of exp(-softplus(-a))
    relu = staticmethod(tf.nn.relu)  # one op; relu'(0) = 0, the core's rule

    @staticmethod
    def astype(x: Any, dtype: Any) -> Any:
        return tf.cast(x, dtype)

    @staticmethod
    def sum(x: Any, axis: Any = None) -> Any:
        return tf.reduce_sum(x, axis=axis)

    @staticmethod
    def mean(x: Any, axis: Any = None) -> Any:
        return tf.reduce_mean(x, axis=axis)


xp = _TensorFlowNamespace()

_HALF = ("float16", "bfloat16")


def recording() -> bool:
    """Whether a ``GradientTape`` (or forward accumulator) could record the ops that run now."""
    return _could_possibly_record()


def dtype_name(t: Any) -> str:
    return keras.backend.standardize_dtype(t.dtype)


def compute_dtype(t: Any) -> str:
    """float32 for half-precision tensors (KL and noise), else the tensor's dtype."""
    return "float32" if dtype_name(t) in _HALF else dtype_name(t)


def check_float(name: str, t: Any) -> None:
    check_float_dtype(name, dtype_name(t), keras.backend.is_float_dtype(dtype_name(t)))


def check_layer_input(x: Any, compute: str, variable: str) -> None:
    """The layers' input rules (docs/design-notes.md section 2), before Keras converts or casts ``x``.

    An array (a tensor, a NumPy array, a ``keras.Input``), of rank >= 1, floating point, in the
    layer's compute dtype; under a mixed-precision policy (``compute != variable``) an input in
    the variable dtype (float32) passes too: Keras layers autocast it, the policy's purpose.
    """
    check_input_type("x", x, hasattr(x, "shape") and hasattr(x, "dtype"))
    if getattr(x.shape, "rank", 0) is not None:  # a traced tensor of unknown rank is checked by the ops
        check_input_rank("x", tuple(x.shape))
    check_float("x", x)
    if compute != variable and dtype_name(x) == variable:
        return
    check_input_dtype("x", dtype_name(x), compute)


def check_noise(name: str, noise: Any, shape: Any) -> None:
    """Raise unless injected noise has exactly ``shape``; a traced ``None`` dimension matches any size."""
    have, want = tf.TensorShape(noise.shape), tf.TensorShape(shape)
    if have.rank is None or want.rank is None:
        return
    if have.rank != want.rank or not have.is_compatible_with(want):
        check_noise_shape(name, tuple(have.as_list()), tuple(want.as_list()))


def tensor(t: Any, dtype: str | None = None) -> Any:
    """``t`` as a tensor; cast to ``dtype`` if given (Python floats convert straight to it)."""
    if hasattr(t, "dtype") and hasattr(t, "shape"):
        t = tf.convert_to_tensor(t)
        return t if dtype is None else tf.cast(t, dtype)
    # Not a cast of 0.3 to float64: that would round through float32 first.
    return tf.convert_to_tensor(t, dtype=dtype)


def seed_words(seed: Any) -> Any:
    """The ``int32[2]`` seed of a stateless op from a ``SeedGenerator`` (advanced), an int or ``None``.

    The same words as ``keras.random`` uses (its ``draw_seed`` and the int32 fold of its
    TensorFlow backend), with the replica id folded in under ``tf.distribute``.
    """
    if isinstance(seed, keras.random.SeedGenerator):
        words = seed.next()
    else:
        words = _keras_draw_seed(seed)
    if words.dtype != tf.int32:
        words = tf.cast(tf.math.floormod(words, tf.int32.max - 1), tf.int32)
    return fold_replica(words)


#: Odd 31-bit constant that spreads replica ids over the seed space (golden-ratio hashing).
_REPLICA_STRIDE = 0x1E3779B1


def fold_replica(words: Any) -> Any:
    """Fold the replica id into the seed's first word, so replicas draw different noise.

    Under ``tf.distribute`` a ``SeedGenerator``'s state is one mirrored variable: without
    this every replica would read the same seed and draw the SAME noise (the classic
    data-parallel bug). Replica 0, and any code outside a strategy, keeps its seed.
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return words
    rid = tf.cast(ctx.replica_id_in_sync_group, tf.int64)
    first = tf.math.floormod(tf.cast(words[0], tf.int64) + rid * _REPLICA_STRIDE, tf.int32.max - 1)
    first = tf.where(rid == 0, words[0], tf.cast(first, tf.int32))
    return tf.stack([first, words[1]])


def draw_normal(like: Any, seed: Any) -> Any:
    """Standard normals shaped like ``like``, in float32 at least (never half).

    ``tf.random.stateless_normal(alg="philox")``: the default of ``keras.random.normal``
    (``auto_select``) is much slower under XLA on the CPU.
    """
    return tf.random.stateless_normal(tf.shape(like), seed=seed_words(seed), dtype=compute_dtype(like), alg="philox")


def draw_uniform(like: Any, seed: Any) -> Any:
    """Standard uniforms on ``[0, 1)`` shaped like ``like``, in float32 at least (Philox, as above)."""
    return tf.random.stateless_uniform(tf.shape(like), seed=seed_words(seed), dtype=compute_dtype(like), alg="philox")
