"""The Keras adapter's array namespace ``xp``, dtype helpers, input rules, seeds and noise draws.

Keras fixes its backend when it is imported, so this module picks once, at import:

- on the TensorFlow backend it is :mod:`idrop.backends.tensorflow._namespace` itself (plain ``tf``
  ops, stateless Philox draws, ``tf.distribute`` replica folding): the layers are the TensorFlow
  adapter's, bit for bit;
- on the JAX and torch backends ``xp`` spells the core's protocol (:mod:`idrop.core._xp`) with
  ``keras.ops``, and noise comes from ``keras.random`` with the layer's ``SeedGenerator``
  (under ``keras.distribution`` the draw is over the global batch, so replicas get different rows).

Every helper keeps the TensorFlow adapter's names and signatures, so :mod:`._functional`,
:mod:`._maps` and :mod:`._layers` are written once for the three Keras backends.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from idrop.core.spec import (
    check_float_dtype,
    check_input_dtype,
    check_input_rank,
    check_input_type,
    check_noise_shape,
)

#: The active Keras backend ("tensorflow", "jax" or "torch"), fixed when Keras was imported.
BACKEND = keras.backend.backend()

_HALF = ("float16", "bfloat16")


def _logaddexp(x1: Any, x2: Any) -> Any:
    r"""``log(exp(x1) + exp(x2)) = max(x1, x2) + log1p(exp(-|x1 - x2|))``, gradient 1/2 at ties.

    Written with ``where`` as in the TensorFlow shim, so autodiff gives ``sigmoid(x1 - x2)``
    everywhere on every Keras backend.
    """
    d = ops.subtract(x1, x2)
    above = ops.greater(d, 0)
    tail = ops.log1p(ops.exp(ops.where(above, ops.negative(d), d)))
    return ops.where(above, ops.add(x1, tail), ops.add(x2, tail))


class _KerasNamespace:
    """The core's array protocol on ``keras.ops`` (and the optional fused ``sigmoid``, ``relu``)."""

    asarray = staticmethod(ops.convert_to_tensor)
    exp = staticmethod(ops.exp)
    expm1 = staticmethod(ops.expm1)
    log = staticmethod(ops.log)
    log1p = staticmethod(ops.log1p)
    logaddexp = staticmethod(_logaddexp)
    maximum = staticmethod(ops.maximum)
    sqrt = staticmethod(ops.sqrt)
    square = staticmethod(ops.square)
    where = staticmethod(ops.where)
    zeros_like = staticmethod(ops.zeros_like)
    ones_like = staticmethod(ops.ones_like)
    sigmoid = staticmethod(ops.sigmoid)
    relu = staticmethod(ops.relu)  # jax.nn.relu and torch.relu: relu'(0) = 0, the core's rule

    @staticmethod
    def astype(x: Any, dtype: Any) -> Any:
        return ops.cast(x, dtype)

    @staticmethod
    def sum(x: Any, axis: Any = None) -> Any:
        return ops.sum(x, axis=axis)

    @staticmethod
    def mean(x: Any, axis: Any = None) -> Any:
        return ops.mean(x, axis=axis)


def dtype_name(t: Any) -> str:
    return keras.backend.standardize_dtype(t.dtype)


def compute_dtype(t: Any) -> str:
    """float32 for half-precision tensors (KL and noise), else the tensor's dtype."""
    return "float32" if dtype_name(t) in _HALF else dtype_name(t)


def check_float(name: str, t: Any) -> None:
    check_float_dtype(name, dtype_name(t), keras.backend.is_float_dtype(dtype_name(t)))


def check_layer_input(x: Any, compute: str, variable: str) -> None:
    """The layers' input rules (docs/design-notes.md section 2), as the TensorFlow shim states them."""
    check_input_type("x", x, hasattr(x, "shape") and hasattr(x, "dtype"))
    check_input_rank("x", tuple(x.shape))
    check_float("x", x)
    if compute != variable and dtype_name(x) == variable:
        return
    check_input_dtype("x", dtype_name(x), compute)


