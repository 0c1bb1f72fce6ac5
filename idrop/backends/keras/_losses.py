r"""The KL bookkeeping of the Keras layers, and ``kl_loss`` / ``ib_loss`` (eq. 5), on every Keras backend.

The rules are docs/design-notes.md section 3 (see :mod:`idrop.backends.tensorflow._losses`,
which this module IS on the TensorFlow backend: records that belong to a traced graph are
checked there). On JAX and torch a record is a tensor of the call that made it: an eager
tensor, or a tracer of the ``jax.jit`` step that ran the call (Keras's ``model.fit`` step);
collect a traced record inside the function that traced it, as ``add_loss`` does.
A call with nothing to differentiate (an evaluation call, or a torch call under ``no_grad``)
replaces the records instead of adding to them. The records and the losses' recipe are
:mod:`idrop.core.kl_records`; this module gives them the ``keras.ops`` calls.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from idrop.backends.keras._namespace import BACKEND, compute_dtype, dtype_name, tensor, xp
from idrop.core import kl_records as _records
from idrop.core.kl_records import KLRecords as KLRecords
from idrop.core.loss import batch_mean
from idrop.core.loss import kl_term as _kl_term


def _mean(kl: Any) -> Any:
    return batch_mean(kl, xp=xp)


def _zeros(dtype: str) -> Any:
    return ops.zeros((), dtype)


def collect(model: keras.Layer) -> list[Any]:
    """Every KL recorded in ``model``'s layers since the last collection; empties the records."""
    return _records.collect(model._flatten_layers(include_self=True, recursive=True))


def kl_term(kls: list[Any], n_train: int) -> Any:
    """``sum over records of mean over batch of kl / n_train`` (an empty batch contributes 0)."""
    return _kl_term([_mean(kl) for kl in kls], n_train=n_train, xp=xp)


_OPS = _records.Ops(
    mean=_mean, cast=ops.cast, zeros=_zeros, dtype_name=dtype_name, compute_dtype=compute_dtype, tensor=tensor, xp=xp
)


def kl_loss(model: keras.Layer, n_train: int) -> Any:
    r"""``sum over InfoDropout calls since the last collection of mean(kl) / n_train`` (eq. 5); collects.

    float32, or float64 if a layer computes in float64; 0 when nothing was recorded.
    """
    return _records.kl_loss(lambda: collect(model), n_train, _OPS)


def ib_loss(task_loss: Any, model: keras.Layer, beta: float, n_train: int) -> Any:
    r"""The Information Bottleneck loss ``task_loss + beta * kl_loss(model, n_train)`` (eq. 5); collects.

    Computed in ``task_loss``'s dtype (float32 at least). Do not also give the
    layers ``beta``/``n_train`` when you use this, or the KL is counted twice.
    """
    return _records.ib_loss(task_loss, lambda: collect(model), beta, n_train, _OPS)


if BACKEND == "tensorflow":
    # The TensorFlow adapter's bookkeeping (records of a traced graph, AutoGraph-free losses).
    # Assignments, not a `from` import, which a linter would prune as redefinitions.
    from idrop.backends.tensorflow import _losses as _tf

    KLRecords = _tf.KLRecords  # type: ignore[misc]
    collect = _tf.collect
    ib_loss = _tf.ib_loss
    kl_loss = _tf.kl_loss
    kl_term = _tf.kl_term
