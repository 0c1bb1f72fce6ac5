"""``kl_loss`` and ``ib_loss``: the KL term of eq. 5 over a Keras model's Information Dropout layers."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from idrop.backends.tensorflow._layers import InfoDropout
from idrop.backends.tensorflow._namespace import compute_dtype, dtype_name, tensor, xp
from idrop.core.loss import ib_loss as _ib_loss
from idrop.core.loss import kl_term as _kl_term


def _kl_per_sample(model: keras.Layer, dtype: str | None = None) -> list[Any]:
    """Every InfoDropout sublayer's ``.kl``, in one float dtype (float32, or float64 if any is)."""
    kls = [
        m.kl
        for m in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(m, InfoDropout) and m.kl is not None
    ]
    if dtype is None:
        dtype = "float64" if any(dtype_name(k) == "float64" for k in kls) else "float32"
    return [ops.cast(k, dtype) for k in kls]


def kl_loss(model: keras.Layer, n_train: int) -> Any:
    r"""``sum over InfoDropout layers of mean(layer.kl) / n_train`` from the last call (eq. 5)."""
    kls = _kl_per_sample(model)
    if not kls:
        zero = ops.zeros((), dtype="float32")
        _kl_term([zero], n_train=n_train, xp=xp)  # validates n_train all the same
        return zero
    return _kl_term(kls, n_train=n_train, xp=xp)


def ib_loss(task_loss: Any, model: keras.Layer, beta: float, n_train: int) -> Any:
    r"""The Information Bottleneck loss ``task_loss + beta * kl_loss(model, n_train)`` (eq. 5).

    Computed in ``task_loss``'s dtype (float32 at least). Do not also give the
    layers ``beta``/``n_train`` when you use this, or the KL is counted twice.
    """
    task_loss = tensor(task_loss)
    dtype = compute_dtype(task_loss)
    kls = _kl_per_sample(model, dtype) or [ops.zeros((), dtype=dtype)]
    return _ib_loss(ops.cast(task_loss, dtype), kls, beta=beta, n_train=n_train, xp=xp)