def check_noise(name: str, noise: Any, shape: Any) -> None:
    """Raise unless injected noise has exactly ``shape``; a symbolic ``None`` dimension matches any size."""
    have, want = tuple(noise.shape), tuple(shape)
    if len(have) != len(want) or any(h is not None and w is not None and h != w for h, w in zip(have, want)):
        check_noise_shape(name, have, want)


def tensor(t: Any, dtype: str | None = None) -> Any:
    """``t`` as a tensor; cast to ``dtype`` if given (Python floats convert straight to it)."""
    if hasattr(t, "dtype") and hasattr(t, "shape"):
        t = ops.convert_to_tensor(t)
        return t if dtype is None else ops.cast(t, dtype)
    return ops.convert_to_tensor(t, dtype=dtype)


def recording() -> bool:
    """Whether the ops that run now may be differentiated (torch: grad mode; JAX: always, as traced)."""
    if BACKEND == "torch":
        import torch

        return torch.is_grad_enabled()
    return True


def adds_records(training: bool) -> bool:
    """Whether a call's KL joins the records (a training call that something may differentiate)."""
    return training and recording()


def draw_normal(like: Any, seed: Any) -> Any:
    """Standard normals shaped like ``like``, in float32 at least (never half), from ``keras.random``.

    Drawn over the whole (global) tensor: under ``keras.distribution.DataParallel`` the batch axis
    is sharded, so each replica holds its own rows of one draw, never a copy of another's noise.
    """
    return keras.random.normal(ops.shape(like), dtype=compute_dtype(like), seed=seed)


def draw_uniform(like: Any, seed: Any) -> Any:
    """Standard uniforms on ``[0, 1)`` shaped like ``like``, in float32 at least, from ``keras.random``."""
    return keras.random.uniform(ops.shape(like), dtype=compute_dtype(like), seed=seed)


xp: Any
if BACKEND == "tensorflow":
    # The TensorFlow adapter's helpers: the same ops, draws and seed words as before Keras went
    # multi-backend. Assignments, not a `from` import, which a linter would prune as redefinitions.
    from idrop.backends.tensorflow import _namespace as _tf

    check_float = _tf.check_float
    check_layer_input = _tf.check_layer_input
    check_noise = _tf.check_noise
    compute_dtype = _tf.compute_dtype
    draw_normal = _tf.draw_normal
    draw_uniform = _tf.draw_uniform
    dtype_name = _tf.dtype_name
    recording = _tf.recording
    tensor = _tf.tensor
    xp = _tf.xp

    def adds_records(training: bool) -> bool:
        import tensorflow as tf

        return training and (not tf.executing_eagerly() or recording())

elif BACKEND == "torch":
    # Keras's own ops promote float64 to float32 off TensorFlow (keras.src.backend.common.dtypes.
    # BIT64_TO_BIT32_DTYPE, "aligned with JAX's default"), which would run a float64 layer in
    # float32; Keras tensors on torch are torch tensors, so the core runs on the torch adapter's ops.
    import torch

    from idrop.backends.torch._namespace import TorchNamespace

    class _KerasTorchNamespace(TorchNamespace):
        @staticmethod
        def astype(x: Any, dtype: Any) -> Any:
            return x.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)

    xp = _KerasTorchNamespace()
else:
    xp = _KerasNamespace()


if BACKEND == "torch":
    # Torch's own ops for the maps' arithmetic too: Keras's return float32 for float64 (see above).

    def matmul(x: Any, kernel: Any) -> Any:
        return torch.matmul(x, kernel)

    def concatenate(parts: list, axis: int) -> Any:
        return torch.cat(parts, dim=axis)

    def split(x: Any, n: int, axis: int) -> Any:
        return torch.chunk(x, n, dim=axis)

else:

    def matmul(x: Any, kernel: Any) -> Any:
        return ops.matmul(x, kernel)

    def concatenate(parts: list, axis: int) -> Any:
        return ops.concatenate(parts, axis=axis)

    def split(x: Any, n: int, axis: int) -> Any:
        return ops.split(x, n, axis=axis)
