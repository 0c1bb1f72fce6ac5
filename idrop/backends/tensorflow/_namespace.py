"""The TensorFlow adapter's plumbing: the ``xp`` shim over ``keras.ops`` the core runs on, the
tie-splitting activations, dtype checks, and the seeds and noise draws of the layers.

Imported by :mod:`idrop.backends.tensorflow`, which checks the Keras backend first.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import ops
from keras.src.random.seed_generator import draw_seed as _keras_draw_seed

from idrop.core.spec import check_float_dtype


def _tie_split(fn: Any) -> Any:
    """Broadcast both operands, then call ``fn`` (whose gradient assumes equal shapes)."""

    def wrapper(x1: Any, x2: Any) -> Any:
        x1, x2 = tf.convert_to_tensor(x1), tf.convert_to_tensor(x2)
        if x1.shape != x2.shape:
            shape = tf.broadcast_dynamic_shape(tf.shape(x1), tf.shape(x2))
            x1, x2 = tf.broadcast_to(x1, shape), tf.broadcast_to(x2, shape)
        return fn(x1, x2)

    return wrapper


@_tie_split
@tf.custom_gradient
def _maximum(x1: Any, x2: Any) -> Any:
    """``maximum`` whose gradient splits ties evenly, as torch and JAX do.

    TensorFlow gives a tie wholly to ``x1``, so ``relu'(0)`` would be 1 here and
    1/2 in the other backends and in the reference's finite differences.
    """

    def grad(g: Any) -> tuple[Any, Any]:
        w = tf.where(x1 > x2, tf.ones_like(g), tf.where(x1 < x2, tf.zeros_like(g), 0.5 * tf.ones_like(g)))
        return g * w, g * (1 - w)

    return tf.maximum(x1, x2), grad


@_tie_split
@tf.custom_gradient
def _logaddexp(x1: Any, x2: Any) -> Any:
    """``logaddexp`` with the exact gradient ``sigmoid(x1 - x2)``.

    ``keras.ops.logaddexp`` is ``max(x1, x2) + softplus(-|x1 - x2|)`` under
    TensorFlow, whose gradient at ``x1 == x2`` is 1 instead of 1/2 (the max and
    abs kinks), which doubled ``d sigmoid / da`` at ``a = 0``.
    """

    def grad(g: Any) -> tuple[Any, Any]:
        return g * tf.sigmoid(x1 - x2), g * tf.sigmoid(x2 - x1)

    return ops.logaddexp(x1, x2), grad


def _relu_untaped(h: Any) -> Any:
    """``max(h, 0)`` in one op (the values of :func:`_relu`, TF's own gradient)."""
    return tf.nn.relu(h)


def _softplus_untaped(h: Any) -> Any:
    """``logaddexp(h, 0)``, the same formula as ``keras.ops.logaddexp`` (TF's own gradients)."""
    return tf.maximum(h, 0.0) + tf.math.log1p(tf.exp(-tf.abs(h)))


@tf.custom_gradient
def _relu(h: Any) -> Any:
    """``max(h, 0)`` with the tie gradient 1/2 at 0 of :func:`_maximum`, in one op (the layers' activation)."""

    def grad(g: Any) -> Any:
        return g * (0.5 * (tf.sign(h) + 1.0))

    return _relu_untaped(h), grad


@tf.custom_gradient
def _softplus(h: Any) -> Any:
    """:func:`_softplus_untaped` with the gradient ``sigmoid(h)``."""

    def grad(g: Any) -> Any:
        return g * tf.sigmoid(h)

    return _softplus_untaped(h), grad


try:  # private, but the only way to ask whether any GradientTape could record an op
    from tensorflow.python.eager.record import could_possibly_record as _could_record
except ImportError:  # pragma: no cover - a TensorFlow release moved it: always take the custom-gradient ops
    _could_record = None


def _untaped() -> bool:
    """Eager execution with no active tape: no gradient can be asked of what runs now."""
    return _could_record is not None and tf.executing_eagerly() and not _could_record()


_LAYER_ACTIVATIONS = {"relu": _relu, "softplus": _softplus}
_UNTAPED_ACTIVATIONS = {"relu": _relu_untaped, "softplus": _softplus_untaped}


def _layer_activation(name: str, h: Any) -> Any:
    """The layers' activation: with the tie-splitting gradients, or plain ops when no tape can record
    (a ``custom_gradient`` wrapper costs ~0.2 ms per eager call)."""
    return (_UNTAPED_ACTIVATIONS if _untaped() else _LAYER_ACTIVATIONS)[name](h)


class _KerasNamespace:
    """The handful of array-API names the core uses, spelled with ``keras.ops``."""

    exp = staticmethod(ops.exp)
    expm1 = staticmethod(ops.expm1)
    log = staticmethod(ops.log)
    log1p = staticmethod(ops.log1p)
    logaddexp = staticmethod(_logaddexp)
    maximum = staticmethod(_maximum)
    sqrt = staticmethod(ops.sqrt)
    square = staticmethod(ops.square)
    where = staticmethod(ops.where)
    zeros_like = staticmethod(ops.zeros_like)
    ones_like = staticmethod(ops.ones_like)
    asarray = staticmethod(ops.convert_to_tensor)

    @staticmethod
    def astype(x: Any, dtype: Any) -> Any:
        return ops.cast(x, dtype)

    @staticmethod
    def sum(x: Any, axis: Any = None) -> Any:
        return ops.sum(x, axis=axis)

    @staticmethod
    def mean(x: Any, axis: Any = None) -> Any:
        return ops.mean(x, axis=axis)


xp = _KerasNamespace()

_HALF = ("float16", "bfloat16")


def _dtype(t: Any) -> str:
    return keras.backend.standardize_dtype(t.dtype)


def _compute_dtype(t: Any) -> str:
    """float32 for half-precision tensors (KL and noise), else the tensor's dtype."""
    return "float32" if _dtype(t) in _HALF else _dtype(t)


def _check_float(name: str, t: Any) -> None:
    check_float_dtype(name, _dtype(t), keras.backend.is_float_dtype(_dtype(t)))


def _tensor(t: Any, dtype: str | None = None) -> Any:
    """``t`` as a tensor; cast to ``dtype`` if given (Python floats convert straight to it)."""
    if hasattr(t, "dtype") and hasattr(t, "shape"):
        return t if dtype is None else ops.cast(t, dtype)
    # Not ops.cast(0.3, "float64"): that rounds through float32 first.
    return ops.convert_to_tensor(t, dtype=dtype)


def _seed(seed: Any) -> Any:
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
    return _fold_replica(words)


#: Odd 31-bit constant that spreads replica ids over the seed space (golden-ratio hashing).
_REPLICA_STRIDE = 0x1E3779B1


def _fold_replica(words: Any) -> Any:
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


def _draw_normal(like: Any, seed: Any) -> Any:
    """Standard normals shaped like ``like``, in float32 at least (never half).

    ``tf.random.stateless_normal(alg="philox")``: the default of ``keras.random.normal``
    (``auto_select``) is ~40x slower under XLA on the CPU.
    """
    return tf.random.stateless_normal(tf.shape(like), seed=_seed(seed), dtype=_compute_dtype(like), alg="philox")


def _draw_uniform(like: Any, seed: Any) -> Any:
    """Standard uniforms on ``[0, 1)`` shaped like ``like``, in float32 at least (Philox, as above)."""
    return tf.random.stateless_uniform(tf.shape(like), seed=_seed(seed), dtype=_compute_dtype(like), alg="philox")
